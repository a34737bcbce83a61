"""SSH host keys are verified everywhere: the lab's against the keys it made, other servers' on first contact."""

from __future__ import annotations

import errno
import shlex
import subprocess
from pathlib import Path

import pytest

from hivestack.ansible.inventory import build, first_contact_record
from hivestack.lab import hosts
from hivestack.lab.providers import KnownHostsProvider
from hivestack.topology import load_topology
from tests.conftest import LAB_TOPOLOGY

pytestmark = pytest.mark.unit


def _options(hostvars: dict[str, object]) -> dict[str, str]:
    words = shlex.split(str(hostvars["ansible_ssh_common_args"]))
    return dict(w.split("=", 1) for w in words if "=" in w and not w.startswith("ProxyCommand"))


def test_lab_hosts_are_held_to_the_keys_the_lab_made() -> None:
    lab = {
        "core_ns": "hsabcd-core",
        "mgmt": "100.64.0.1",
        "ssh_key_file": "/k",
        "known_hosts_file": "/state/known_hosts",
    }
    loaded = load_topology(LAB_TOPOLOGY)
    hostvars = build(loaded, {"lab": lab})["_meta"]["hostvars"]
    assert set(hostvars) == {h.name for h in loaded.placement.hosts}
    for hv in hostvars.values():
        assert _options(hv)["StrictHostKeyChecking"] == "yes"
        assert _options(hv)["UserKnownHostsFile"] == "/state/known_hosts"


def test_other_servers_are_recorded_on_first_contact_per_stack(tmp_path: Path) -> None:
    trust = first_contact_record(tmp_path, "prod")
    hostvars = build(load_topology(LAB_TOPOLOGY), {}, trust)["_meta"]["hostvars"]
    for hv in hostvars.values():
        assert _options(hv) == {
            "StrictHostKeyChecking": "accept-new",
            "UserKnownHostsFile": str(tmp_path / ".hivestack" / "ssh" / "prod" / "known_hosts"),
            "LogLevel": "ERROR",
        }


def test_host_keys_are_made_natively_once_and_read_back(tmp_path: Path) -> None:
    host_dir = hosts.state_dir(tmp_path, "lab", "h1") / "upper"
    (host_dir / "etc" / "ssh").mkdir(parents=True)
    hosts._make_host_keys(host_dir)
    first = hosts.host_key(tmp_path, "lab", "h1")
    assert first.startswith("ssh-ed25519 ")
    hosts._make_host_keys(host_dir)  # a reboot on the kept overlay keeps the identity
    assert hosts.host_key(tmp_path, "lab", "h1") == first
    fingerprint = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(host_dir / f"{hosts.HOST_KEY}.pub")],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert "ED25519" in fingerprint.stdout


def test_known_hosts_file_lists_every_host_and_follows_changes(tmp_path: Path) -> None:
    file = tmp_path / "ssh" / "known_hosts"
    provider = KnownHostsProvider()
    props = {"file": str(file), "hosts": {"10.0.0.2": "ssh-ed25519 BBB", "10.0.0.1": "ssh-ed25519 AAA"}}
    provider.create(props)
    assert file.read_text() == "10.0.0.1 ssh-ed25519 AAA\n10.0.0.2 ssh-ed25519 BBB\n"
    news = {**props, "hosts": {"10.0.0.1": "ssh-ed25519 CCC"}}
    assert provider.diff("id", props, news).changes
    provider.update("id", props, news)
    assert file.read_text() == "10.0.0.1 ssh-ed25519 CCC\n"
    file.unlink()
    provider.read("id", news)  # a deleted file is written again from the state
    assert file.read_text() == "10.0.0.1 ssh-ed25519 CCC\n"
    provider.delete("id", news)
    assert not file.exists()


@pytest.mark.parametrize(
    "vanished",
    [FileNotFoundError, lambda path: OSError(errno.ENODEV, "No such device", str(path))],
    ids=["directory gone", "being torn down"],
)
def test_host_processes_are_read_although_cgroups_vanish_meanwhile(tmp_path: Path, monkeypatch, vanished) -> None:
    """A booting host's systemd removes unit cgroups while the lab lists them (seen on `lab fault start`; ENODEV on
    an emulated host's per-connection sshd, the likely cause of a failed re-creation in CI)."""
    from hivestack.lab.names import LabNames

    names = LabNames("lab")
    base = tmp_path / "unified"
    monkeypatch.setattr(hosts, "CGROUP_ROOTS", (base,))
    cg = base / names.cgroup("h1")
    (cg / "payload" / "gone.service").mkdir(parents=True)
    (cg / "payload" / "cgroup.procs").write_text("101\n102\n")
    vanishing = cg / "payload" / "gone.service" / "cgroup.procs"
    vanishing.write_text("103\n")
    real_read = Path.read_text

    def read_text(self: Path, *args, **kwargs) -> str:
        if self == vanishing:
            raise vanished(self)
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    assert hosts.cgroup_pids(names, "h1") == [101, 102]


def test_host_processes_are_read_although_a_cgroup_vanishes_while_listed(tmp_path: Path, monkeypatch) -> None:
    """The CI failure: a unit's cgroup directory went away between finding it and listing it (`Path.rglob` raised)."""
    import os

    from hivestack.lab.names import LabNames

    names = LabNames("lab")
    base = tmp_path / "unified"
    monkeypatch.setattr(hosts, "CGROUP_ROOTS", (base,))
    cg = base / names.cgroup("h1")
    gone = cg / "payload" / "system.slice" / "systemd-user-sessions.service"
    gone.mkdir(parents=True)
    (cg / "payload" / "cgroup.procs").write_text("101\n")
    real_scandir = os.scandir

    def scandir(path):
        if Path(path) == gone:
            raise FileNotFoundError(path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert hosts.cgroup_pids(names, "h1") == [101]


def test_stack_processes_are_every_host_of_that_stack_only(tmp_path: Path, monkeypatch) -> None:
    """What the destroy check counts: processes of any host of the stack, none of another stack's."""
    from hivestack.lab.names import LabNames

    mine, other = LabNames("labtest"), LabNames("lab")
    base = tmp_path / "unified"
    monkeypatch.setattr(hosts, "CGROUP_ROOTS", (base,))
    for names, host, pid in ((mine, "h1", "101"), (mine, "h2", "202"), (other, "h1", "303")):
        cg = base / names.cgroup(host) / "payload"
        cg.mkdir(parents=True)
        (cg / "cgroup.procs").write_text(f"{pid}\n")
    assert hosts.stack_pids(mine) == [101, 202]
