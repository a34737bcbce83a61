"""Model and placement rules that valid topologies exercise (case files only hold rejections), and the escaping of
everything a topology file can put into a message."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from hivestack.cli.main import main
from hivestack.topology import TopologyError, load_topology
from hivestack.topology.printable import printable
from tests.conftest import LAB_TOPOLOGY

pytestmark = pytest.mark.unit


def lab_with(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    doc = yaml.safe_load(LAB_TOPOLOGY.read_text())
    change(doc)
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_an_empty_remote_site_needs_no_room_for_hosts(tmp_path: Path):
    def add_dr(doc: dict[str, Any]) -> None:
        doc["datacenters"].append({"name": "dr", "subnet": "10.80.9.0/30", "latency_ms": 4, "remote": True})
        for cell in doc["cells"]:
            cell["dr"] = "dr"

    loaded = load_topology(lab_with(tmp_path, add_dr))
    assert not [h for h in loaded.placement.hosts if h.dc == "dr"]


def test_simulated_nodes_are_no_hosts_and_take_no_addresses(tmp_path: Path):
    """A subnet with room for the DC's servers only still holds any number of simulated nodes."""

    def many_nodes(doc: dict[str, Any]) -> None:
        doc["datacenters"][0]["subnet"] = "10.80.1.0/28"  # 16 addresses: room for 5 servers past the offset
        kwok = next(p for p in doc["datacenters"][0]["pools"] if p.get("simulated"))
        kwok.update(count=300, arch="arm64", cpu=16, memory_gb=64, pods=250)

    loaded = load_topology(lab_with(tmp_path, many_nodes))
    nodes = [n for n in loaded.placement.simulated_nodes if n.dc == "dc-a"]
    assert len(nodes) == 300 and not {n.name for n in nodes} & {h.name for h in loaded.placement.hosts}
    assert {(n.cpu, n.memory_gb, n.pods) for n in nodes} == {(16, 64, 250)}
    assert nodes[0].labels("lab-city") == {
        "topology.kubernetes.io/region": "lab-city",
        "topology.kubernetes.io/zone": "dc-a",
        "kubernetes.io/arch": "arm64",
        "hivestack.io/pool": nodes[0].pool,
    }
    assert [h.dc for h in loaded.placement.hosts].count("dc-a") == 2


@pytest.mark.parametrize("wide_first", [True, False])
def test_a_subnet_inside_another_is_an_overlap_whichever_comes_first(tmp_path: Path, wide_first: bool):
    def nest(doc: dict[str, Any]) -> None:
        doc["datacenters"][0 if wide_first else 2]["subnet"] = "10.80.0.0/16"

    with pytest.raises(TopologyError) as caught:
        load_topology(lab_with(tmp_path, nest))
    (problem,) = caught.value.problems
    # Reported on the later DC of the first pair found, as the pairwise check did: dc-b inside a wide dc-a, or dc-a
    # inside a wide dc-c.
    assert problem.path == ("datacenters[dc-b].subnet" if wide_first else "datacenters[dc-c].subnet")
    assert "overlaps dc-a's subnet" in problem.message


def test_hash_slot_ranges_hold_any_number_of_accounts(tmp_path: Path):
    def slots(doc: dict[str, Any]) -> None:
        doc["routing"]["key"] = "hash-slot"
        doc["objectives"]["accounts"] = 3_000_000
        for cell in doc["cells"]:
            cell["accounts"] = 1_000_000  # 100 times the slots of its range

    assert load_topology(lab_with(tmp_path, slots)).topology.cells[0].accounts == 1_000_000


def test_etcd_hosts_in_a_remote_site_are_not_quorum_members(tmp_path: Path):
    def etcd_in_dr(doc: dict[str, Any]) -> None:
        pool = {"name": "dr-ctl", "roles": ["etcd"], "arch": "amd64", "count": 5, "cpu": 2, "memory_gb": 2}
        doc["datacenters"].append(
            {"name": "dr", "subnet": "10.80.9.0/24", "remote": True, "pools": [{**pool, "unit_cost": 1}]}
        )

    # Three same-city members, one per DC: as valid with five more in a remote site as without them.
    assert load_topology(lab_with(tmp_path, etcd_in_dr)).topology.datacenters[-1].remote


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("dc-a\nerror: forged", "dc-a\\nerror: forged"),
        ("\x1b[2J\x1b]0;title\x07", "\\x1b[2J\\x1b]0;title\\x07"),
        ("\x9b31m", "\\x9b31m"),  # C1 control sequence introducer
        ("abc\u202edcb", "abc\\u202edcb"),  # right-to-left override
        ("München \\n", "München \\n"),  # printable text and backslashes are left as they are
    ],
)
def test_printable_escapes_what_could_drive_a_terminal(raw: str, shown: str):
    assert printable(raw) == shown
    assert printable(raw).isprintable()


def test_cannot_run_messages_are_escaped(tmp_path: Path, capsys):
    assert main(["plan", str(tmp_path / "topo\x1b[31m.yaml\nerror: forged: no such file")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.rstrip("\n").isprintable() and err.startswith("error: "), err


def test_json_problems_are_ascii(tmp_path: Path, capsys):
    path = tmp_path / "topo\u202e.yaml"
    path.write_text(LAB_TOPOLOGY.read_text().replace("name: a-edge,", 'name: "a-edge\\u009b2J",'))
    assert main(["topology", "validate", "--json", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.isascii()
    problems = json.loads(out)["problems"]
    assert any(p["path"] == "datacenters[dc-a].pools[0].name" and p["line"] for p in problems), problems
