"""When each playbook stage may start: what it needs, plus every earlier stage on one of its hosts."""

from __future__ import annotations

import pytest

from hivestack.ansible import STAGES
from hivestack.ansible.schedule import hosts_of, run_after, stage_hosts
from hivestack.topology import load_topology
from tests.conftest import LAB_TOPOLOGY, ROOT, SAMPLE_TOPOLOGY

pytestmark = pytest.mark.unit

EVERY = frozenset({"a-db-1", "a-edge-1", "b-db-1"})
GROUPS = {"role_db": frozenset({"a-db-1", "b-db-1"}), "role_gateway": frozenset({"a-edge-1"})}


@pytest.mark.parametrize(
    ("pattern", "hosts"),
    [
        ("all", EVERY),
        ("role_db", {"a-db-1", "b-db-1"}),
        ("role_db:role_gateway", EVERY),
        ("role_db, role_gateway", EVERY),
        ("a-edge-1", {"a-edge-1"}),
        ("role_storage", set()),  # a group this topology leaves empty
        ("all:!role_db", EVERY),  # not resolved: counted as every host
        ("role_db:&role_gateway", EVERY),
    ],
)
def test_a_play_pattern_names_its_hosts(pattern: str, hosts: set[str]):
    assert hosts_of(pattern, GROUPS, EVERY) == hosts


def test_the_lab_runs_the_control_plane_beside_the_gateways_and_nothing_else_side_by_side():
    after = run_after(STAGES, stage_hosts(ROOT, load_topology(LAB_TOPOLOGY)))
    assert after == {
        "common": (),
        "etcd": ("common",),
        "database": ("common", "etcd"),  # same hosts as etcd
        "kubernetes": ("common", "etcd", "database"),  # control hosts are the db hosts here
        "gateway": ("common", "etcd", "database"),  # not the control plane: edge hosts only
        "ledger": ("common", "etcd", "database", "kubernetes", "gateway"),  # it retires an account on every host
    }


def test_stages_on_hosts_of_their_own_wait_only_for_what_they_need():
    hosts = {"common": EVERY, "etcd": frozenset({"a-db-1"}), "database": frozenset({"b-db-1"})}
    needs = {"common": (), "etcd": ("common",), "database": ("common",)}
    assert run_after(needs, hosts) == {"common": (), "etcd": ("common",), "database": ("common",)}


def test_every_stage_of_the_sample_waits_for_the_base():
    after = run_after(STAGES, stage_hosts(ROOT, load_topology(SAMPLE_TOPOLOGY)))
    assert all("common" in waits for stage, waits in after.items() if stage != "common")


@pytest.mark.parametrize("needs", [{"a": ("b",), "b": ()}, {"a": ("missing",)}])
def test_a_need_not_declared_before_its_stage_is_refused(needs):
    with pytest.raises(ValueError, match="not declared before it"):
        run_after(needs, dict.fromkeys(needs, EVERY))
