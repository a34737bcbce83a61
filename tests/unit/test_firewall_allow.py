"""Each host's inbound allow list (hivestack.ansible.platform_vars.firewall_allow): SSH only from where operators
come from (the topology's management networks and bastions, the lab's core namespace), services from their clients."""

from __future__ import annotations

from pathlib import Path

import pytest

from hivestack.ansible.platform_vars import firewall_allow
from hivestack.topology import LoadedTopology, load_topology
from hivestack.topology.model import Role
from hivestack.topology.ports import BY_NAME, SSH_PORT
from tests.conftest import LAB_TOPOLOGY

pytestmark = pytest.mark.unit
LAB_MGMT = "100.64.0.1"


def ssh_rule(loaded: LoadedTopology, lab_mgmt: str | None) -> list[list[dict]]:
    return [
        [rule for rule in firewall_allow(loaded, host, lab_mgmt) if rule["service"] == "ssh"]
        for host in loaded.placement.hosts
    ]


@pytest.fixture
def managed(tmp_path: Path) -> LoadedTopology:
    path = tmp_path / "topology.yaml"
    path.write_text(
        LAB_TOPOLOGY.read_text() + "management:\n  networks: [10.99.0.0/24]\n  bastions: [10.99.1.5, 10.98.0.9]\n"
    )
    return load_topology(path)


def test_ssh_comes_from_the_management_networks_and_bastions(managed):
    sources = ["10.98.0.9/32", "10.99.0.0/24", "10.99.1.5/32"]
    for rules in ssh_rule(managed, None):
        assert rules == [{"service": "ssh", "ports": [SSH_PORT], "sources": sources}]
    # A lab made from it: its controller comes from the core namespace as well.
    for rules in ssh_rule(managed, LAB_MGMT):
        assert rules[0]["sources"] == sorted([*sources, f"{LAB_MGMT}/32"])


def test_the_lab_takes_ssh_from_its_core_namespace_only():
    for rules in ssh_rule(load_topology(LAB_TOPOLOGY), LAB_MGMT):
        assert rules == [{"service": "ssh", "ports": [SSH_PORT], "sources": [f"{LAB_MGMT}/32"]}]


def test_without_a_management_section_ssh_stays_open():
    for rules in ssh_rule(load_topology(LAB_TOPOLOGY), None):
        assert rules[0]["sources"] == ["0.0.0.0/0"]


def test_the_front_door_is_https_only():
    loaded = load_topology(LAB_TOPOLOGY)
    gateway = next(h for h in loaded.placement.hosts if Role.gateway in h.roles)
    opened = {port for rule in firewall_allow(loaded, gateway, LAB_MGMT) for port in rule["ports"]}
    assert BY_NAME["gateway-https"].port in opened
    assert 8080 not in opened and 80 not in opened  # no plain-HTTP port to be redirected from
