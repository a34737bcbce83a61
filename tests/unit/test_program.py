"""The Pulumi program's resources, built under Pulumi's mocks: hosts per DC and pool as the topology declares them,
labels, quorum placement, each cell's members in its failover order, secrets."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pulumi
import pytest

from hivestack.topology import load_topology
from tests.conftest import LAB_TOPOLOGY, ROOT, SAMPLE_TOPOLOGY


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[tuple[str, str, dict[str, Any]]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append((args.typ, args.name, dict(args.inputs)))
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None

    def of_type(self, typ: str) -> list[dict[str, Any]]:
        return [props for t, _, props in self.resources if t == typ]


pytestmark = pytest.mark.unit


def build(topology_path, configure: bool = False) -> tuple[RecordingMocks, pulumi.Output]:
    """Build the platform (configure: and its host configuration stages, as the program does on a lab stack); the
    returned output resolves once every resource reached the mock monitor."""
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="hivestack", stack="unit", preview=False)
    # Imported after set_mocks, as Pulumi's testing guide asks.
    from hivestack.ansible.stages import configure_hosts
    from hivestack.components import Platform, PlatformArgs

    loaded = load_topology(topology_path)
    platform = Platform("unit", PlatformArgs(topology=loaded))
    children = [*platform.hosts.values(), *platform.cells.values(), *platform.firewall, *platform.secrets.values()]
    if configure:
        children += configure_hosts(ROOT, loaded, None, platform.host_secrets(), triggers=[], depends_on=[])
    return mocks, pulumi.Output.all(*[r.urn for r in children])


def declared_servers(topology_path) -> Counter[tuple[str, str, str]]:
    """Servers the topology file declares, per (DC, pool, arch): read from its pools, not from the placement.
    A simulated pool declares Kubernetes nodes, not servers."""
    t = load_topology(topology_path).topology
    return Counter(
        {(dc.name, p.name, p.arch.value): p.count for dc in t.datacenters for p in dc.pools if not p.simulated}
    )


@pulumi.runtime.test
def test_lab_hosts_per_dc_and_labels():
    from hivestack.components import types

    mocks, registered = build(LAB_TOPOLOGY)

    def check(_: Any) -> None:
        hosts = mocks.of_type(types.HOST)
        assert Counter((h["dc"], h["pool"], h["arch"]) for h in hosts) == declared_servers(LAB_TOPOLOGY)
        for h in hosts:
            assert h["labels"]["topology.kubernetes.io/zone"] == h["dc"]
            assert h["labels"]["kubernetes.io/arch"] == h["arch"]
            assert h["machine"] == {"arm64": "aarch64", "amd64": "x86_64"}[h["arch"]]

    return registered.apply(check)


@pulumi.runtime.test
def test_sample_counts_quorum_placement_and_firewall():
    from hivestack.components import types
    from hivestack.topology.ports import sensitive_ports

    mocks, registered = build(SAMPLE_TOPOLOGY)
    topology = load_topology(SAMPLE_TOPOLOGY).topology

    def check(_: Any) -> None:
        hosts = mocks.of_type(types.HOST)
        assert Counter((h["dc"], h["pool"], h["arch"]) for h in hosts) == declared_servers(SAMPLE_TOPOLOGY)
        # etcd and the Kubernetes control plane: exactly one member in each same-city DC.
        for role in ("etcd", "k8s-control"):
            assert Counter(h["dc"] for h in hosts if role in h["roles"]) == dict.fromkeys(
                [dc.name for dc in topology.same_city_dcs], 1
            )
        host_dc = {h["name"]: h["dc"] for h in hosts}
        cells = mocks.of_type(types.CELL)
        assert {c["name"]: [m["dc"] for m in c["members"]] for c in cells} == {
            c.name: c.member_dcs for c in topology.cells
        }
        for cell in cells:
            dcs = [m["dc"] for m in cell["members"]]
            assert len(set(dcs)) == len(dcs)
            assert host_dc[cell["writer"]] == cell["home"] == dcs[0]
            assert all(host_dc[m["host"]] == m["dc"] for m in cell["members"])
        for rule in mocks.of_type(types.FIREWALL_RULE):
            if rule["port"] in sensitive_ports():
                assert rule["from_cidrs"] == []
        secrets = [p for t, _, p in mocks.resources if t == "pulumi-python:dynamic:Resource"]
        # etcd root, GNS agent, three per cell, Kubernetes' signing and encryption keys, and a CA per trust domain:
        # etcd peers, etcd clients, the gateways' front door, the ledgers, each cell's database, and Kubernetes'
        # etcd peers, etcd clients and API.
        assert len(secrets) == 2 + 3 * len(topology.cells) + 2 + 4 + len(topology.cells) + 3
        authorities = {p["name"] for p in secrets if "subjects" in p}
        assert authorities == {
            "tls-etcd-peer",
            "tls-etcd-client",
            "tls-gateway",
            "tls-ledger",
            "tls-k8s-etcd-peer",
            "tls-k8s-etcd-client",
            "tls-kube-api",
        } | {f"tls-db-{c['name']}" for c in cells}
        kinds = {p["purpose"]: p["kind"] for p in secrets if "kind" in p}
        assert kinds["Kubernetes service-account signing key"] == "ec-p256-key"
        assert set(kinds.values()) == {"token", "ec-p256-key"}

    return registered.apply(check)


@pulumi.runtime.test
def test_declared_resources_pass_the_policy_rules():
    from types import SimpleNamespace

    from hivestack_policies import facts_from_resources

    from hivestack.topology.survivability import check

    mocks, registered = build(SAMPLE_TOPOLOGY)

    def verify(_: Any) -> None:
        resources = [SimpleNamespace(resource_type=t, props=p) for t, _, p in mocks.resources]
        facts = facts_from_resources(resources)
        assert facts is not None
        # Every declared cell, once; in the order the mocks saw them registered, which the engine does not fix.
        declared = sorted(c.name for c in facts.cells)
        assert declared == sorted(c.name for c in load_topology(SAMPLE_TOPOLOGY).topology.cells)
        assert check(facts) == []

    return registered.apply(verify)
