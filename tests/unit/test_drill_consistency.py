"""Data-driven: every file in tests/unit/drill_cases/consistency/ is one behaviour of the consistency check after a
drill (hivestack.drills.consistency.check_cell) and of its two verdicts (RPO 0, the same data).

A case holds the acknowledged `keys` and what each member answers, in failover order: `{"holds": [...],
"fingerprint": {...}}` for a member in service, optionally with `state` (what it says of itself, when not in
service) or `look_up_fails` (the error its look-up raises); `{"unreachable": "error"}` for one that answers
nothing. `expect` is worked out by hand: `rpo_writes`, `diverged`, `not_checked` (per member: why) and the two
verdicts as [outcome, value].
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hivestack.drills.catalog import DRILLS
from hivestack.drills.consistency import check_cell
from hivestack.drills.remote import RemoteError
from hivestack.drills.targets import RPO_TARGET, SAME_DATA_TARGET, Outcome, all_met, judge
from hivestack.engines import Member, MemberState

pytestmark = pytest.mark.unit

CASES = sorted((Path(__file__).parent / "drill_cases" / "consistency").glob("*.json"))
ANSWER_KEYS = {"holds", "fingerprint", "state", "look_up_fails", "unreachable"}
TARGETS = {"rpo": RPO_TARGET, "same_data": SAME_DATA_TARGET}
OUTCOMES = {o.value for o in Outcome}
IN_SERVICE = {"in_quorum": True, "synced": True, "group_size": 3, "last_committed": 40, "phase": "Synced"}


class CaseEngine:
    """A CellEngine whose members answer as the case says."""

    name = "case"

    def __init__(self, answers: dict[str, dict[str, Any]]) -> None:
        self.answers = answers
        self.looked_up: list[str] = []

    def state(self, m: Member, shell: Any) -> MemberState:
        answer = self.answers[m.host]
        if "unreachable" in answer:
            return MemberState(m, False, error=answer["unreachable"])
        said = {**IN_SERVICE, **answer.get("state", {})}
        return MemberState(m, True, safe_to_write=said["in_quorum"] and said["synced"], **said)

    def transfer_keys(self, m: Member, shell: Any, keys: list[str]) -> set[str]:
        self.looked_up.append(m.host)
        if error := self.answers[m.host].get("look_up_fails"):
            raise RemoteError(error)
        return set(self.answers[m.host]["holds"]) & set(keys)

    def fingerprint(self, m: Member, shell: Any) -> dict[str, str]:
        return self.answers[m.host]["fingerprint"]


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def checked(case: dict[str, Any]) -> tuple[Any, CaseEngine]:
    members = [Member("cell-a", h, f"dc-{h[0]}", "10.80.1.11", i, 3306, 9200) for i, h in enumerate(case["members"])]
    engine = CaseEngine(case["members"])
    return check_cell(engine, "cell-a", members, lambda host, command: "", case["keys"]), engine


def test_corpus_is_large_enough():
    assert len(CASES) >= 8


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_case_is_well_formed(path: Path):
    case = load(path)
    assert set(case) == {"description", "keys", "members", "expect"} and case["description"].strip()
    assert len(case["members"]) >= 3 and all(set(a) <= ANSWER_KEYS and a for a in case["members"].values())
    expect = case["expect"]
    assert set(expect) == {"rpo_writes", "diverged", "not_checked", "verdicts"}
    assert set(expect["verdicts"]) == set(TARGETS)
    assert all(outcome in OUTCOMES for outcome, _ in expect["verdicts"].values())


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_check_and_verdicts(path: Path):
    case = load(path)
    expect = case["expect"]
    result, engine = checked(case)
    assert (result.rpo_writes, result.diverged, result.not_checked) == (
        expect["rpo_writes"],
        expect["diverged"],
        expect["not_checked"],
    ), path.stem
    # Only members in service are asked for keys (a joining member's gaps are not losses yet).
    in_service = [h for h, a in case["members"].items() if "unreachable" not in a and "state" not in a]
    assert engine.looked_up == in_service
    verdicts = {v.target: v for v in judge(DRILLS["dc-outage"], [], [result], 3.0, None, None)}
    for name, (outcome, value) in expect["verdicts"].items():
        assert (verdicts[TARGETS[name]].outcome.value, verdicts[TARGETS[name]].value) == (outcome, value), name


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_a_member_not_checked_is_never_a_pass(path: Path):
    result, _ = checked(load(path))
    verdicts = judge(DRILLS["dc-outage"], [], [result], 3.0, None, None)
    if result.not_checked:
        assert not any(v.met for v in verdicts) and not all_met(verdicts)
        assert all(host in v.value for v in verdicts for host in result.not_checked)
