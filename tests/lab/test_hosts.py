"""Every lab host is what the topology says it is: name, address, architecture, DC; systemd healthy."""

from __future__ import annotations

import json
import subprocess

import pytest
import testinfra

from hivestack.ansible.inventory import build
from hivestack.ansible.runner import PlaybookResult, run_playbook
from hivestack.topology import load_topology
from tests.conftest import LAB_TOPOLOGY

pytestmark = pytest.mark.lab
HOSTS = load_topology(LAB_TOPOLOGY).placement.hosts


@pytest.fixture(scope="module")
def remote(lab):
    return {
        h.name: testinfra.get_host(f"ssh://root@{lab.address(h.name)}", ssh_config=str(lab.ssh_config)) for h in HOSTS
    }


@pytest.mark.parametrize("expected", HOSTS, ids=lambda h: h.name)
def test_host_matches_topology(expected, remote):
    host = remote[expected.name]
    assert host.check_output("hostname") == expected.name
    assert host.check_output("uname -m") == expected.arch.machine
    addresses = host.interface("eth0").addresses
    assert str(expected.address) in addresses
    facts = json.loads(host.file("/etc/hivestack/host.json").content_string)
    assert (facts["dc"], facts["pool"]) == (expected.dc, expected.pool)
    # Its default route leaves through its own DC's router.
    assert host.check_output("ip -4 route show default").split()[2] == str(expected.address).rsplit(".", 1)[0] + ".1"


@pytest.mark.parametrize("expected", HOSTS, ids=lambda h: h.name)
def test_systemd_is_healthy(expected, remote):
    host = remote[expected.name]
    assert host.run("systemctl is-system-running --wait").stdout.strip() == "running", host.run(
        "systemctl --failed --no-legend"
    ).stdout
    # Emulated hosts run sshd per connection (lab.hosts: every process under qemu costs its own emulator).
    sshd = "hivestack-sshd.socket" if expected.arch.value == "arm64" else "ssh"
    assert host.service(sshd).is_running


def test_inventory_groups_and_ansible_ping(lab, root):
    import os
    import subprocess

    env = {**os.environ, "HIVESTACK_STACK": lab.stack, "ANSIBLE_CONFIG": str(root / "ansible.cfg")}
    graph = subprocess.run(
        [str(root / ".venv/bin/ansible-inventory"), "-i", "inventories/lab", "--graph"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    for group in ("@dc_dc_a", "@dc_dc_b", "@dc_dc_c", "@role_db", "@role_gateway", "@pool_c_worker", "@cell_cell_a"):
        assert group in graph, graph
    ping = subprocess.run(
        [str(root / ".venv/bin/ansible"), "all", "-i", "inventories/lab", "-m", "ping", "-o"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert ping.stdout.count("SUCCESS") == len(HOSTS)


def test_nothing_routes_to_the_outside_world(lab):
    """Checked on the routing tables, without sending traffic anywhere: the core has no default route, and
    the root namespace has no route into the lab (management goes through the core namespace)."""
    import subprocess

    core_default = subprocess.run(
        ["ip", "-n", lab.names.core_ns, "route", "show", "default"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert core_default.stdout.strip() == ""
    root_routes = subprocess.run(
        ["ip", "route", "show"], capture_output=True, text=True, check=True, timeout=300
    ).stdout
    for dc in lab.topology.topology.datacenters:
        assert str(dc.subnet) not in root_routes


def test_apt_works_through_the_proxy(remote):
    host = remote["a-edge-1"]
    assert "100.64.0.1:3142" in host.file("/etc/apt/apt.conf.d/01hivestack-proxy").content_string
    update = host.run("apt-get -q update")
    assert update.rc == 0, update.stderr


def test_wheelhouse_is_the_hosts_pypi(remote, tmp_path):
    from hivestack.lab.network import WHEELHOUSE

    probe = WHEELHOUSE / f"hivestack_probe-0.0.{tmp_path.name[-6:].replace('-', '')}-py3-none-any.whl"
    probe.write_bytes(b"")
    try:
        host = remote["b-db-1"]
        assert "find-links = http://100.64.0.1:3141/" in host.file("/etc/pip.conf").content_string
        listing = host.check_output(
            "python3 -c \"import urllib.request; print(urllib.request.urlopen('http://100.64.0.1:3141/').read().decode())\""
        )
        assert probe.name in listing
    finally:
        probe.unlink()


def test_ansible_refuses_a_host_whose_key_is_not_the_one_the_lab_made(lab, tmp_path):
    """Through the same runner as `pulumi up`: the inventory's known_hosts decides, ansible-runner's default (host key
    checking off) does not. A positive control: the same run with the lab's own known_hosts reaches the host."""
    host = HOSTS[0].name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True, timeout=300
    )
    forged = tmp_path / "known_hosts"
    forged.write_text(f"{lab.address(host)} {(tmp_path / 'other.pub').read_text().split()[0]} "
                      f"{(tmp_path / 'other.pub').read_text().split()[1]}\n")  # fmt: skip

    def ping(known_hosts: str) -> PlaybookResult:
        outputs = {**lab.outputs, "lab": {**lab.outputs["lab"], "known_hosts_file": known_hosts}}
        inventory = build(lab.topology, outputs)
        # A fresh connection: a warm multiplexed one (ControlPersist) was verified when it was opened and would be
        # reused without looking at known_hosts again. Given here, Ansible adds no ControlPath of its own.
        inventory["_meta"]["hostvars"][host]["ansible_ssh_common_args"] += " -o ControlPath=none"
        return run_playbook(lab.hivestack_root, "common.yml", inventory, {}, {}, check=True, tags="never", limit=host)

    refused = ping(str(forged))
    assert refused.hosts[host].unreachable == 1, refused
    assert "host key verification failed" in json.dumps([f.message for f in refused.failures]).lower(), refused
    reached = ping(lab.outputs["lab"]["known_hosts_file"])
    # Facts are gathered (ok); the role itself may refuse to run without the stage's secrets: not this test's concern.
    assert reached.hosts[host].unreachable == 0 and reached.hosts[host].ok >= 1, reached
