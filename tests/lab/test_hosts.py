"""Every lab host is what the topology says it is: name, address, architecture, DC; systemd healthy."""

from __future__ import annotations

import json

import pytest
import testinfra

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
    ).stdout
    for group in ("@dc_dc_a", "@dc_dc_b", "@dc_dc_c", "@role_db", "@role_gateway", "@pool_c_worker", "@cell_cell_a"):
        assert group in graph, graph
    ping = subprocess.run(
        [str(root / ".venv/bin/ansible"), "all", "-i", "inventories/lab", "-m", "ping", "-o"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert ping.stdout.count("SUCCESS") == len(HOSTS)


def test_nothing_routes_to_the_outside_world(lab):
    """Checked on the routing tables, without sending traffic anywhere: the core has no default route, and
    the root namespace has no route into the lab (management goes through the core namespace)."""
    import subprocess

    core_default = subprocess.run(
        ["ip", "-n", lab.names.core_ns, "route", "show", "default"], capture_output=True, text=True, check=True
    )
    assert core_default.stdout.strip() == ""
    root_routes = subprocess.run(["ip", "route", "show"], capture_output=True, text=True, check=True).stdout
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
