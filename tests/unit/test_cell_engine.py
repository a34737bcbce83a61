"""The RTO floor validation applies is derived from the timers the playbooks deploy: read them from the roles."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from hivestack.topology import TopologyError, load_topology
from hivestack.topology.cell_engine import CELL_ENGINE_RTO_FLOOR
from tests.conftest import LAB_TOPOLOGY

pytestmark = pytest.mark.unit


def iso_seconds(duration: str) -> float:
    """Galera's ISO 8601 durations as the role writes them: PT1S, PT0.2S."""
    match = re.fullmatch(r"PT(\d+(?:\.\d+)?)S", duration)
    assert match, f"unexpected duration {duration!r}"
    return float(match.group(1))


def test_floor_matches_the_galera_and_gateway_role_defaults(root: Path):
    roles = root / "playbooks" / "roles"
    galera = yaml.safe_load((roles / "galera" / "defaults" / "main.yml").read_text())
    gateway = yaml.safe_load((roles / "gateway" / "defaults" / "main.yml").read_text())
    template = (roles / "gateway" / "templates" / "haproxy.cfg.j2").read_text()
    falls = {int(n) for n in re.findall(r"\bfall (\d+)\b", template)}
    assert CELL_ENGINE_RTO_FLOOR.engine == "galera"
    assert CELL_ENGINE_RTO_FLOOR.suspect_timeout_s == iso_seconds(galera["galera_evs"]["evs.suspect_timeout"])
    assert CELL_ENGINE_RTO_FLOOR.check_inter_ms == gateway["gateway_check_inter_ms"]
    assert falls == {CELL_ENGINE_RTO_FLOOR.check_fall}, falls


def test_floor_is_below_what_the_drills_measure():
    # README, drills: a lost writer's DC is writable again in 1.58-1.95 s; a floor above that would be wrong.
    assert 0 < CELL_ENGINE_RTO_FLOOR.seconds < 1.58


@pytest.mark.parametrize("margin", [-0.01, 0.0])
def test_rto_objective_at_the_floor_is_accepted_below_it_refused(tmp_path: Path, margin: float):
    rto = CELL_ENGINE_RTO_FLOOR.seconds + margin
    path = tmp_path / "topology.yaml"
    text = LAB_TOPOLOGY.read_text()
    assert "rto_seconds: 3 " in text
    path.write_text(text.replace("rto_seconds: 3 ", f"rto_seconds: {rto} "))
    if margin < 0:
        with pytest.raises(TopologyError, match="galera cell engine cannot recover faster than"):
            load_topology(path)
    else:
        assert load_topology(path).topology.objectives.rto_seconds == rto
