"""The way into Kubernetes: generated keys of the right kind, the operator kubeconfig (one context per DC's gateway,
the API's one name checked), and `hivestack kubeconfig` writing it 0600 and nowhere else."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hivestack.cli import kubeconfig_cmd, project
from hivestack.cli.main import main
from hivestack.components.kubeconfig import operator_kubeconfig
from hivestack.components.secret import SecretKind, _GeneratedSecretProvider, public_key_pem
from hivestack.components.tls import _TlsAuthorityProvider
from hivestack.topology import load_topology
from hivestack.topology.model import Role
from hivestack.topology.ports import BY_NAME
from hivestack.topology.trust import KUBE_API, kube_api_name, trust_domains
from tests.conftest import LAB_TOPOLOGY

pytestmark = pytest.mark.unit


def test_a_service_account_key_is_an_ec_p256_private_key():
    outs = _GeneratedSecretProvider().create({"purpose": "sa", "length": 32, "kind": "ec-p256-key"}).outs
    key = serialization.load_pem_private_key(outs["secret"].encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    public = serialization.load_pem_public_key(public_key_pem(outs["secret"]).encode())
    assert public.public_numbers() == key.public_key().public_numbers()  # the half the API server verifies with


def test_a_token_has_its_length_and_state_without_a_kind_stays_a_token():
    provider = _GeneratedSecretProvider()
    assert len(provider.create({"purpose": "p", "length": 32, "kind": "token"}).outs["secret"]) == 32
    old = {"purpose": "p", "length": 32, "secret": "x" * 32}  # written before secrets had a kind
    assert not provider.diff("p", old, {"purpose": "p", "length": 32, "kind": SecretKind.token.value}).changes
    changed = provider.diff("p", old, {"purpose": "p", "length": 32, "kind": SecretKind.ec_p256_key.value})
    assert changed.changes and changed.replaces == ["kind"]


def test_the_operator_kubeconfig_has_a_context_per_dc_through_its_gateway():
    loaded = load_topology(LAB_TOPOLOGY)
    domain = next(d for d in trust_domains(loaded) if d.name == KUBE_API)
    issued = _TlsAuthorityProvider().create({"name": KUBE_API, "subjects": [s.to_dict() for s in domain.subjects]})
    text = operator_kubeconfig(loaded, ca_cert=issued.outs["ca_cert"], certs=issued.outs["certs"])
    config = yaml.safe_load(text)
    gateways = {h.dc: str(h.address) for h in loaded.placement.by_role(Role.gateway)}
    port = BY_NAME["gateway-kube-api"].port
    clusters = {c["name"]: c["cluster"] for c in config["clusters"]}
    assert clusters.keys() == {f"lab-{dc}" for dc in gateways}
    for dc, address in gateways.items():
        cluster = clusters[f"lab-{dc}"]
        assert cluster["server"] == f"https://{address}:{port}"
        assert cluster["tls-server-name"] == kube_api_name("lab")
        assert base64.b64decode(cluster["certificate-authority-data"]).decode() == issued.outs["ca_cert"]
    (user,) = config["users"]
    cert = x509.load_pem_x509_certificate(base64.b64decode(user["user"]["client-certificate-data"]))
    assert cert.subject.rfc4514_string() == "CN=hivestack:operator,O=hivestack:operators"
    assert config["current-context"] in clusters


def test_kubeconfig_writes_the_secret_0600(monkeypatch, tmp_path: Path, capsys):
    monkeypatch.setattr(project, "stack_outputs", lambda stack: {"kubeconfig": "[secret]"})
    monkeypatch.setattr(project, "stack_secret_output", lambda stack, name: "apiVersion: v1\n")
    target = tmp_path / "new" / "kubeconfig"
    assert main(["kubeconfig", "--stack", "lab", "--output", str(target)]) == 0
    assert target.read_text() == "apiVersion: v1\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert "apiVersion" not in capsys.readouterr().out  # the secret goes to the file only
    assert [p.name for p in target.parent.iterdir()] == ["kubeconfig"]  # no temporary file left


def test_kubeconfig_replaces_a_readable_file_with_a_private_one(tmp_path: Path):
    target = tmp_path / "kubeconfig"
    target.write_text("old")
    target.chmod(0o644)
    kubeconfig_cmd.write_private(target, "new")
    assert target.read_text() == "new" and stat.S_IMODE(target.stat().st_mode) == 0o600


def test_kubeconfig_without_a_control_plane_cannot_run(monkeypatch, tmp_path: Path, capsys):
    monkeypatch.setattr(project, "stack_outputs", lambda stack: {"inventory": {}})
    assert main(["kubeconfig", "--output", str(tmp_path / "k")]) == 2
    assert "no Kubernetes control plane" in capsys.readouterr().err
    assert not (tmp_path / "k").exists()


def test_kubeconfig_needs_an_output(capsys):
    with pytest.raises(SystemExit) as e:
        main(["kubeconfig"])
    assert e.value.code == 2
    assert "--output" in capsys.readouterr().err
