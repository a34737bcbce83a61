"""Lab logic that needs no lab: names per stack, provider diffs (what replaces a host), the derived inventory."""

from __future__ import annotations

import pytest

from hivestack.ansible.inventory import build
from hivestack.lab.names import LabNames
from hivestack.lab.providers import LabHostProvider, LabNetworkProvider
from hivestack.topology import load_topology
from tests.conftest import LAB_TOPOLOGY

pytestmark = pytest.mark.unit

HOST = {
    "stack": "lab",
    "root": "/r",
    "name": "a-edge-1",
    "dc": "dc-a",
    "dc_index": 0,
    "pool": "a-edge",
    "address": "10.80.1.10",
    "prefixlen": 24,
    "arch": "amd64",
    "authorized_key": "ssh-ed25519 AAAA",
}


def test_two_stacks_never_share_a_name():
    a, b = LabNames("lab"), LabNames("labtest")
    assert a.tag != b.tag and a.core_ns != b.core_ns and a.host_ns("x") != b.host_ns("x")
    assert a.tag.startswith("hs") and len(a.core_ns) <= 15


@pytest.mark.parametrize("key", ["pool", "address", "dc", "arch"])
def test_changing_placement_replaces_the_host(key):
    news = {**HOST, key: "changed"}
    diff = LabHostProvider().diff("id", HOST, news)
    assert diff.changes and key in diff.replaces


def test_unchanged_host_has_no_diff():
    assert not LabHostProvider().diff("id", HOST, dict(HOST)).changes


def test_latency_switch_updates_the_network_in_place():
    olds = {"stack": "lab", "dcs": [{"name": "dc-a"}], "latency": True}
    diff = LabNetworkProvider().diff("id", olds, {**olds, "latency": False})
    assert diff.changes and not diff.replaces


def test_inventory_groups_per_dc_role_pool_cell():
    outputs = {"lab": {"core_ns": "hsabcd-core", "ssh_key_file": "/k", "known_hosts_file": "/kh"}}
    inv = build(load_topology(LAB_TOPOLOGY), outputs)
    assert inv["dc_dc_a"]["hosts"] == ["a-db-1", "a-edge-1"]
    assert inv["role_db"]["hosts"] == ["a-db-1", "b-db-1", "c-db-1"]
    assert inv["cell_cell_b"]["hosts"] == ["a-db-1", "b-db-1", "c-db-1"]
    assert inv["pool_c_worker"]["hosts"] == ["c-worker-1"]
    assert inv["arch_arm64"]["hosts"] == ["c-worker-1"]
    hv = inv["_meta"]["hostvars"]["c-worker-1"]
    assert hv["ansible_host"] == "10.80.3.12" and hv["hivestack_machine"] == "aarch64"
    assert "ip netns exec hsabcd-core nc %h %p" in hv["ansible_ssh_common_args"]
