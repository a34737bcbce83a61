"""Trust domains and their TlsAuthority: which identities exist, what each certificate names and may be used for,
that a TLS endpoint of one domain refuses every other domain's certificates (real handshakes), and that subject
changes keep what did not change."""

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
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from hivestack.components.tls import SECRET_OUTPUTS, TlsAuthority, _TlsAuthorityProvider
from hivestack.topology import load_topology
from hivestack.topology.model import Role
from hivestack.topology.trust import (
    ETCD_CLIENT,
    ETCD_PEER,
    GATEWAY,
    K8S_ETCD_CLIENT,
    K8S_ETCD_PEER,
    KUBE_ADMIN,
    KUBE_API,
    KUBE_CONTROLLER_MANAGER,
    KUBE_KWOK,
    KUBE_OPERATOR_ID,
    KUBE_SCHEDULER,
    KUBE_SERVICE_IP,
    LEDGER,
    Usage,
    _kube_domains,
    cell_db_name,
    db_domain,
    kube_api_name,
    subject_id,
    trust_domains,
)
from tests.conftest import LAB_TOPOLOGY
from tests.unit.conftest import RecordingMocks

pytestmark = pytest.mark.unit

LOADED = load_topology(LAB_TOPOLOGY)
HOSTS = {h.name: h for h in LOADED.placement.hosts}
DOMAINS = {d.name: d for d in trust_domains(LOADED)}
EXTENDED = {
    Usage.server: [ExtendedKeyUsageOID.SERVER_AUTH],
    Usage.client: [ExtendedKeyUsageOID.CLIENT_AUTH],
    Usage.peer: [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
}
ETCD_USERS = {"root", "gns-agent"}  # playbooks/etcd.yml


def load(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def first(role: Role, *, other_than: str | None = None) -> str:
    return next(h.name for h in LOADED.placement.hosts if role in h.roles and h.name != other_than)


@pytest.fixture(scope="module")
def issued() -> dict[str, dict[str, Any]]:
    """Every domain of the lab topology, created by the provider: name -> outputs (ca_cert, ca_key, certs)."""
    provider = _TlsAuthorityProvider()
    return {
        name: provider.create(
            {"name": name, "subjects": [s.to_dict() for s in d.subjects], "ca_cert": None, "certs": None}
        ).outs
        for name, d in DOMAINS.items()
    }


# ---------------------------------------------------------------- the domains


def test_each_role_gets_the_identities_its_services_present():
    def ids(domain: str) -> set[str]:
        return {s.id for s in DOMAINS[domain].subjects}

    def of(role: Role, purpose: str) -> set[str]:
        return {subject_id(h.name, purpose) for h in LOADED.placement.by_role(role)}

    assert ids(ETCD_PEER) == of(Role.etcd, "member")
    assert ids(ETCD_CLIENT) == of(Role.etcd, "server") | of(Role.etcd, "admin") | of(Role.gateway, "gns")
    assert ids(GATEWAY) == of(Role.gateway, "frontend")
    assert ids(LEDGER) == of(Role.app, "server") | of(Role.gateway, "gateway")
    for cell in LOADED.topology.cells:
        members = {m.host for m in LOADED.placement.cell_members[cell.name]}
        assert ids(db_domain(cell.name)) == {
            subject_id(h, purpose) for h in members for purpose in ("replication", "sql", "health")
        }
    assert ids(K8S_ETCD_PEER) == of(Role.k8s_control, "member")
    assert ids(K8S_ETCD_CLIENT) == of(Role.k8s_control, "server") | of(Role.k8s_control, "apiserver") | of(
        Role.k8s_control, "admin"
    )
    control_users = {"api", "controller-manager", "scheduler", "kwok", "admin"}
    assert ids(KUBE_API) == set().union(*(of(Role.k8s_control, p) for p in control_users)) | of(
        Role.gateway, "health"
    ) | {KUBE_OPERATOR_ID}
    assert set(DOMAINS) == {ETCD_PEER, ETCD_CLIENT, GATEWAY, LEDGER, K8S_ETCD_PEER, K8S_ETCD_CLIENT, KUBE_API} | {
        db_domain(c.name) for c in LOADED.topology.cells
    }


def test_kubernetes_domains_only_with_a_control_plane():
    gateways = list(LOADED.placement.by_role(Role.gateway))
    assert _kube_domains(LOADED.topology.name, [], gateways) == []


def test_kubernetes_clients_carry_the_user_and_groups_rbac_grants():
    by_id = {s.id: s for s in DOMAINS[KUBE_API].subjects}
    for h in LOADED.placement.by_role(Role.k8s_control):
        for user in (KUBE_CONTROLLER_MANAGER, KUBE_SCHEDULER, KUBE_KWOK, KUBE_ADMIN):
            s = by_id[subject_id(h.name, user.purpose)]
            assert (s.common_name, s.organizations, s.usage) == (user.user, user.groups, Usage.client)
        api = by_id[subject_id(h.name, "api")]
        assert api.usage is Usage.server
        assert kube_api_name(LOADED.topology.name) in api.dns and "kubernetes.default.svc" in api.dns
        assert api.ips == (str(h.address), KUBE_SERVICE_IP)
    operator = by_id[KUBE_OPERATOR_ID]
    assert (operator.common_name, operator.organizations) == ("hivestack:operator", ("hivestack:operators",))
    assert "system:masters" not in operator.organizations


def test_organizations_become_o_attributes(issued):
    cert = load(issued[KUBE_API]["certs"][KUBE_OPERATOR_ID]["cert"])
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["hivestack:operators"]
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "hivestack:operator"


def test_every_identity_names_its_host_only_and_carries_one_usage():
    for domain in (d for name, d in DOMAINS.items() if name != KUBE_API):  # Kubernetes' clients: the test above
        for s in domain.subjects:
            host, purpose = s.id.split("/")
            assert s.ips == (str(HOSTS[host].address),), s
            extra = (cell_db_name(LOADED.topology.name, domain.name.removeprefix("db-")),) if purpose == "sql" else ()
            assert s.dns == (host, *extra), s
            assert "localhost" not in s.dns and "127.0.0.1" not in s.ips
            peer_link = purpose in ("member", "replication")
            client = purpose in ("admin", "gns", "gateway", "apiserver")
            assert s.usage is (Usage.peer if peer_link else Usage.client if client else Usage.server), s
            # etcd takes a client certificate's CN as the user when no password is sent: never one of its users.
            assert s.common_name == (f"{purpose}@{host}" if client else host)
            assert s.common_name not in ETCD_USERS


# ---------------------------------------------------------------- the certificates


def test_cas_are_p256_cas_for_ten_years_one_per_domain(issued):
    fingerprints = set()
    for name, outs in issued.items():
        ca = load(outs["ca_cert"])
        assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
        assert ca.public_key().curve.name == "secp256r1"
        assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == f"{name} CA"
        lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
        assert dt.timedelta(days=3650) <= lifetime <= dt.timedelta(days=3651)
        assert "PRIVATE KEY" in outs["ca_key"]
        fingerprints.add(ca.fingerprint(ca.signature_hash_algorithm))
    assert len(fingerprints) == len(issued)


def test_certificates_carry_their_names_and_usage_and_verify_only_for_it(issued):
    for name, domain in DOMAINS.items():
        ca = load(issued[name]["ca_cert"])
        policy = PolicyBuilder().store(Store([ca]))
        for s in domain.subjects:
            cert = load(issued[name]["certs"][s.id]["cert"])
            cert.verify_directly_issued_by(ca)
            assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == s.common_name
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            assert sans.get_values_for_type(x509.DNSName) == list(s.dns)
            assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address(a) for a in s.ips]
            assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == EXTENDED[s.usage]
            assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
            lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
            assert dt.timedelta(days=730) <= lifetime <= dt.timedelta(days=731)
            # The path validation a TLS peer does (RFC 5280 and the CA/B profile), for the usage and no other.
            as_server = [policy.build_server_verifier(x509.DNSName(n)) for n in s.dns] + [
                policy.build_server_verifier(x509.IPAddress(ipaddress.ip_address(a))) for a in s.ips
            ]
            for verifier in [*as_server, policy.build_client_verifier()]:
                serves = verifier in as_server
                if (s.usage is Usage.peer) or (s.usage is Usage.server) == serves:
                    verifier.verify(cert, [])
                else:
                    with pytest.raises(VerificationError, match="EKU"):
                        verifier.verify(cert, [])


@pytest.fixture(scope="module")
def pem_files(issued, tmp_path_factory) -> dict[str, dict[str, Path]]:
    """Files per "<domain> <subject id>" (cert, key) and per domain ("<domain>": ca)."""
    root = tmp_path_factory.mktemp("tls")
    files: dict[str, dict[str, Path]] = {}
    for name, outs in issued.items():
        (root / f"{name}-ca.pem").write_text(outs["ca_cert"])
        files[name] = {"ca": root / f"{name}-ca.pem"}
        for sid, pair in outs["certs"].items():
            base = root / f"{name}-{sid.replace('/', '-')}"
            base.with_suffix(".pem").write_text(pair["cert"])
            base.with_suffix(".key").write_text(pair["key"])
            files[f"{name} {sid}"] = {"cert": base.with_suffix(".pem"), "key": base.with_suffix(".key")}
    return files


def handshake(
    server: dict[str, Path],
    trusted_by_server: Path,
    client: dict[str, Path] | None,
    trusted_by_client: Path,
    server_hostname: str | None = None,
) -> tuple[str | None, str | None]:
    """(server's error, client's error) of one TLS 1.3 handshake over a socket pair; None where that side accepted.
    The server asks for a client certificate from its CA file, as etcd, Galera, socat and the ledger do."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(server["cert"], server["key"])
    server_ctx.load_verify_locations(trusted_by_server)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.create_default_context(cafile=trusted_by_client)
    client_ctx.check_hostname = server_hostname is not None
    if client:
        client_ctx.load_cert_chain(client["cert"], client["key"])
    left, right = socket.socketpair()
    left.settimeout(5)
    right.settimeout(5)
    errors: dict[str, str | None] = {"server": None, "client": None}

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(left, server_side=True) as tls:
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError) as exc:
            errors["server"] = str(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_ctx.wrap_socket(right, server_hostname=server_hostname) as tls:
            # TLS 1.3: a refused client certificate arrives as an alert after the client's side of the handshake.
            if tls.recv(2) != b"ok":
                errors["client"] = "closed"
    except (ssl.SSLError, OSError) as exc:
        errors["client"] = str(exc)
    finally:
        right.close()
    thread.join(timeout=10)
    return errors["server"], errors["client"]


def test_an_etcd_peer_accepts_only_etcd_peers(pem_files):
    etcd_a = first(Role.etcd)
    etcd_b = first(Role.etcd, other_than=etcd_a)
    app, gateway = first(Role.app), first(Role.gateway)
    peer = pem_files[f"{ETCD_PEER} {etcd_a}/member"]
    peer_ca = pem_files[ETCD_PEER]["ca"]
    # A peer dials another with its one certificate, which the other verifies as a client and the dialer as a server.
    assert handshake(peer, peer_ca, pem_files[f"{ETCD_PEER} {etcd_b}/member"], peer_ca, etcd_a) == (None, None)
    strangers = {
        "an app host's ledger certificate": pem_files[f"{LEDGER} {app}/server"],
        "a gateway's etcd client certificate": pem_files[f"{ETCD_CLIENT} {gateway}/gns"],
        "the etcd host's own client-port certificate": pem_files[f"{ETCD_CLIENT} {etcd_b}/server"],
    }
    for what, cert in strangers.items():
        server_error, _ = handshake(peer, peer_ca, cert, peer_ca, etcd_a)
        assert server_error is not None and "certificate" in server_error, what


def test_etcd_clients_need_a_client_certificate_of_their_domain(pem_files):
    etcd, gateway = first(Role.etcd), first(Role.gateway)
    server, ca = pem_files[f"{ETCD_CLIENT} {etcd}/server"], pem_files[ETCD_CLIENT]["ca"]
    assert handshake(server, ca, pem_files[f"{ETCD_CLIENT} {gateway}/gns"], ca, str(HOSTS[etcd].address)) == (
        None,
        None,
    )
    assert handshake(server, ca, pem_files[f"{ETCD_CLIENT} {etcd}/admin"], ca, etcd) == (None, None)
    refused, _ = handshake(server, ca, pem_files[f"{ETCD_PEER} {etcd}/member"], ca, etcd)
    assert refused is not None
    no_cert, _ = handshake(server, ca, None, ca, etcd)
    assert no_cert is not None and "certificate" in no_cert


def test_a_cells_replication_refuses_another_cells_members_and_app_hosts(pem_files):
    cell_a, cell_b = (c.name for c in LOADED.topology.cells[:2])
    member, other = (m.host for m in LOADED.placement.cell_members[cell_b][:2])
    own = pem_files[f"{db_domain(cell_b)} {member}/replication"]
    ca = pem_files[db_domain(cell_b)]["ca"]
    assert handshake(own, ca, pem_files[f"{db_domain(cell_b)} {other}/replication"], ca, member) == (None, None)
    assert member in {m.host for m in LOADED.placement.cell_members[cell_a]}, "the lab puts both cells on one host"
    for what, cert in {
        "the same host's member of another cell": pem_files[f"{db_domain(cell_a)} {member}/replication"],
        "an app host's ledger certificate": pem_files[f"{LEDGER} {first(Role.app)}/server"],
        "the member's own SQL server certificate": pem_files[f"{db_domain(cell_b)} {member}/sql"],
    }.items():
        server_error, _ = handshake(own, ca, cert, ca, member)
        assert server_error is not None and "certificate" in server_error, what


def test_the_ledger_checks_the_cells_database_name_through_any_proxy(pem_files):
    cell = LOADED.topology.cells[0].name
    member = LOADED.placement.cell_members[cell][0].host
    sql, ca = pem_files[f"{db_domain(cell)} {member}/sql"], pem_files[db_domain(cell)]["ca"]
    gateway = pem_files[f"{LEDGER} {first(Role.gateway)}/gateway"]
    _, client_error = handshake(sql, pem_files[LEDGER]["ca"], gateway, ca, cell_db_name(LOADED.topology.name, cell))
    assert client_error is None
    other = LOADED.topology.cells[1].name
    _, wrong_cell = handshake(sql, pem_files[LEDGER]["ca"], gateway, ca, cell_db_name(LOADED.topology.name, other))
    assert wrong_cell is not None and "match" in wrong_cell
    _, other_ca = handshake(
        sql,
        pem_files[LEDGER]["ca"],
        gateway,
        pem_files[db_domain(other)]["ca"],
        cell_db_name(LOADED.topology.name, cell),
    )
    assert other_ca is not None and "verify failed" in other_ca


# ---------------------------------------------------------------- the resource


SUBJECTS = [
    {"id": "etcd-a/member", "common_name": "etcd-a", "dns": ["etcd-a"], "ips": ["10.1.0.11"], "usage": "peer"},
    {"id": "etcd-b/member", "common_name": "etcd-b", "dns": ["etcd-b"], "ips": ["10.2.0.11"], "usage": "peer"},
]


@pytest.fixture(scope="module")
def created() -> dict[str, Any]:
    result = _TlsAuthorityProvider().create({"name": "etcd", "subjects": SUBJECTS, "ca_cert": None, "certs": None})
    return {"id": result.id, **result.outs}


def test_diff_only_on_changed_subjects_and_never_a_replace(created):
    provider = _TlsAuthorityProvider()
    same = provider.diff(created["id"], created, {"name": "etcd", "subjects": list(reversed(SUBJECTS))})
    assert same.changes is False
    moved = [SUBJECTS[0], {**SUBJECTS[1], "ips": ["10.2.0.12"]}]
    diff = provider.diff(created["id"], created, {"name": "etcd", "subjects": moved})
    assert diff.changes is True and diff.replaces == []
    reused = [SUBJECTS[0], {**SUBJECTS[1], "usage": "server"}]
    assert provider.diff(created["id"], created, {"name": "etcd", "subjects": reused}).changes is True


def test_update_keeps_the_ca_and_unchanged_certs(created):
    provider = _TlsAuthorityProvider()
    new = {"id": "etcd-c/member", "common_name": "etcd-c", "dns": ["etcd-c"], "ips": ["10.3.0.11"], "usage": "peer"}
    news = {"name": "etcd", "subjects": [SUBJECTS[0], new], "ca_cert": None, "ca_key": None, "certs": None}
    outs = provider.update(created["id"], created, news).outs  # etcd-b removed, etcd-c new
    assert outs["ca_cert"] == created["ca_cert"] and outs["ca_key"] == created["ca_key"]
    assert set(outs["certs"]) == {"etcd-a/member", "etcd-c/member"}
    assert outs["certs"]["etcd-a/member"] == created["certs"]["etcd-a/member"]
    load(outs["certs"]["etcd-c/member"]["cert"]).verify_directly_issued_by(load(created["ca_cert"]))

    # A subject that keeps its id but moves gets a new certificate; the others stay.
    moved = {**news, "subjects": [{**SUBJECTS[0], "ips": ["10.1.0.99"]}, new]}
    again = provider.update(created["id"], outs, moved).outs
    assert again["certs"]["etcd-c/member"] == outs["certs"]["etcd-c/member"]
    assert again["certs"]["etcd-a/member"] != outs["certs"]["etcd-a/member"]
    sans = load(again["certs"]["etcd-a/member"]["cert"]).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert sans.value.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.1.0.99")]
    assert again["ca_key"] == created["ca_key"]


def test_check_rejects_duplicates_bad_addresses_usages_and_nameless_subjects():
    provider = _TlsAuthorityProvider()
    bad = [
        SUBJECTS[0],
        {**SUBJECTS[1], "id": "etcd-a/member"},
        {**SUBJECTS[1], "id": "x/member", "ips": ["not-an-ip"]},
        {**SUBJECTS[1], "id": "y/member", "usage": "anything"},
        {**SUBJECTS[1], "id": "z/member", "dns": [], "ips": []},
    ]
    reasons = [f.reason for f in provider.check({}, {"name": "etcd", "subjects": bad}).failures]
    assert any("'etcd-a/member' is listed more than once" in r for r in reasons)
    assert any("'not-an-ip' is no IP address" in r for r in reasons)
    assert any("usage 'anything' is not one of server, client, peer" in r for r in reasons)
    assert any("'z/member': a certificate must name its host" in r for r in reasons)
    assert provider.check({}, {"name": "etcd", "subjects": SUBJECTS}).failures == []


def test_secret_outputs_are_declared(secret_outputs):
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="hivestack", stack="unit", preview=False)

    @pulumi.runtime.test
    def program() -> pulumi.Output:
        ca = TlsAuthority("tls-etcd-peer", subjects=SUBJECTS)

        def check(_: Any) -> None:
            assert set(secret_outputs["tls-etcd-peer"]) >= {"ca_key", "certs"}
            assert mocks.inputs["tls-etcd-peer"]["subjects"] == SUBJECTS

        return ca.urn.apply(check)

    program()
    assert SECRET_OUTPUTS == ["ca_key", "certs"]
