"""Lab logic that needs no lab: names per stack, provider diffs (what replaces a host), the derived inventory."""

from __future__ import annotations

import subprocess

import pytest

from hivestack.ansible.inventory import build, group
from hivestack.lab import hosts
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
    outputs = {"lab": {"core_ns": "hsabcd-core", "mgmt": "100.64.0.1", "ssh_key_file": "/k", "known_hosts_file": "/kh"}}
    loaded = load_topology(LAB_TOPOLOGY)
    inv = build(loaded, outputs)
    # Every group, as the topology file declares it: a pool's servers are <pool>-1..<pool>-<count>. A simulated
    # pool has no servers: its nodes are platform data, never hosts to reach.
    expected: dict[str, set[str]] = {}
    simulated: set[str] = set()
    for dc in loaded.topology.datacenters:
        for pool in dc.pools:
            servers = {f"{pool.name}-{n}" for n in range(1, pool.count + 1)}
            if pool.simulated:
                simulated |= servers
                continue
            kinds = [("dc", dc.name), ("pool", pool.name), ("arch", pool.arch.value)]
            for kind, name in [*kinds, *(("role", r.value) for r in pool.roles)]:
                expected.setdefault(group(kind, name), set()).update(servers)
    assert {g: set(v["hosts"]) for g, v in inv.items() if not g.startswith(("_", "all", "cell_"))} == expected
    assert simulated, "the lab topology declares simulated Kubernetes workers"
    assert {n["name"] for n in inv["all"]["vars"]["hivestack_simulated_nodes"]} == simulated
    assert not simulated & set(inv["_meta"]["hostvars"])
    host_dc = {h: v["hivestack_dc"] for h, v in inv["_meta"]["hostvars"].items()}
    for cell in loaded.topology.cells:
        members = inv[group("cell", cell.name)]["hosts"]
        # One db host in each of the cell's DCs, no other.
        assert sorted(host_dc[h] for h in members) == sorted(cell.member_dcs)
        assert set(members) <= expected[group("role", "db")]
    hv = inv["_meta"]["hostvars"]["c-worker-1"]
    assert hv["ansible_host"] == "10.80.3.12" and hv["hivestack_machine"] == "aarch64"
    assert "ip netns exec hsabcd-core nc %h %p" in hv["ansible_ssh_common_args"]
    # SSH only from where the controller comes from: the core namespace's management address.
    for host_vars in inv["_meta"]["hostvars"].values():
        ssh = [rule for rule in host_vars["hivestack_firewall_allow"] if rule["service"] == "ssh"]
        assert ssh == [{"service": "ssh", "ports": [22], "sources": ["100.64.0.1/32"]}]


def test_a_boot_probe_that_times_out_counts_as_no_answer_yet(monkeypatch, tmp_path):
    """On a machine busy with another stack, `nc` may not even start within its 5 s: the host is waited for."""
    answers = iter([subprocess.TimeoutExpired("nc", 5), subprocess.CompletedProcess([], 0, b"SSH-2.0-OpenSSH\r\n")])

    def probe(*_: object, **__: object) -> subprocess.CompletedProcess[bytes]:
        answer = next(answers)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    monkeypatch.setattr(hosts.subprocess, "run", probe)
    monkeypatch.setattr(hosts, "_started_process_state", lambda *_: (True, None))
    monkeypatch.setattr(hosts, "cgroup_pids", lambda *_: [])
    monkeypatch.setattr(hosts.time, "sleep", lambda _: None)
    assert hosts.wait_ready(["true"], LabNames("unit"), tmp_path, "a-edge-1", "10.80.1.10") >= 0
    assert next(answers, None) is None  # both probes were made
