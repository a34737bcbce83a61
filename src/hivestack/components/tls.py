"""A private TLS authority (etcd, database replication): one ECDSA P-256 CA and a certificate per host.

Made once at create and kept encrypted in the stack state. A changed host list is an in-place update: the CA and
the certificates of hosts whose name and address are unchanged are kept, new or moved hosts get a new certificate,
removed hosts lose theirs. A plain `up` re-rolls nothing.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Mapping
from typing import Any

import pulumi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

SECRET_OUTPUTS = ["ca_key", "certs"]
CA_DAYS = 3650
CERT_DAYS = 730
# Certificates start a little in the past: a host whose clock lags the deployer's still accepts them.
BACKDATE = dt.timedelta(minutes=5)


def _hosts(value: Any) -> dict[str, str]:
    """The host list as name -> address (order does not matter)."""
    return {str(h["name"]): str(h["address"]) for h in value or []}


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """A CA signs certificates and CRLs; a host signs (ECDSA) and agrees keys (ECDHE)."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not ca,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def make_ca(common_name: str) -> tuple[str, str]:
    """A self-signed CA valid for 10 years: (certificate PEM, private key PEM)."""
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _cert_pem(cert), _key_pem(key)


def issue(ca_cert_pem: str, ca_key_pem: str, name: str, address: str) -> dict[str, str]:
    """A server+client certificate for one host, valid for 2 years: {"cert": PEM, "key": PEM}."""
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    ca_key = serialization.load_pem_private_key(ca_key_pem.encode(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError("the CA key is not an ECDSA key")
    key = _new_key()
    now = dt.datetime.now(dt.UTC)
    sans = [
        x509.DNSName(name),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address(address)),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return {"cert": _cert_pem(cert), "key": _key_pem(key)}


def _issue_all(
    ca_cert: str, ca_key: str, hosts: Mapping[str, str], kept: Mapping[str, dict[str, str]]
) -> dict[str, dict[str, str]]:
    return {
        name: dict(kept[name]) if name in kept else issue(ca_cert, ca_key, name, addr) for name, addr in hosts.items()
    }


class _TlsAuthorityProvider(ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        hosts = news.get("hosts")
        if isinstance(hosts, list):  # unknown during a preview when it derives from resources not yet created
            names = [h.get("name") for h in hosts if isinstance(h, dict)]
            for dup in sorted({n for n in names if isinstance(n, str) and names.count(n) > 1}):
                failures.append(CheckFailure("hosts", f"host {dup!r} is listed more than once"))
            for h in hosts:
                if not isinstance(h, dict) or not isinstance(h.get("address"), str):
                    continue
                try:
                    ipaddress.ip_address(h["address"])
                except ValueError:
                    failures.append(CheckFailure("hosts", f"host {h.get('name')!r}: {h['address']!r} is no IP address"))
        return CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> CreateResult:
        ca_cert, ca_key = make_ca(f"{props['name']} CA")
        certs = _issue_all(ca_cert, ca_key, _hosts(props["hosts"]), {})
        fingerprint = x509.load_pem_x509_certificate(ca_cert.encode()).fingerprint(hashes.SHA256()).hex()
        return CreateResult(id_=fingerprint, outs={**props, "ca_cert": ca_cert, "ca_key": ca_key, "certs": certs})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # Only the hosts matter; the CA is never re-rolled (a new CA would be a new resource).
        try:
            changed = _hosts(olds.get("hosts")) != _hosts(news.get("hosts"))
        except (TypeError, KeyError, AttributeError):  # an unknown host list during a preview
            changed = True
        return DiffResult(changes=changed, replaces=[], delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        old_hosts, new_hosts = _hosts(olds.get("hosts")), _hosts(news["hosts"])
        old_certs: dict[str, dict[str, str]] = olds.get("certs") or {}
        kept = {n: c for n, c in old_certs.items() if n in new_hosts and old_hosts.get(n) == new_hosts[n]}
        certs = _issue_all(olds["ca_cert"], olds["ca_key"], new_hosts, kept)
        return UpdateResult(
            outs={**news, "name": olds["name"], "ca_cert": olds["ca_cert"], "ca_key": olds["ca_key"], "certs": certs}
        )


class TlsAuthority(Resource):
    """A CA plus one certificate per host.

    `hosts`: [{"name": str, "address": str}]. Outputs: `ca_cert` (PEM), `ca_key` (PEM, secret) and `certs`
    (host name -> {"cert": PEM, "key": PEM}, secret as a whole).
    """

    ca_cert: pulumi.Output[str]
    ca_key: pulumi.Output[str]
    certs: pulumi.Output[dict[str, dict[str, str]]]

    def __init__(
        self, name: str, hosts: pulumi.Input[list[dict[str, str]]], opts: pulumi.ResourceOptions | None = None
    ) -> None:
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=SECRET_OUTPUTS))
        super().__init__(
            _TlsAuthorityProvider(),
            name,
            {"name": name, "hosts": hosts, "ca_cert": None, "ca_key": None, "certs": None},
            opts,
        )
