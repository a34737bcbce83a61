"""TlsAuthority: certificates chain to the CA and carry the right names; host changes keep what did not change."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import pulumi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from hivestack.components.tls import SECRET_OUTPUTS, TlsAuthority, _TlsAuthorityProvider
from tests.unit.conftest import RecordingMocks

pytestmark = pytest.mark.unit

HOSTS = [{"name": "etcd-a", "address": "10.1.0.11"}, {"name": "etcd-b", "address": "10.2.0.11"}]


def load(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


@pytest.fixture(scope="module")
def created() -> dict[str, Any]:
    result = _TlsAuthorityProvider().create({"name": "etcd", "hosts": HOSTS, "ca_cert": None, "certs": None})
    return {"id": result.id, **result.outs}


def test_ca_is_a_p256_ca_for_ten_years(created):
    ca = load(created["ca_cert"])
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.public_key().curve.name == "secp256r1"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "etcd CA"
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert dt.timedelta(days=3650) <= lifetime <= dt.timedelta(days=3651)
    assert "PRIVATE KEY" in created["ca_key"]


def test_host_certs_verify_against_the_ca_with_the_right_names(created):
    ca = load(created["ca_cert"])
    assert set(created["certs"]) == {"etcd-a", "etcd-b"}
    for host in HOSTS:
        cert = load(created["certs"][host["name"]]["cert"])
        cert.verify_directly_issued_by(ca)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sans.get_values_for_type(x509.DNSName) == [host["name"], "localhost"]
        assert sans.get_values_for_type(x509.IPAddress) == [
            ipaddress.ip_address(host["address"]),
            ipaddress.ip_address("127.0.0.1"),
        ]
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == host["name"]
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert dt.timedelta(days=730) <= lifetime <= dt.timedelta(days=731)
        # The full path validation a TLS client does (RFC 5280 and CA/B profile), as server and as client.
        policy = PolicyBuilder().store(Store([ca]))
        policy.build_server_verifier(x509.DNSName(host["name"])).verify(cert, [])
        policy.build_server_verifier(x509.IPAddress(ipaddress.ip_address(host["address"]))).verify(cert, [])
        policy.build_client_verifier().verify(cert, [])


def test_mutual_tls_handshake_with_openssl(created, tmp_path: Path):
    """etcd's peers do mutual TLS: one host serves, another connects by IP with its own client certificate."""
    (tmp_path / "ca.pem").write_text(created["ca_cert"])
    for name, pair in created["certs"].items():
        (tmp_path / f"{name}.pem").write_text(pair["cert"])
        (tmp_path / f"{name}-key.pem").write_text(pair["key"])
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp_path / "etcd-a.pem", tmp_path / "etcd-a-key.pem")
    server_ctx.load_verify_locations(tmp_path / "ca.pem")
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.create_default_context(cafile=tmp_path / "ca.pem")
    client_ctx.load_cert_chain(tmp_path / "etcd-b.pem", tmp_path / "etcd-b-key.pem")

    left, right = socket.socketpair()
    seen: dict[str, Any] = {}

    def serve() -> None:
        with server_ctx.wrap_socket(left, server_side=True) as tls:
            seen["peer"] = tls.getpeercert()

    thread = threading.Thread(target=serve)
    thread.start()
    with client_ctx.wrap_socket(right, server_hostname="10.1.0.11") as tls:
        assert tls.getpeercert()["subject"] == ((("commonName", "etcd-a"),),)
    thread.join(timeout=10)
    assert seen["peer"]["subject"] == ((("commonName", "etcd-b"),),)


def test_diff_only_on_a_changed_host_list_and_never_a_replace(created):
    provider = _TlsAuthorityProvider()
    same = provider.diff(created["id"], created, {"name": "etcd", "hosts": list(reversed(HOSTS))})
    assert same.changes is False
    moved = [HOSTS[0], {"name": "etcd-b", "address": "10.2.0.12"}]
    diff = provider.diff(created["id"], created, {"name": "etcd", "hosts": moved})
    assert diff.changes is True and diff.replaces == []


def test_update_keeps_the_ca_and_unchanged_certs(created):
    provider = _TlsAuthorityProvider()
    news = {
        "name": "etcd",
        "hosts": [
            HOSTS[0],  # unchanged
            {"name": "etcd-c", "address": "10.3.0.11"},  # new
            # etcd-b removed
        ],
        "ca_cert": None,
        "ca_key": None,
        "certs": None,
    }
    outs = provider.update(created["id"], created, news).outs
    assert outs["ca_cert"] == created["ca_cert"] and outs["ca_key"] == created["ca_key"]
    assert set(outs["certs"]) == {"etcd-a", "etcd-c"}
    assert outs["certs"]["etcd-a"] == created["certs"]["etcd-a"]
    new = load(outs["certs"]["etcd-c"]["cert"])
    new.verify_directly_issued_by(load(created["ca_cert"]))
    assert ipaddress.ip_address("10.3.0.11") in new.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.IPAddress)

    # A host that keeps its name but moves gets a new certificate; the others stay.
    moved = {**news, "hosts": [{"name": "etcd-a", "address": "10.1.0.99"}, news["hosts"][1]]}
    again = provider.update(created["id"], outs, moved).outs
    assert again["certs"]["etcd-c"] == outs["certs"]["etcd-c"]
    assert again["certs"]["etcd-a"] != outs["certs"]["etcd-a"]
    assert ipaddress.ip_address("10.1.0.99") in load(
        again["certs"]["etcd-a"]["cert"]
    ).extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.IPAddress)
    assert again["ca_key"] == created["ca_key"]


def test_check_rejects_duplicates_and_bad_addresses():
    provider = _TlsAuthorityProvider()
    bad = [HOSTS[0], {"name": "etcd-a", "address": "10.9.0.1"}, {"name": "x", "address": "not-an-ip"}]
    reasons = [f.reason for f in provider.check({}, {"name": "etcd", "hosts": bad}).failures]
    assert any("more than once" in r for r in reasons)
    assert any("no IP address" in r for r in reasons)
    assert provider.check({}, {"name": "etcd", "hosts": HOSTS}).failures == []


def test_secret_outputs_are_declared(secret_outputs):
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="hivestack", stack="unit", preview=False)

    @pulumi.runtime.test
    def program() -> pulumi.Output:
        ca = TlsAuthority("etcd-tls", hosts=HOSTS)

        def check(_: Any) -> None:
            assert set(secret_outputs["etcd-tls"]) >= {"ca_key", "certs"}
            assert mocks.inputs["etcd-tls"]["hosts"] == HOSTS

        return ca.urn.apply(check)

    program()
    assert SECRET_OUTPUTS == ["ca_key", "certs"]
