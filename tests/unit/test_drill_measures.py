"""Data-driven: every file in tests/unit/drill_cases/ is one behaviour of the drill measures (hivestack.drills.measure).

A case holds the fault's window, what is inside it, the cell's ack-log records as the load client writes them
({t, target, key, status, latency_ms, db_member}; status null for a connection error) and `expect`, a subset of
`CellMeasure.to_dict()` worked out by hand from the records (floats compared with pytest.approx).
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from hivestack.drills.measure import Ack, CellMeasure, Window, cell_measure

pytestmark = pytest.mark.unit

CASES = sorted((Path(__file__).parent / "drill_cases").glob("*.json"))
CASE_KEYS = {"description", "window", "inside_dcs", "inside_hosts", "led_from_inside", "isolates", "acks", "expect"}
RECORD_KEYS = {"t", "target", "key", "status", "latency_ms", "db_member"}
MEASURE_FIELDS = {f.name for f in fields(CellMeasure)}


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def measure(case: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    w = case["window"]
    return cell_measure(
        case.get("cell", "cell-a"),
        [Ack.from_record(r) for r in records],
        Window(w["fault"], w["isolated_from"], w["heal"]),
        set(case["inside_dcs"]),
        set(case["inside_hosts"]),
        case["led_from_inside"],
        case["isolates"],
    ).to_dict()


def expected(value: Any) -> Any:
    if isinstance(value, float):
        return pytest.approx(value, abs=1e-6)
    return value


def test_corpus_is_large_enough():
    assert len(CASES) >= 8


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_case_is_well_formed(path: Path):
    case = load(path)
    assert set(case) >= CASE_KEYS, f"{path.name}: missing {sorted(CASE_KEYS - set(case))}"
    assert case["description"].strip()
    w = case["window"]
    assert w["fault"] <= w["isolated_from"] <= w["heal"]
    assert case["acks"] and all(set(r) == RECORD_KEYS for r in case["acks"])
    assert len({r["key"] for r in case["acks"]}) == len(case["acks"]), "one record per idempotency key"
    assert case["expect"] and set(case["expect"]) <= MEASURE_FIELDS, sorted(set(case["expect"]) - MEASURE_FIELDS)


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_measure(path: Path):
    case = load(path)
    got = measure(case, case["acks"])
    for name, want in case["expect"].items():
        assert got[name] == expected(want), f"{path.stem}: {name} is {got[name]!r}, expected {want!r}"


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_record_order_does_not_matter(path: Path):
    # Several workers append to one ack log: its lines are not strictly ordered by answer time.
    case = load(path)
    assert measure(case, list(reversed(case["acks"]))) == measure(case, case["acks"])
