"""The Pulumi program's resources, built under Pulumi's mocks: counts per DC, labels, quorum placement, secrets."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pulumi
import pytest

from tests.conftest import LAB_TOPOLOGY, SAMPLE_TOPOLOGY


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


def build(topology_path) -> tuple[RecordingMocks, pulumi.Output]:
    """Build the platform; the returned output resolves once every resource reached the mock monitor."""
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="hivestack", stack="unit", preview=False)
    # Imported after set_mocks, as Pulumi's testing guide asks.
    from hivestack.components import Platform, PlatformArgs
    from hivestack.topology import load_topology

    platform = Platform("unit", PlatformArgs(topology=load_topology(topology_path)))
    children = [*platform.hosts.values(), *platform.cells.values(), *platform.firewall, *platform.secrets.values()]
    return mocks, pulumi.Output.all(*[r.urn for r in children])


@pulumi.runtime.test
def test_lab_hosts_per_dc_and_labels():
    from hivestack.components import types

    mocks, registered = build(LAB_TOPOLOGY)

    def check(_: Any) -> None:
        hosts = mocks.of_type(types.HOST)
        assert Counter(h["dc"] for h in hosts) == {"dc-a": 2, "dc-b": 2, "dc-c": 3}
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

    def check(_: Any) -> None:
        hosts = mocks.of_type(types.HOST)
        per_dc = Counter(h["dc"] for h in hosts)
        assert per_dc == {"sz-a": 200, "sz-b": 200, "sz-c": 200, "sz-d": 200, "sz-e": 200, "gz-dr": 40}
        assert all(h["arch"] == "arm64" for h in hosts)
        # etcd and the Kubernetes control plane: exactly one member in each same-city DC.
        for role in ("etcd", "k8s-control"):
            assert Counter(h["dc"] for h in hosts if role in h["roles"]) == dict.fromkeys(
                ["sz-a", "sz-b", "sz-c", "sz-d", "sz-e"], 1
            )
        host_dc = {h["name"]: h["dc"] for h in hosts}
        cells = mocks.of_type(types.CELL)
        assert len(cells) == 60
        for cell in cells:
            dcs = [m["dc"] for m in cell["members"]]
            assert len(set(dcs)) == len(dcs) == 3
            assert host_dc[cell["writer"]] == cell["home"] == dcs[0]
            assert all(host_dc[m["host"]] == m["dc"] for m in cell["members"])
        for rule in mocks.of_type(types.FIREWALL_RULE):
            if rule["port"] in sensitive_ports():
                assert rule["from_cidrs"] == []
        secrets = [p for t, _, p in mocks.resources if t == "pulumi-python:dynamic:Resource"]
        # etcd root, GNS agent, three per cell, and the platform CA.
        assert len(secrets) == 2 + 3 * 60 + 1

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
        assert facts is not None and len(facts.cells) == 60
        assert check(facts) == []

    return registered.apply(verify)
