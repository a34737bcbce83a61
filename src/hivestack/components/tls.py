"""A private TLS authority for one trust domain (hivestack.topology.trust): an ECDSA P-256 CA and its certificates.

Made once at create and kept encrypted in the stack state. A changed subject list is an in-place update: the CA and
the certificates of subjects whose names and usage are unchanged are kept, new or changed subjects get a new
certificate, removed subjects lose theirs. A plain `up` re-rolls nothing.
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

from hivestack.topology.trust import Usage

SECRET_OUTPUTS = ["ca_key", "certs"]
CA_DAYS = 3650
CERT_DAYS = 730
# Certificates start a little in the past: a host whose clock lags the deployer's still accepts them.
BACKDATE = dt.timedelta(minutes=5)
EXTENDED_USAGES = {
    Usage.server: [ExtendedKeyUsageOID.SERVER_AUTH],
    Usage.client: [ExtendedKeyUsageOID.CLIENT_AUTH],
    Usage.peer: [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
}


def _subjects(value: Any) -> dict[str, dict[str, Any]]:
    """The subject list as id -> what its certificate says (order does not matter)."""
    return {
        str(s["id"]): {
            "common_name": str(s["common_name"]),
            "dns": [str(n) for n in s.get("dns") or []],
            "ips": [str(a) for a in s.get("ips") or []],
            "usage": str(s["usage"]),
            "organizations": [str(o) for o in s.get("organizations") or []],
        }
        for s in value or []
    }


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """A CA signs certificates and CRLs; an end entity signs (ECDSA) and agrees keys (ECDHE)."""
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


def issue(ca_cert_pem: str, ca_key_pem: str, subject: Mapping[str, Any]) -> dict[str, str]:
    """A certificate valid for 2 years with the subject's names, organizations (Kubernetes groups) and one usage:
    {"cert": PEM, "key": PEM}."""
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    ca_key = serialization.load_pem_private_key(ca_key_pem.encode(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError("the CA key is not an ECDSA key")
    key = _new_key()
    now = dt.datetime.now(dt.UTC)
    sans = [
        *(x509.DNSName(name) for name in subject["dns"]),
        *(x509.IPAddress(ipaddress.ip_address(address)) for address in subject["ips"]),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    *(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in subject.get("organizations") or []),
                    x509.NameAttribute(NameOID.COMMON_NAME, subject["common_name"]),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(EXTENDED_USAGES[Usage(subject["usage"])]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return {"cert": _cert_pem(cert), "key": _key_pem(key)}


def _issue_all(
    ca_cert: str, ca_key: str, subjects: Mapping[str, dict[str, Any]], kept: Mapping[str, dict[str, str]]
) -> dict[str, dict[str, str]]:
    return {sid: dict(kept[sid]) if sid in kept else issue(ca_cert, ca_key, spec) for sid, spec in subjects.items()}


def _check_subject(subject: Any) -> list[str]:
    if not isinstance(subject, dict):
        return [f"{subject!r} is no subject"]
    sid = subject.get("id")
    problems = [f"{sid!r}: missing {k}" for k in ("id", "common_name", "usage") if not subject.get(k)]
    if subject.get("usage") and subject["usage"] not in set(Usage):
        problems.append(f"{sid!r}: usage {subject['usage']!r} is not one of {', '.join(Usage)}")
    if not subject.get("dns") and not subject.get("ips"):
        problems.append(f"{sid!r}: a certificate must name its host")
    organizations = subject.get("organizations") or []
    if not isinstance(organizations, list) or not all(isinstance(o, str) and o for o in organizations):
        problems.append(f"{sid!r}: organizations must be a list of non-empty names")
    for address in subject.get("ips") or []:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            problems.append(f"{sid!r}: {address!r} is no IP address")
    return problems


class _TlsAuthorityProvider(ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        subjects = news.get("subjects")
        if isinstance(subjects, list):  # unknown during a preview when it derives from resources not yet created
            ids = [s.get("id") for s in subjects if isinstance(s, dict)]
            for dup in sorted({i for i in ids if isinstance(i, str) and ids.count(i) > 1}):
                failures.append(CheckFailure("subjects", f"subject {dup!r} is listed more than once"))
            failures += [CheckFailure("subjects", p) for s in subjects for p in _check_subject(s)]
        return CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> CreateResult:
        ca_cert, ca_key = make_ca(f"{props['name']} CA")
        certs = _issue_all(ca_cert, ca_key, _subjects(props["subjects"]), {})
        fingerprint = x509.load_pem_x509_certificate(ca_cert.encode()).fingerprint(hashes.SHA256()).hex()
        return CreateResult(id_=fingerprint, outs={**props, "ca_cert": ca_cert, "ca_key": ca_key, "certs": certs})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # Only the subjects matter; the CA is never re-rolled (a new CA would be a new resource).
        try:
            changed = _subjects(olds.get("subjects")) != _subjects(news.get("subjects"))
        except (TypeError, KeyError, AttributeError):  # an unknown subject list during a preview
            changed = True
        return DiffResult(changes=changed, replaces=[], delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        old_subjects, new_subjects = _subjects(olds.get("subjects")), _subjects(news["subjects"])
        old_certs: dict[str, dict[str, str]] = olds.get("certs") or {}
        unchanged = {sid for sid, spec in new_subjects.items() if old_subjects.get(sid) == spec}
        kept = {sid: c for sid, c in old_certs.items() if sid in unchanged}
        certs = _issue_all(olds["ca_cert"], olds["ca_key"], new_subjects, kept)
        return UpdateResult(
            outs={**news, "name": olds["name"], "ca_cert": olds["ca_cert"], "ca_key": olds["ca_key"], "certs": certs}
        )


class TlsAuthority(Resource):
    """A CA plus one certificate per subject.

    `subjects`: [{"id": str, "common_name": str, "dns": [str], "ips": [str], "usage": "server"|"client"|"peer",
    "organizations": [str]}]
    (hivestack.topology.trust.Subject.to_dict()). Outputs: `ca_cert` (PEM), `ca_key` (PEM, secret) and `certs`
    (subject id -> {"cert": PEM, "key": PEM}, secret as a whole).
    """

    ca_cert: pulumi.Output[str]
    ca_key: pulumi.Output[str]
    certs: pulumi.Output[dict[str, dict[str, str]]]

    def __init__(
        self, name: str, subjects: pulumi.Input[list[dict[str, Any]]], opts: pulumi.ResourceOptions | None = None
    ) -> None:
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=SECRET_OUTPUTS))
        super().__init__(
            _TlsAuthorityProvider(),
            name,
            {"name": name, "subjects": subjects, "ca_cert": None, "ca_key": None, "certs": None},
            opts,
        )
