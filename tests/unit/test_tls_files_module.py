"""The common role's `hivestack_tls_files` module, on a temporary root: what it writes, that a second run finds
nothing to do, that a tampered file or mode is named, and located errors for entries it cannot install."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.unit

_spec = importlib.util.spec_from_file_location(
    "hivestack_tls_files", ROOT / "playbooks" / "roles" / "common" / "library" / "hivestack_tls_files.py"
)
assert _spec and _spec.loader
tls_files = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = tls_files  # its dataclass looks its module up
_spec.loader.exec_module(tls_files)

ENTRIES = [
    {"domain": "etcd-peer", "purpose": "member", "group": "svc", "kind": "pair"},
    {"domain": "gateway", "purpose": "server", "group": "svc", "kind": "bundle"},
    {"domain": "ledger", "purpose": "client", "group": "root", "kind": "trust"},
]
MATERIAL = {
    "etcd-peer/member": {"ca": "CA1\n", "cert": "C1\n", "key": "K1\n"},
    "gateway/server": {"ca": "CA2\n", "cert": "C2\n", "key": "K2\n"},
    "ledger/client": {"ca": "CA3\n", "cert": "", "key": ""},
}
GIDS = {"svc": os.getgid(), "root": 0}


def plan(root: Path, entries=ENTRIES, material=MATERIAL) -> list:
    """What a check-mode run would report."""
    return tls_files.converge(tls_files.wanted(str(root), entries, material, GIDS.__getitem__), check=True)


def install(root: Path) -> list:
    return tls_files.converge(tls_files.wanted(str(root), ENTRIES, MATERIAL, GIDS.__getitem__), check=False)


def test_installs_each_identity_once_and_names_what_drifted(tmp_path: Path):
    assert len(install(tmp_path)) == 13  # on a fresh root: 3 domains, 3 identities, 7 files
    member = tmp_path / "etcd-peer" / "member"
    assert (member / "host-key.pem").read_text() == "K1\n" and (member / "host-key.pem").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "gateway" / "server" / "host-bundle.pem").read_text() == "C2\nK2\n"
    assert not (tmp_path / "gateway" / "server" / "host-key.pem").exists()
    assert sorted(p.name for p in (tmp_path / "ledger" / "client").iterdir()) == ["ca.pem"]
    assert member.stat().st_mode & 0o777 == 0o750
    assert plan(tmp_path) == []  # a second run changes nothing
    (member / "host-key.pem").write_text("edited by hand\n")
    (tmp_path / "ledger" / "client" / "ca.pem").chmod(0o600)
    assert [w.path for w in plan(tmp_path)] == [str(member / "host-key.pem"), str(tmp_path / "ledger/client/ca.pem")]


def test_entries_it_cannot_install_are_named(tmp_path: Path):
    bad_kind = [{**ENTRIES[0], "kind": "keystore"}]
    with pytest.raises(ValueError, match=r"etcd-peer/member: kind 'keystore' is not one of"):
        plan(tmp_path, bad_kind)
    with pytest.raises(ValueError, match="etcd-peer/member: no material given"):
        plan(tmp_path, ENTRIES[:1], {})
    no_key = {"etcd-peer/member": {"ca": "CA1\n", "cert": "C1\n", "key": ""}}
    with pytest.raises(ValueError, match="etcd-peer/member: this host has no certificate or key"):
        plan(tmp_path, ENTRIES[:1], no_key)


def test_a_link_where_a_directory_belongs_is_replaced_not_followed(tmp_path: Path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    root = tmp_path / "tls"
    root.mkdir()
    (root / "ledger").symlink_to(elsewhere)
    install(root)
    assert not (root / "ledger").is_symlink() and (root / "ledger" / "client" / "ca.pem").read_text() == "CA3\n"
    assert elsewhere.stat().st_mode & 0o777 == 0o700 and list(elsewhere.iterdir()) == []
    assert plan(root) == []


def test_an_entry_without_its_fields_is_named():
    with pytest.raises(ValueError, match="an entry lacks group"):
        tls_files.wanted("/r", [{"domain": "d", "purpose": "p", "kind": "trust"}], {}, GIDS.__getitem__)
