"""The drills package without a lab: targets, consistency, the Galera engine's drill queries, reports, the ack log
readers, the catalog, what a drill knows of the lab stack (and its SSH control directory), the fault injectors, and
the run (its options, its finish and a failed step). Remote shells, engines and the load are fakes; nothing here
reaches a host."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hivestack.drills import consistency, faults, report
from hivestack.drills.catalog import DRILLS, INJECTOR_NAMES, Scope, drill
from hivestack.drills.consistency import (
    CellConsistency,
    NotConverged,
    acked_keys,
    check_cell,
    rpo_summary,
    wait_converged,
)
from hivestack.drills.faults import FaultError, LabFaults, PlaybookFaults, injector
from hivestack.drills.load import AckTail, read_acks
from hivestack.drills.measure import Ack, CellMeasure, acks_per_second
from hivestack.drills.remote import RemoteError
from hivestack.drills.runbook import DrillError, Options, Run
from hivestack.drills.stack import Stack
from hivestack.drills.targets import (
    BACKUP_LOSS_STALL_S,
    LEAVES_QUORUM_TARGET,
    PLANNED_PAUSE_S,
    RPO_TARGET,
    SAME_DATA_TARGET,
    Outcome,
    Verdict,
    all_met,
    judge,
    passed,
)
from hivestack.engines import Member, MemberState
from hivestack.engines.galera import KEYS_PER_QUERY, Galera
from hivestack.topology import load_topology
from tests.conftest import LAB_TOPOLOGY, ROOT

pytestmark = pytest.mark.unit

RTO_TARGET_S = 3.0


# ---------------------------------------------------------------- helpers


def cell_measure(cell: str = "cell-a", led: bool = False, **overrides: Any) -> CellMeasure:
    values: dict[str, Any] = {
        "rto_s": 0.5,
        "max_pause_s": 0.5,
        "errors": 0,
        "acked": 10,
        "writers": ["a-db-1"],
        "split_brain": False,
    }
    values.update(overrides)
    return CellMeasure(cell=cell, led_from_inside=led, **values)


HOSTS = ("a-db-1", "b-db-1", "c-db-1")


def cell_check(
    cell: str = "cell-a",
    missing: dict[str, list[str]] | None = None,
    fingerprints: dict[str, dict[str, str]] | None = None,
    not_checked: dict[str, str] | None = None,
) -> CellConsistency:
    """Every member checked and holding everything, unless told otherwise."""
    skipped = not_checked or {}
    same = {"accounts": "8:1", "transfers": "10:2"}
    checked = [h for h in HOSTS if h not in skipped]
    fps = fingerprints if fingerprints is not None else {h: dict(same) for h in checked}
    lacking = missing if missing is not None else {h: [] for h in checked}
    return CellConsistency(cell, 10, lacking, fps, skipped)


def by_target(verdicts: list[Verdict], cell: str) -> dict[str, Verdict]:
    return {v.target: v for v in verdicts if v.cell == cell}


def outcome(verdict: Verdict) -> tuple[Outcome, str]:
    return verdict.outcome, verdict.value


def member(host: str = "a-db-1", cell: str = "cell-a", order: int = 0) -> Member:
    return Member(cell, host, f"dc-{host[0]}", "10.80.1.11", order, 3306, 9200)


def in_service(m: Member, committed: int = 40) -> MemberState:
    return MemberState(m, True, True, True, True, 3, committed, "Synced")


def ack(t: float, dc: str = "dc-a", status: int | None = 201, key: str = "k") -> Ack:
    return Ack(t, t - 0.01, dc, key, status, "a-db-1" if status == 201 else None)


# ---------------------------------------------------------------- targets.judge


def test_judge_all_met_for_a_clean_dc_outage():
    measures = [cell_measure("cell-a", led=True, rto_s=1.6, max_pause_s=1.8), cell_measure("cell-b")]
    checks = [cell_check("cell-a"), cell_check("cell-b")]
    verdicts = judge(DRILLS["dc-outage"], measures, checks, RTO_TARGET_S, None, None)
    assert all_met(verdicts) and {v.outcome for v in verdicts} == {Outcome.MET}
    assert set(by_target(verdicts, "cell-a")) == {RPO_TARGET, SAME_DATA_TARGET, "no split-brain", "RTO <= 3 s"}
    assert set(by_target(verdicts, "cell-b")) == {
        RPO_TARGET,
        SAME_DATA_TARGET,
        "no split-brain",
        "no client error",
        f"stall < {BACKUP_LOSS_STALL_S:g} s",
    }
    assert outcome(by_target(verdicts, "cell-a")[RPO_TARGET]) == (Outcome.MET, "0 lost of 10")
    assert not [v for v in verdicts if v.cell == "*"]  # no load inside: no minority verdict, nobody asked inside


def test_judge_rpo():
    check = cell_check(missing={"a-db-1": [], "b-db-1": ["k1"], "c-db-1": ["k1", "k2"]})
    verdicts = judge(DRILLS["dc-outage"], [], [check], RTO_TARGET_S, None, None)
    assert outcome(by_target(verdicts, "cell-a")[RPO_TARGET]) == (Outcome.MISSED, "2 lost")
    assert not all_met(verdicts)


def test_judge_divergence():
    fps = {"a-db-1": {"transfers": "10:2"}, "b-db-1": {"transfers": "10:3"}, "c-db-1": {"transfers": "10:2"}}
    verdict = by_target(judge(DRILLS["dc-outage"], [], [cell_check(fingerprints=fps)], 3, None, None), "cell-a")
    assert verdict[SAME_DATA_TARGET] == Verdict("cell-a", SAME_DATA_TARGET, Outcome.MISSED, "diverged")
    assert verdict[RPO_TARGET].met


def test_judge_a_member_not_checked_is_not_checked_never_met():
    why = {"c-db-1": "unreachable (c-db-1: exit 255: No route to host)"}
    verdicts = judge(DRILLS["dc-outage"], [], [cell_check(not_checked=why)], RTO_TARGET_S, None, None)
    expected = "c-db-1 not checked: unreachable (c-db-1: exit 255: No route to host)"
    assert outcome(by_target(verdicts, "cell-a")[RPO_TARGET]) == (Outcome.NOT_CHECKED, expected)
    assert outcome(by_target(verdicts, "cell-a")[SAME_DATA_TARGET]) == (Outcome.NOT_CHECKED, expected)
    assert not any(v.met for v in verdicts) and not all_met(verdicts)


def test_judge_split_brain():
    detail = "2 writes acknowledged inside and 6 outside during the cut"
    m = cell_measure(led=True, split_brain=True, split_brain_detail=detail)
    v = by_target(judge(DRILLS["dc-partition"], [m], [], RTO_TARGET_S, 0, {}), "cell-a")["no split-brain"]
    assert outcome(v) == (Outcome.MISSED, detail)
    clean = judge(DRILLS["dc-partition"], [cell_measure()], [], RTO_TARGET_S, 0, {})
    assert outcome(by_target(clean, "cell-a")["no split-brain"]) == (Outcome.MET, "none")


def test_judge_split_brain_not_measured_gives_no_verdict():
    # One host lost: no sides, so nothing to find writers on; no verdict claims "no split-brain".
    m = cell_measure(split_brain=None)
    assert "no split-brain" not in by_target(judge(DRILLS["host-loss"], [m], [], RTO_TARGET_S, None, None), "cell-a")


@pytest.mark.parametrize(
    ("rto_s", "met", "value"),
    [(1.6, True, "1.60 s"), (3.0, True, "3.00 s"), (3.01, False, "3.01 s"), (None, False, "never")],
)
def test_judge_rto_of_a_cell_led_from_inside(rto_s, met, value):
    # Errors and the stall are not judged where the writer was lost: the RTO is.
    m = cell_measure(led=True, rto_s=rto_s, errors=7, max_pause_s=9.0)
    verdicts = by_target(judge(DRILLS["dc-outage"], [m], [], RTO_TARGET_S, None, None), "cell-a")
    assert set(verdicts) == {"no split-brain", "RTO <= 3 s"}
    assert (verdicts["RTO <= 3 s"].met, verdicts["RTO <= 3 s"].value) == (met, value)


@pytest.mark.parametrize(
    ("errors", "pause", "errors_met", "stall_met"),
    [(0, 1.3, True, True), (1, 1.3, False, True), (0, 2.0, True, False), (0, 1.99, True, True)],
)
def test_judge_errors_and_stall_of_a_cell_that_lost_a_backup(errors, pause, errors_met, stall_met):
    m = cell_measure(led=False, rto_s=None, errors=errors, max_pause_s=pause, split_brain=None)
    verdicts = by_target(judge(DRILLS["host-loss"], [m], [], RTO_TARGET_S, None, None), "cell-a")
    assert "RTO <= 3 s" not in verdicts  # not led from inside: no RTO verdict, even without one measured
    assert (verdicts["no client error"].met, verdicts["no client error"].value) == (errors_met, f"{errors} errors")
    stall = verdicts[f"stall < {BACKUP_LOSS_STALL_S:g} s"]
    assert (stall.met, stall.value) == (stall_met, f"{pause:.2f} s")


@pytest.mark.parametrize("name", ["dc-evacuation", "failback"])
@pytest.mark.parametrize(("pause", "met"), [(0.4, True), (1.0, True), (1.01, False)])
def test_judge_planned_pause(name, pause, met):
    led = cell_measure("cell-a", led=True, max_pause_s=pause, rto_s=None, errors=3, split_brain=None)
    other = cell_measure("cell-b", led=False, max_pause_s=5.0, errors=4, split_brain=None)
    verdicts = judge(DRILLS[name], [led, other], [], RTO_TARGET_S, None, None)
    target = f"write pause <= {PLANNED_PAUSE_S:g} s"
    assert set(by_target(verdicts, "cell-a")) == {target}
    assert (by_target(verdicts, "cell-a")[target].met, by_target(verdicts, "cell-a")[target].value) == (
        met,
        f"{pause:.2f} s",
    )
    assert by_target(verdicts, "cell-b") == {}  # the others are not judged on a planned switch


def test_judge_gray_failure_only_on_loss_and_divergence():
    degraded = [
        cell_measure("cell-a", led=True, rto_s=None, max_pause_s=9.0, errors=12, split_brain=None),
        cell_measure("cell-b", led=False, rto_s=None, max_pause_s=9.0, errors=12, split_brain=None),
    ]
    verdicts = judge(DRILLS["gray-failure"], degraded, [cell_check("cell-a"), cell_check("cell-b")], 3, None, None)
    assert all_met(verdicts)
    assert {v.target for v in verdicts} == {RPO_TARGET, SAME_DATA_TARGET}
    lost = judge(DRILLS["gray-failure"], degraded, [cell_check(missing={"a-db-1": ["k1"]})], 3, None, None)
    assert not all_met(lost)


@pytest.mark.parametrize(("acked", "met"), [(0, True), (3, False)])
def test_judge_minority_acked(acked, met):
    verdicts = judge(DRILLS["dc-partition"], [], [], RTO_TARGET_S, acked, None)
    refuses = [v for v in verdicts if v.target == "the cut-off side refuses writes"]
    assert refuses == [Verdict("*", "the cut-off side refuses writes", passed(met), f"{acked} acknowledged")]


def out_of_quorum(m: Member) -> MemberState:
    return MemberState(m, True, False, False, False, 1, 38, "Initialized")


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (out_of_quorum, (Outcome.MET, "c-db-1 out of quorum of 1, Initialized @38")),
        (in_service, (Outcome.MISSED, "c-db-1 in quorum of 3, Synced @40")),
        # An unreachable member said nothing: "not in the quorum" is not shown, however it reads.
        (
            lambda m: MemberState(m, False, error="c-db-1: exit 255"),
            (Outcome.NOT_CHECKED, "c-db-1 unreachable (c-db-1: exit 255)"),
        ),
    ],
    ids=["out-of-quorum", "in-quorum", "unreachable"],
)
def test_judge_members_inside_a_partition_leave_the_quorum(state, expected):
    inside = {"cell-c@c-db-1": state(member("c-db-1", "cell-c")), "cell-a@c-db-1": out_of_quorum(member("c-db-1"))}
    verdicts = judge(DRILLS["dc-partition"], [], [], RTO_TARGET_S, 0, inside)
    assert outcome(by_target(verdicts, "cell-c")[LEAVES_QUORUM_TARGET]) == expected
    assert by_target(verdicts, "cell-a")[LEAVES_QUORUM_TARGET].met
    assert all_met(verdicts) is (expected[0] is Outcome.MET)


def test_judge_members_inside_a_partition_not_asked_is_not_checked():
    for inside in (None, {}):
        verdicts = judge(DRILLS["dc-partition"], [], [], RTO_TARGET_S, 0, inside)
        assert by_target(verdicts, "*")[LEAVES_QUORUM_TARGET] == Verdict(
            "*", LEAVES_QUORUM_TARGET, Outcome.NOT_CHECKED, "not asked during the cut"
        )
        assert not all_met(verdicts)
    # A DC cut with its management (no load inside, nobody to ask): not a target.
    assert LEAVES_QUORUM_TARGET not in {v.target for v in judge(DRILLS["dc-outage"], [], [], 3, None, None)}


def test_verdict_json_names_its_outcome():
    verdict = Verdict("cell-a", RPO_TARGET, Outcome.NOT_CHECKED, "b-db-1 not checked: unreachable (x)")
    assert verdict.to_dict() == {
        "cell": "cell-a",
        "target": RPO_TARGET,
        "outcome": "not checked",
        "value": "b-db-1 not checked: unreachable (x)",
    }
    assert not verdict.met


# ---------------------------------------------------------------- consistency


def test_rpo_writes_counts_each_missing_key_once():
    c = CellConsistency("cell-a", 5, {"a-db-1": [], "b-db-1": ["k1", "k2"], "c-db-1": ["k2", "k3"]})
    assert c.rpo_writes == 3
    assert CellConsistency("cell-a", 5, {"a-db-1": [], "b-db-1": []}).rpo_writes == 0


def test_rpo_writes_unknown_unless_every_member_was_checked():
    assert CellConsistency("cell-a", 5).rpo_writes is None  # nobody answered: not 0
    assert CellConsistency("cell-a", 5, {"a-db-1": []}, not_checked={"b-db-1": "unreachable"}).rpo_writes is None
    assert CellConsistency("cell-a", 0, {"a-db-1": [], "b-db-1": []}).rpo_writes is None  # nothing to look up
    # Found missing on a member that answered: lost, whatever the one not checked holds.
    partial = CellConsistency("cell-a", 5, {"a-db-1": ["k1"]}, not_checked={"b-db-1": "unreachable"})
    assert partial.rpo_writes == 1


def test_diverged_compares_every_members_fingerprints():
    same = {"accounts": "8:1", "transfers": "10:2"}
    assert CellConsistency("cell-a", 0, fingerprints={"a": same, "b": dict(reversed(same.items()))}).diverged is False
    assert CellConsistency("cell-a", 0, fingerprints={"a": same}).diverged is False
    assert CellConsistency("cell-a", 0, fingerprints={"a": same, "b": {**same, "transfers": "10:3"}}).diverged
    assert CellConsistency("cell-a", 0, fingerprints={"a": same, "b": {"accounts": "8:1"}}).diverged


def test_diverged_unknown_when_a_member_was_not_checked():
    same = {"accounts": "8:1"}
    assert CellConsistency("cell-a", 0).diverged is None
    assert CellConsistency("cell-a", 0, fingerprints={"a": same}, not_checked={"b": "unreachable"}).diverged is None
    split = {"a": same, "b": {"accounts": "8:2"}}
    assert CellConsistency("cell-a", 0, fingerprints=split, not_checked={"c": "unreachable"}).diverged is True


def test_consistency_to_dict_keeps_members_with_missing_keys_and_at_most_20():
    keys = [f"k{i:02}" for i in range(25)]
    d = CellConsistency("cell-a", 25, {"a-db-1": [], "b-db-1": keys}, {"a-db-1": {}, "b-db-1": {}}).to_dict()
    assert d["missing"] == {"b-db-1": keys[:20]}
    assert (d["rpo_writes"], d["looked_up"], d["diverged"], d["not_checked"]) == (25, 25, False, {})
    assert "acked" not in d  # the measure's (writes acknowledged during the fault) in the report's cells


def test_rpo_summary_is_unknown_while_a_cell_is_not_checked():
    lost_one = cell_check("cell-a", missing={"a-db-1": ["k1"], "b-db-1": [], "c-db-1": []})
    assert rpo_summary([lost_one, cell_check("cell-b")]) == {"acked": 20, "lost": 1, "not_checked": []}
    unchecked = cell_check("cell-b", not_checked={"c-db-1": "unreachable"})
    assert rpo_summary([lost_one, unchecked]) == {"acked": 20, "lost": None, "not_checked": ["cell-b"]}


def test_acked_keys_are_the_acknowledged_ones_once_sorted():
    acks = [ack(1.0, key="k2"), ack(1.1, status=503, key="k3"), ack(1.2, status=None, key="k4"), ack(1.3, key="k1")]
    acks.append(ack(1.4, key="k2"))  # a retried request answered twice
    assert acked_keys(acks) == ["k1", "k2"]


class FakeEngine:
    """Implements what the drills ask of a CellEngine; `polls` scripts `state`, one step per call per member:
    (safe, last committed) or "unreachable"."""

    name = "fake"

    def __init__(self, held: dict[str, set[str]] | None = None, fingerprints=None, polls=None) -> None:
        self.held = held or {}
        self.fingerprints = fingerprints or {}
        self.polls: list[dict[str, Any]] = polls or []
        self.calls: list[tuple[str, str]] = []
        self._seen: dict[tuple[str, str], int] = {}

    def members(self, cell: dict[str, Any]) -> list[Member]:
        return Galera().members(cell)

    def state(self, m: Member, shell: Any) -> MemberState:
        poll = self._seen.get((m.cell, m.host), 0)
        self._seen[(m.cell, m.host)] = poll + 1
        script = self.polls[min(poll, len(self.polls) - 1)][m.host]
        if script == "unreachable":
            return MemberState(m, False, error="ssh: connection refused")
        safe, committed = script
        if safe:
            return in_service(m, committed)
        return MemberState(m, True, False, False, False, 1, committed, "Joiner")

    def transfer_keys(self, m: Member, shell: Any, keys: list[str]) -> set[str]:
        self.calls.append(("transfer_keys", m.host))
        return self.held[m.host] & set(keys)

    def fingerprint(self, m: Member, shell: Any) -> dict[str, str]:
        self.calls.append(("fingerprint", m.host))
        return self.fingerprints[m.host]


class FakeClock:
    """Stands for the time module in hivestack.drills.consistency: sleeping advances the clock, instantly."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(consistency, "time", fake)
    return fake


CELLS = {
    "cell-a": [member("a-db-1"), member("b-db-1", order=1), member("c-db-1", order=2)],
    "cell-b": [member("b-db-1", "cell-b"), member("c-db-1", "cell-b", 1), member("a-db-1", "cell-b", 2)],
}
SYNCED = {"a-db-1": (True, 40), "b-db-1": (True, 40), "c-db-1": (True, 40)}


def test_check_cell_looks_up_every_key_on_every_member():
    fps = {"a-db-1": {"transfers": "3:9"}, "b-db-1": {"transfers": "3:9"}, "c-db-1": {"transfers": "2:5"}}
    held = {"a-db-1": {"k1", "k2", "k3"}, "b-db-1": {"k1", "k2", "k3", "k9"}, "c-db-1": {"k2"}}
    engine = FakeEngine(held, fps, [SYNCED])
    result = check_cell(engine, "cell-a", CELLS["cell-a"], lambda host, command: "", ["k1", "k2", "k3"])
    assert result.looked_up == 3 and result.not_checked == {}
    assert result.missing == {"a-db-1": [], "b-db-1": [], "c-db-1": ["k1", "k3"]}
    assert result.rpo_writes == 2 and result.diverged
    assert result.fingerprints == fps
    assert sorted(engine.calls) == sorted((call, h) for call in ("transfer_keys", "fingerprint") for h in fps)


def test_check_cell_asks_nothing_of_a_member_out_of_service():
    polls = [{**SYNCED, "b-db-1": "unreachable", "c-db-1": (False, 12)}]
    engine = FakeEngine({h: {"k1"} for h in HOSTS}, {h: {"t": "1:1"} for h in HOSTS}, polls)
    result = check_cell(engine, "cell-a", CELLS["cell-a"], lambda host, command: "", ["k1"])
    assert result.not_checked == {
        "b-db-1": "unreachable (ssh: connection refused)",
        "c-db-1": "out of quorum of 1, Joiner @12",  # catching up: its gaps would read as lost writes
    }
    assert result.missing == {"a-db-1": []} and {h for _, h in engine.calls} == {"a-db-1"}
    assert (result.rpo_writes, result.diverged) == (None, None)


def test_check_cell_a_failed_look_up_is_not_checked():
    class GoneMidway(FakeEngine):
        def fingerprint(self, m: Member, shell: Any) -> dict[str, str]:
            if m.host == "c-db-1":
                raise RemoteError("c-db-1: exit 255: Connection reset")
            return super().fingerprint(m, shell)

    engine = GoneMidway({h: {"k1"} for h in HOSTS}, {h: {"t": "1:1"} for h in HOSTS}, [SYNCED])
    result = check_cell(engine, "cell-a", CELLS["cell-a"], lambda host, command: "", ["k1"])
    assert result.not_checked == {"c-db-1": "look-up failed: c-db-1: exit 255: Connection reset"}
    assert sorted(result.missing) == sorted(result.fingerprints) == ["a-db-1", "b-db-1"]  # nothing half-recorded
    assert result.rpo_writes is None


def test_wait_converged_at_once(clock):
    assert wait_converged(FakeEngine(polls=[SYNCED]), CELLS, lambda h, c: "", timeout=5) == 0
    assert clock.sleeps == []


def test_wait_converged_waits_for_members_in_service_and_the_same_last_transaction(clock):
    joining = {**SYNCED, "c-db-1": (False, 12)}
    behind = {**SYNCED, "c-db-1": (True, 39)}
    engine = FakeEngine(polls=[joining, behind, SYNCED])
    assert wait_converged(engine, CELLS, lambda h, c: "", timeout=60) == pytest.approx(2.0)
    assert clock.sleeps == [1, 1]


def test_wait_converged_times_out(clock):
    engine = FakeEngine(polls=[{**SYNCED, "b-db-1": "unreachable", "c-db-1": (False, 12)}])
    with pytest.raises(NotConverged) as caught:
        wait_converged(engine, {"cell-a": CELLS["cell-a"]}, lambda h, c: "", timeout=0.5)
    message = str(caught.value)
    assert message.startswith("not converged after")
    assert "cell-a: " in message and "b-db-1 unreachable (ssh: connection refused)" in message
    assert "c-db-1 out of quorum of 1, Joiner @12" in message
    assert clock.sleeps == [1]


# ---------------------------------------------------------------- Galera: states, transfer_keys, fingerprint


class FakeShell:
    """A RemoteShell recording the SQL each `mariadb -e` runs; `answer(sql)` gives its stdout."""

    def __init__(self, answer) -> None:
        self.answer = answer
        self.commands: list[tuple[str, str]] = []
        self.sql: list[str] = []

    def __call__(self, host: str, command: str) -> str:
        self.commands.append((host, command))
        argv = shlex.split(command)
        # -r: raw output, a value comes back as stored (no \\ for a backslash, no \t for a tab).
        assert argv[:7] == ["mariadb", "-S", "/run/mysqld/cell-b.sock", "-N", "-B", "-r", "-e"] and len(argv) == 8
        self.sql.append(argv[7])
        return self.answer(argv[7])


def in_list(sql: str) -> list[str]:
    prefix = "SELECT idempotency_key FROM ledger.transfers WHERE idempotency_key IN ("
    assert sql.startswith(prefix) and sql.endswith(")")
    return sql[len(prefix) : -1].split(", ")


def test_transfer_keys_quotes_keys():
    shell = FakeShell(lambda sql: "k-1\no'brien\na\\b\n")  # raw output: the backslash as stored
    found = Galera().transfer_keys(member("b-db-1", "cell-b"), shell, ["k-1", "o'brien", "a\\b", "gone"])
    assert found == {"k-1", "o'brien", "a\\b"}
    assert [host for host, _ in shell.commands] == ["b-db-1"]
    assert in_list(shell.sql[0]) == ["'k-1'", "'o\\'brien'", "'a\\\\b'", "'gone'"]


def test_transfer_keys_in_chunks():
    keys = [f"drill-{i:05}" for i in range(2 * KEYS_PER_QUERY + 500)]
    held = set(keys[::2])
    shell = FakeShell(lambda sql: "".join(f"{k.strip(chr(39))}\n" for k in in_list(sql) if k.strip("'") in held))
    assert Galera().transfer_keys(member("c-db-1", "cell-b"), shell, keys) == held
    chunks = [in_list(sql) for sql in shell.sql]
    assert [len(c) for c in chunks] == [KEYS_PER_QUERY, KEYS_PER_QUERY, 500]
    assert [k.strip("'") for c in chunks for k in c] == keys


def test_transfer_keys_of_nothing_asks_nothing():
    shell = FakeShell(lambda sql: "")
    assert Galera().transfer_keys(member("a-db-1", "cell-b"), shell, []) == set()
    assert shell.commands == []


def test_fingerprint_one_query_per_member():
    shell = FakeShell(lambda sql: "accounts\t8\t3735928559\ntransfers\t250\t0\n")
    assert Galera().fingerprint(member("a-db-1", "cell-b"), shell) == {"accounts": "8:3735928559", "transfers": "250:0"}
    (sql,) = shell.sql
    assert " UNION ALL " in sql
    assert "CONCAT_WS('|', customer, account, balance))), 0) FROM ledger.accounts" in sql
    assert (
        "CONCAT_WS('|', idempotency_key, customer, from_account, to_account, amount))), 0) FROM ledger.transfers" in sql
    )
    assert sql.count("COUNT(*)") == 2


# What a Galera member reports (SHOW GLOBAL STATUS, `wsrep_` names only here) and what the seam makes of it:
# (reachable, in_quorum, synced, safe_to_write, group_size, last_committed, phase).
GALERA_STATES = {
    "synced-in-primary": (
        "wsrep_cluster_status\tPrimary\nwsrep_local_state_comment\tSynced\nwsrep_ready\tON\n"
        "wsrep_cluster_size\t3\nwsrep_last_committed\t40\n",
        (True, True, True, True, 3, 40, "Synced"),
    ),
    "minority": (
        "WSREP_CLUSTER_STATUS\tnon-Primary\nwsrep_local_state_comment\tInitialized\nwsrep_ready\tOFF\n"
        "wsrep_cluster_size\t1\nwsrep_last_committed\t38\n",
        (True, False, False, False, 1, 38, "Initialized"),
    ),
    "joining": (
        "wsrep_cluster_status\tPrimary\nwsrep_local_state_comment\tJoiner\nwsrep_ready\tOFF\n"
        "wsrep_cluster_size\t3\nwsrep_last_committed\t-1\n",
        (True, True, False, False, 3, -1, "Joiner"),
    ),
    "synced-but-not-ready": (
        "wsrep_cluster_status\tPrimary\nwsrep_local_state_comment\tSynced\nwsrep_ready\tOFF\n"
        "wsrep_cluster_size\t3\nwsrep_last_committed\t40\n",
        (True, True, False, False, 3, 40, "Synced"),
    ),
    "donor": (
        "wsrep_cluster_status\tPrimary\nwsrep_local_state_comment\tDonor/Desynced\nwsrep_ready\tON\n"
        "wsrep_cluster_size\t3\nwsrep_last_committed\t41\n",
        (True, True, False, False, 3, 41, "Donor/Desynced"),
    ),
    "wsrep-off": ("", (True, False, False, False, 0, None, "")),
}


def fields_of(state: MemberState) -> tuple:
    return (
        state.reachable,
        state.in_quorum,
        state.synced,
        state.safe_to_write,
        state.group_size,
        state.last_committed,
        state.phase,
    )


@pytest.mark.parametrize("name", sorted(GALERA_STATES))
def test_galera_state_in_the_seams_words(name):
    stdout, expected = GALERA_STATES[name]
    shell = FakeShell(lambda sql: stdout)
    state = Galera().state(member("b-db-1", "cell-b"), shell)
    assert fields_of(state) == expected
    assert state.in_service is (expected[1] and expected[2]) and state.error == ""
    (sql,) = shell.sql
    assert sql.startswith("SHOW GLOBAL STATUS WHERE Variable_name IN (")


def test_galera_unreachable_member_is_a_state():
    def refused(host: str, command: str) -> str:
        raise RemoteError("b-db-1: exit 255: ssh: connect to host 10.80.2.11 port 22: Connection refused")

    state = Galera().state(member("b-db-1", "cell-b"), refused)
    assert fields_of(state) == (False, False, False, False, 0, None, "")
    assert not state.in_service and state.error.startswith("b-db-1: exit 255")
    assert state.describe() == f"unreachable ({state.error})"


def test_galera_writer_is_the_first_safe_member_in_failover_order():
    cell = {
        "name": "cell-b",
        "ports": {"mysql": 3316, "db-health": 9210},
        "members": [
            {"host": h, "dc": f"dc-{h[0]}", "address": f"10.80.{i}.11", "order": o}
            for i, (h, o) in enumerate([("c-db-1", 1), ("b-db-1", 0), ("a-db-1", 2)], start=1)
        ],
    }
    answers = {"b-db-1": "minority", "c-db-1": "joining", "a-db-1": "synced-in-primary"}
    shell = FakeShell(lambda sql: "")
    shell.answer = lambda sql: GALERA_STATES[answers[shell.commands[-1][0]]][0]
    assert [m.host for m in Galera().members(cell)] == ["b-db-1", "c-db-1", "a-db-1"]
    assert Galera().writer(cell, shell) == Galera().members(cell)[2]
    answers["c-db-1"] = "synced-in-primary"
    assert Galera().writer(cell, shell) == Galera().members(cell)[1]


# ---------------------------------------------------------------- report


def report_dict(checks: list[CellConsistency] | None = None) -> dict[str, Any]:
    """Shaped as Run.finish builds it."""
    measures = [
        cell_measure("cell-a", led=True, rto_s=1.6, max_pause_s=1.8, errors=2, acked=6, writers=["b-db-1"]),
        cell_measure("cell-b", led=False, rto_s=None, max_pause_s=0.4, acked=12, writers=["b-db-1"]),
    ]
    if checks is None:
        checks = [cell_check("cell-a"), cell_check("cell-b", missing={"a-db-1": ["k7"]})]
    verdicts = judge(DRILLS["dc-outage"], measures, checks, RTO_TARGET_S, None, None)
    return {
        "drill": "dc-outage",
        "target": "dc-a",
        "stack": "lab",
        "injector": "lab",
        "started": "2025-01-02T03:04:05+00:00",
        "hold_s": 12.0,
        "times": {"fault": 100.0, "isolated_from": 100.0, "heal": 112.0, "healed": 112.0, "converged_s": 35.5},
        "cells": [{**m.to_dict(), **c.to_dict()} for m, c in zip(measures, checks, strict=True)],
        "rpo": rpo_summary(checks),
        "errors_per_dc": {
            "dc-b": {"requests": 40, "errors": 1, "acked": 39, "acked_sent_during": 38},
            "dc-c": {"requests": 41, "errors": 1, "acked": 40, "acked_sent_during": 40},
        },
        "inside_states": {},
        "verdicts": [v.to_dict() for v in verdicts],
        "targets_met": all_met(verdicts),
        "errors": ["verify: not converged after 240 s: cell-b: a-db-1 unreachable"],
        "load": {"cell-a": {"requests": 81}},
        "timeline": {
            "start": 95.0,
            "fault": 5.0,
            "heal": 17.0,
            "acks_per_second": {"dc-b": [12, 12, 12, 12, 12, 0, 9, 12], "dc-c": [11, 12, 12, 12, 12, 1, 10, 12]},
        },
    }


def test_report_writes_json_markdown_and_png(tmp_path):
    data = report_dict()
    out = report.write(data, tmp_path / "lab" / "run")
    assert out == tmp_path / "lab" / "run"
    assert json.loads((out / "report.json").read_text()) == data
    md = (out / "report.md").read_text()
    assert md.startswith("# Drill dc-outage on dc-a (stack lab)\n")
    assert "Targets: **MISSED**. Acknowledged writes: 20, lost: 1." in md
    # "acked in fault" is the measure's count (6, 12), not the consistency check's (10 looked up per cell).
    assert "| cell-a | yes | 1.60 s | 1.80 s | 2 | 6 | b-db-1 | 0 | no | no |" in md
    assert "| cell-b | no | never | 0.40 s | 0 | 12 | b-db-1 | 1 | no | no |" in md
    assert "| dc-b | 40 | 1 | 39 | 38 |" in md
    assert f"| cell-b | {RPO_TARGET} | 1 lost | **missed** |" in md
    assert "| cell-a | RTO <= 3 s | 1.60 s | met |" in md
    assert "- verify: not converged after 240 s: cell-b: a-db-1 unreachable" in md
    png = (out / "timeline.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000


NOT_CHECKED = {"c-db-1": "unreachable (c-db-1: exit 255: No route to host)"}


def test_report_of_a_cell_not_checked_never_reads_as_nothing_lost():
    data = report_dict([cell_check("cell-a"), cell_check("cell-b", not_checked=NOT_CHECKED)])
    cell_b = data["cells"][1]
    assert (cell_b["rpo_writes"], cell_b["diverged"], cell_b["not_checked"]) == (None, None, NOT_CHECKED)
    assert data["rpo"] == {"acked": 20, "lost": None, "not_checked": ["cell-b"]}
    assert not data["targets_met"]
    md = report.markdown(data)
    assert "Acknowledged writes: 20, lost: not checked in cell-b." in md
    assert "| cell-b | no | never | 0.40 s | 0 | 12 | b-db-1 | not checked | not checked | no |" in md
    reason = "c-db-1 not checked: unreachable (c-db-1: exit 255: No route to host)"
    assert f"| cell-b | {RPO_TARGET} | {reason} | **not checked** |" in md
    assert f"| cell-b | {SAME_DATA_TARGET} | {reason} | **not checked** |" in md
    assert f"| cell-a | {RPO_TARGET} | 0 lost of 10 | met |" in md


def test_report_says_split_brain_not_measured():
    data = report_dict()
    data["cells"][1]["split_brain"] = None  # as a drill without a complete cut measures it
    assert "| cell-b | no | never | 0.40 s | 0 | 12 | b-db-1 | 1 | no | not measured |" in report.markdown(data)


def test_cli_table_shows_not_checked_and_misses_the_targets():
    from rich.console import Console

    from hivestack.cli.drill_cmd import show

    data = report_dict([cell_check("cell-a"), cell_check("cell-b", not_checked=NOT_CHECKED)])
    console = Console(record=True, width=250)
    show(data, console)
    text = console.export_text()
    row = next(line for line in text.splitlines() if "cell-b" in line and "never" in line)
    assert [c.strip() for c in row.strip("│┃ ").split("│")][-3:] == ["not checked", "not checked", "no"]
    assert f"not checked: cell-b: {RPO_TARGET}: c-db-1 not checked: unreachable" in text
    assert text.rstrip().endswith("targets MISSED")


def test_report_markdown_without_errors():
    data = {**report_dict(), "errors": [], "targets_met": True}
    md = report.markdown(data)
    assert "Targets: **met**" in md and "Errors during the run" not in md


def test_fmt():
    assert (report.fmt(None), report.fmt(1.234), report.fmt(2, "%")) == ("never", "1.23 s", "2.00%")


# ---------------------------------------------------------------- measure.acks_per_second


def test_acks_per_second():
    acks = [
        ack(99.0, "dc-a"),  # before the start
        ack(100.1, "dc-a"),
        ack(100.5, "dc-a"),
        ack(100.7, "dc-b", status=503),
        ack(100.8, "dc-c", status=None),
        ack(101.2, "dc-b"),
        ack(102.9, "dc-a"),
    ]
    assert acks_per_second(acks, 100.0) == {"dc-a": [2, 0, 1], "dc-b": [0, 1, 0]}
    assert acks_per_second([], 100.0) == {}
    assert acks_per_second([ack(100.1, status=500)], 100.0) == {}


# ---------------------------------------------------------------- load: reading the ack logs


def record(key: str, status: int | None = 201) -> str:
    return json.dumps({"t": 1.0, "target": "dc-a", "key": key, "status": status, "latency_ms": 5, "db_member": None})


def test_read_acks_skips_a_half_written_last_line(tmp_path):
    path = tmp_path / "acks-cell-a.jsonl"
    assert read_acks(path) == []
    path.write_text(f"{record('k1')}\n{record('k2', None)}\n{record('k3')[:17]}")
    assert [a["key"] for a in read_acks(path)] == ["k1", "k2"]


def test_ack_tail_returns_only_new_complete_lines(tmp_path):
    a, b = tmp_path / "acks-cell-a.jsonl", tmp_path / "acks-cell-b.jsonl"
    tail = AckTail([a, b])
    assert tail.new() == []  # neither log exists yet
    a.write_text(f"{record('a1')}\n{record('a2')[:10]}")
    assert [r["key"] for r in tail.new()] == ["a1"]
    assert tail.new() == []
    line = record("a2")
    with a.open("a") as f:
        f.write(f"{line[10:]}\n{record('a3')}\n")
    b.write_text(f"{record('b1')}\n")
    assert [r["key"] for r in tail.new()] == ["a2", "a3", "b1"]
    assert tail.new() == []


# ---------------------------------------------------------------- catalog


@pytest.mark.parametrize("name", sorted(DRILLS))
def test_every_drill_has_its_playbook(name):
    d = DRILLS[name]
    assert d.name == name
    assert d.playbook == f"drills/{name}.yml"
    assert (ROOT / "playbooks" / d.playbook).is_file(), f"no playbooks/{d.playbook}"


def test_catalog():
    assert drill("host-loss").scope is Scope.HOST
    assert all(d.scope is Scope.DC for d in DRILLS.values() if d.isolates or d.planned)
    assert [d.name for d in DRILLS.values() if d.prepares] == ["failback"]
    with pytest.raises(ValueError, match=r"unknown drill 'nosuch' \(valid: dc-outage, dc-partition, .*failback\)"):
        drill("nosuch")


# ---------------------------------------------------------------- Stack on the lab topology


@pytest.fixture(scope="module")
def loaded():
    return load_topology(LAB_TOPOLOGY)


@pytest.fixture
def stack(loaded) -> Stack:
    return Stack(ROOT, "lab", loaded, {})


def test_validate_target(stack):
    stack.validate_target(DRILLS["dc-outage"], "dc-b")
    stack.validate_target(DRILLS["host-loss"], "c-db-1")
    with pytest.raises(ValueError, match=r"unknown data center 'dc-z' \(valid: dc-a, dc-b, dc-c\)"):
        stack.validate_target(DRILLS["dc-outage"], "dc-z")
    with pytest.raises(ValueError, match=r"unknown data center 'a-db-1'"):
        stack.validate_target(DRILLS["dc-partition"], "a-db-1")
    for not_db in ("a-edge-1", "c-worker-1", "dc-a"):
        with pytest.raises(ValueError, match=rf"'{not_db}' is not a database host .*\(valid: a-db-1, b-db-1, c-db-1\)"):
            stack.validate_target(DRILLS["host-loss"], not_db)


def test_scope_hosts_and_dcs(stack):
    assert stack.scope_hosts(DRILLS["dc-outage"], "dc-a") == ["a-edge-1", "a-db-1"]
    assert stack.scope_hosts(DRILLS["gray-failure"], "dc-c") == ["c-edge-1", "c-db-1", "c-worker-1"]
    assert stack.scope_hosts(DRILLS["host-loss"], "b-db-1") == ["b-db-1"]
    assert stack.scope_dcs(DRILLS["dc-partition"], "dc-b") == {"dc-b"}
    assert stack.scope_dcs(DRILLS["host-loss"], "b-db-1") == set()


def test_led_from(stack):
    assert stack.led_from(DRILLS["dc-outage"], "dc-a") == {"cell-a"}
    assert stack.led_from(DRILLS["dc-evacuation"], "dc-b") == {"cell-b"}
    assert stack.led_from(DRILLS["host-loss"], "c-db-1") == {"cell-c"}


def test_the_load_holds_every_gateway_to_the_gateway_ca(stack, tmp_path, monkeypatch):
    from hivestack.drills import load

    started: list[list[str]] = []
    monkeypatch.setattr(load.subprocess, "Popen", lambda argv, **_: started.append(argv))
    stack.outputs = {"ca_certs": {"gateway": "-----BEGIN CERTIFICATE-----\n"}}
    load.BackgroundLoad(stack.cells[:1], stack.gateways(), stack.gateway_ca, tmp_path, "hs0000-core").start()
    [argv] = started
    assert argv[:4] == ["ip", "netns", "exec", "hs0000-core"]
    targets = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--target"]
    assert targets == [f"{dc}={url}" for dc, url in sorted(stack.gateways().items())]
    assert all(t.split("=", 1)[1].startswith("https://") for t in targets)
    assert Path(argv[argv.index("--ca-file") + 1]).read_text() == stack.gateway_ca


def test_gateways_and_members(stack):
    assert stack.gateways() == {
        "dc-a": "https://10.80.1.10:8443",
        "dc-b": "https://10.80.2.10:8443",
        "dc-c": "https://10.80.3.10:8443",
    }
    with pytest.raises(ValueError, match="stack lab exports no gateway CA"):
        _ = stack.gateway_ca
    stack.outputs = {"ca_certs": {"gateway": "PEM", "ledger": "other"}}
    assert stack.gateway_ca == "PEM"
    cell_b = next(c for c in stack.cells if c["name"] == "cell-b")
    assert [m.host for m in stack.members(cell_b)] == ["b-db-1", "c-db-1", "a-db-1"]


# ---------------------------------------------------------------- faults


def test_injector_rejects_an_unknown_name(stack):
    with pytest.raises(ValueError, match=r"unknown injector 'chaos' \(valid: lab, playbook\)"):
        injector("chaos", stack, DRILLS["dc-outage"], "dc-a", 20)


def test_lab_faults_refuse_a_planned_drill_and_a_stack_that_is_not_a_lab(stack):
    stack.outputs = {"lab": {"core_ns": "hs0000-core"}}
    with pytest.raises(ValueError, match="dc-evacuation is a host operation: use the playbook injector"):
        LabFaults(stack, DRILLS["dc-evacuation"], "dc-a", 20)
    assert injector("lab", stack, DRILLS["dc-outage"], "dc-a", 20).name == "lab"
    stack.outputs = {}
    with pytest.raises(ValueError, match="stack lab is not a lab stack: use the playbook injector"):
        injector("lab", stack, DRILLS["dc-outage"], "dc-a", 20)


def test_lab_faults_have_no_preparation(stack):
    stack.outputs = {"lab": {"core_ns": "hs0000-core"}}
    with pytest.raises(FaultError, match="no primitive for its preparation"):
        LabFaults(stack, DRILLS["dc-outage"], "dc-a", 20).prepare()


def test_lab_faults_gray_failure_passes_the_loss_on(stack, monkeypatch):
    calls: list[tuple[str, int, int]] = []
    monkeypatch.setattr(
        faults.lab_faults, "gray_failure", lambda names, dc, loss: calls.append((names.stack, dc, loss))
    )
    stack.outputs = {"lab": {"core_ns": "hs0000-core"}}
    first, last = LabFaults(stack, DRILLS["gray-failure"], "dc-b", 35).inject()
    assert calls == [("lab", 1, 35)] and first == last


def test_playbook_faults_extravars(stack):
    assert injector("playbook", stack, DRILLS["host-loss"], "a-db-1", 20).extravars == {
        "drill_host": "a-db-1",
        "drill_loss_percent": 20,
    }
    extravars = PlaybookFaults(stack, DRILLS["gray-failure"], "dc-b", 35).extravars
    assert extravars == {"drill_dc": "dc-b", "drill_loss_percent": 35}
    assert type(extravars["drill_loss_percent"]) is int  # the playbook's nftables/netem rules take an integer


def shell_of(answers: dict[str, str | Exception], seen: list[tuple[str, str]]):
    def shell(host: str, command: str) -> str:
        seen.append((host, command))
        answer = answers[host]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return shell


def at(t: float):
    """A unix time to the microsecond (pytest.approx's default relative tolerance is some 1700 s here)."""
    return pytest.approx(t, rel=0, abs=1e-6)


SINCE = 1700000000.0  # the step's start, less the clock skew allowed: records before it are an earlier drill's


def test_recorded_spans_the_hosts_clocks(stack):
    seen: list[tuple[str, str]] = []
    stack.shell = shell_of({"a-edge-1": "1700000100.500000000\n", "a-db-1": "1700000100.123456789\n"}, seen)
    first, last = PlaybookFaults(stack, DRILLS["dc-partition"], "dc-a", 20).recorded("injected", since=SINCE)
    assert (first, last) == (at(1700000100.123456789), at(1700000100.5))
    assert seen == [(h, "cat /run/hivestack/drill-injected") for h in ("a-edge-1", "a-db-1")]


def test_recorded_skips_a_host_without_a_record(stack):
    answers: dict[str, str | Exception] = {
        "c-edge-1": "1700000200.75\n",
        "c-db-1": "1700000200.25\n",
        "c-worker-1": RemoteError("c-worker-1: exit 1: cat: /run/hivestack/drill-healed: No such file or directory"),
    }
    stack.shell = shell_of(answers, [])
    assert PlaybookFaults(stack, DRILLS["dc-partition"], "dc-c", 20).recorded("healed", since=SINCE) == (
        at(1700000200.25),
        at(1700000200.75),
    )
    answers["c-edge-1"] = "garbage\n"  # not a time: skipped as well
    assert PlaybookFaults(stack, DRILLS["dc-partition"], "dc-c", 20).recorded("healed", since=SINCE) == (
        at(1700000200.25),
        at(1700000200.25),
    )


def test_recorded_ignores_a_stale_record_of_an_earlier_drill(stack):
    # c-worker-1 was skipped by this step (an emulated host cannot load nftables): its record is an older drill's.
    answers: dict[str, str | Exception] = {
        "c-edge-1": "1700000200.75\n",
        "c-db-1": f"{SINCE}\n",  # exactly at `since`: counts
        "c-worker-1": "1699990000.5\n",
    }
    stack.shell = shell_of(answers, [])
    faults_ = PlaybookFaults(stack, DRILLS["dc-partition"], "dc-c", 20)
    assert faults_.recorded("injected", since=SINCE) == (at(SINCE), at(1700000200.75))
    answers["c-db-1"] = f"{SINCE - 0.001}\n"
    assert faults_.recorded("injected", since=SINCE) == (at(1700000200.75), at(1700000200.75))


def test_recorded_by_no_host_is_a_fault_error(stack):
    stack.shell = shell_of({"b-db-1": RuntimeError("b-db-1: no answer within 30 s")}, [])
    with pytest.raises(FaultError, match="no host of b-db-1 recorded when the injected step took effect"):
        PlaybookFaults(stack, DRILLS["host-loss"], "b-db-1", 20).recorded("injected", since=SINCE)


def test_only_stale_records_are_a_fault_error(stack):
    stack.shell = shell_of({"b-db-1": "1699990000.5\n"}, [])
    with pytest.raises(FaultError, match="no host of b-db-1 recorded when the injected step took effect"):
        PlaybookFaults(stack, DRILLS["host-loss"], "b-db-1", 20).recorded("injected", since=SINCE)


@pytest.fixture
def playbook_runs(stack, monkeypatch) -> list[dict[str, Any]]:
    """run_playbook recorded (and succeeding); the controller's clock reads 1700000300.0."""
    runs: list[dict[str, Any]] = []

    def fake_run_playbook(root, playbook, inventory, extravars, secret_vars, *, tags):
        runs.append({"root": root, "playbook": playbook, "extravars": extravars, "secrets": secret_vars, "tags": tags})
        return SimpleNamespace(ok=True, failures=[], error="")

    monkeypatch.setattr(faults, "run_playbook", fake_run_playbook)
    monkeypatch.setattr(faults, "time", SimpleNamespace(time=lambda: 1700000300.0))
    stack.inventory = {"all": {"hosts": {}}}
    return runs


def test_playbook_step_runs_its_tag_then_reads_the_record(stack, playbook_runs):
    stack.shell = shell_of({"a-db-1": "1700000300.5\n"}, [])
    assert PlaybookFaults(stack, DRILLS["host-loss"], "a-db-1", 20).inject() == (1700000300.5, 1700000300.5)
    assert playbook_runs == [
        {
            "root": ROOT,
            "playbook": "drills/host-loss.yml",
            "extravars": {"drill_host": "a-db-1", "drill_loss_percent": 20, "drill_records": "injected"},
            "secrets": {},
            "tags": ["inject"],
        }
    ]


@pytest.mark.parametrize(
    ("stamp", "counts"),
    [
        (1700000300.0 - faults.CLOCK_SKEW_S, True),  # a host clock behind the controller's, within the skew
        (1700000299.5, True),
        (1700000300.0 - faults.CLOCK_SKEW_S - 0.01, False),  # further behind: a record of an earlier drill
        (1699990000.0, False),
    ],
)
def test_playbook_step_counts_records_since_its_start_less_the_clock_skew(stack, playbook_runs, stamp, counts):
    assert faults.CLOCK_SKEW_S == 1.0
    stack.shell = shell_of({"a-edge-1": f"{stamp}\n", "a-db-1": "1700000301.25\n"}, [])
    first, last = PlaybookFaults(stack, DRILLS["dc-outage"], "dc-a", 20).heal()
    assert (first, last) == (at(stamp if counts else 1700000301.25), at(1700000301.25))
    assert [r["tags"] for r in playbook_runs] == [["heal"]]


def test_playbook_step_failure_is_a_fault_error(stack, monkeypatch):
    failure = SimpleNamespace(host="a-db-1", task="Load the fault", message="nft: syntax error")
    monkeypatch.setattr(
        faults, "run_playbook", lambda *a, **kw: SimpleNamespace(ok=False, failures=[failure], error="")
    )
    stack.inventory = {}
    with pytest.raises(
        FaultError, match=r"drills/dc-outage.yml --tags heal: a-db-1: Load the fault: nft: syntax error"
    ):
        PlaybookFaults(stack, DRILLS["dc-outage"], "dc-a", 20).heal()


# ---------------------------------------------------------------- runbook.Run's options


BAD_HOLD_OR_LOSS = [(0.0, 20), (-1.0, 20), (12.0, 0), (12.0, -5), (12.0, 101)]


@pytest.mark.parametrize(("hold", "loss"), BAD_HOLD_OR_LOSS)
def test_options_validate_rejects_a_bad_hold_or_loss(tmp_path, hold, loss):
    with pytest.raises(ValueError) as caught:
        Options(hold, loss, "playbook", tmp_path).validate()
    assert str(caught.value) == f"--hold must be > 0 (got {hold:g}) and --loss in 1..100 (got {loss})"


@pytest.mark.parametrize(("hold", "loss"), [(12.0, 20), (0.1, 1), (1.0, 100)])
def test_options_validate_accepts_the_bounds(tmp_path, hold, loss):
    Options(hold, loss, "playbook", tmp_path).validate()


def test_options_defaults():
    options = Options()
    assert (options.hold_s, options.loss_percent, options.injector) == (12.0, 20, "lab")
    assert type(options.loss_percent) is int
    options.validate()


@pytest.mark.parametrize(("hold", "loss"), BAD_HOLD_OR_LOSS)
def test_run_rejects_a_bad_hold_or_loss(stack, tmp_path, hold, loss):
    with pytest.raises(ValueError, match=r"--hold must be > 0 \(got .*\) and --loss in 1\.\.100 \(got .*\)"):
        Run(stack, DRILLS["gray-failure"], "dc-a", Options(hold, loss, "playbook", tmp_path), print)


def test_run_rejects_a_bad_target_first(stack, tmp_path):
    with pytest.raises(ValueError, match="unknown data center 'dc-q'"):
        Run(stack, DRILLS["dc-outage"], "dc-q", Options(0.0, 0, "playbook", tmp_path), print)


def test_run_switches_a_planned_drill_to_the_playbooks(stack, tmp_path):
    run = Run(stack, DRILLS["dc-evacuation"], "dc-a", Options(1.0, 100, "lab", tmp_path), print)
    assert isinstance(run.injector, PlaybookFaults)
    assert run.out_dir.parent == tmp_path / "lab" and run.out_dir.name.endswith("Z-dc-evacuation")
    assert sorted(run.cells) == ["cell-a", "cell-b", "cell-c"]
    assert not run.out_dir.exists()  # nothing is written before the run


def test_ask_inside_asks_every_member_inside_the_cut_and_keeps_what_it_said(stack, loaded, tmp_path):
    stack.engine = FakeEngine(polls=[{"a-db-1": (True, 40), "b-db-1": (True, 40), "c-db-1": "unreachable"}])
    stack.shell = lambda host, command: ""
    run = Run(stack, DRILLS["dc-partition"], "dc-c", Options(4.0, 20, "playbook", tmp_path), print)
    states = run.ask_inside()
    inside = {f"{cell}@{h.name}" for h in loaded.placement.hosts if h.dc == "dc-c" for cell in h.cells}
    assert set(states) == inside and inside
    assert all(not s.reachable and s.member.dc == "dc-c" for s in states.values())
    # Judged: an unreachable member is not shown to have left the quorum.
    verdicts = [v for v in judge(DRILLS["dc-partition"], [], [], 3, 0, states) if v.target == LEAVES_QUORUM_TARGET]
    assert len(verdicts) == len(inside) and {v.outcome for v in verdicts} == {Outcome.NOT_CHECKED}


@pytest.mark.parametrize(
    ("poll", "says"),
    [
        ({**SYNCED, "b-db-1": "unreachable"}, "b-db-1 is unreachable (ssh: connection refused)"),
        ({**SYNCED, "c-db-1": (False, 12)}, "c-db-1 is out of quorum of 1, Joiner @12"),
    ],
)
def test_steady_refuses_a_member_out_of_service(stack, tmp_path, poll, says):
    stack.engine = FakeEngine(polls=[poll])
    stack.shell = lambda host, command: ""
    run = Run(stack, DRILLS["dc-outage"], "dc-a", Options(4.0, 20, "playbook", tmp_path), print)
    run.injector = SimpleNamespace(name="lab")  # not the playbook: the steady state is read through the engine
    with pytest.raises(DrillError, match=r"not in a steady state: cell-\w on " + re.escape(says)):
        run.steady()


def test_steady_refuses_a_member_that_sees_a_smaller_group(stack, tmp_path):
    class Smaller(FakeEngine):
        def state(self, m: Member, shell: Any) -> MemberState:
            state = super().state(m, shell)
            return dataclasses.replace(state, group_size=2) if m.host == "a-db-1" else state

    stack.engine = Smaller(polls=[SYNCED])
    stack.shell = lambda host, command: ""
    run = Run(stack, DRILLS["dc-outage"], "dc-a", Options(4.0, 20, "playbook", tmp_path), print)
    run.injector = SimpleNamespace(name="lab")
    with pytest.raises(DrillError, match="on a-db-1 is in quorum of 2, Synced @40"):
        run.steady()


# ---------------------------------------------------------------- runbook.Run.finish on fakes


class UnreachableAfterTheDrill(FakeEngine):
    """c-db-1 never came back: it answers nothing, as SshShell fails."""

    def state(self, m: Member, shell: Any) -> MemberState:
        if m.host == "c-db-1":
            return MemberState(m, False, error="c-db-1: exit 255: No route to host")
        return super().state(m, shell)


def finish(stack: Stack, tmp_path: Path, engine: type[FakeEngine] = FakeEngine) -> tuple[Run, dict[str, Any]]:
    """dc-outage of dc-a measured and reported from ack logs (cell-a: the writer_dc_lost case), every member
    holding every key: what Run.finish builds, without a lab."""
    case = json.loads((Path(__file__).parent / "drill_cases" / "writer_dc_lost.json").read_text())
    logs = tmp_path / "acks"
    logs.mkdir()
    steady = [
        {"t": 99.0 + i / 2, "target": dc, "key": f"{cell}-{i}", "status": 201, "latency_ms": 10, "db_member": db}
        for cell, db in (("cell-b", "b-db-1"), ("cell-c", "c-db-1"))
        for i, dc in enumerate(["dc-b", "dc-c"] * 6)
    ]
    records = {"cell-a": case["acks"], "cell-b": steady[:12], "cell-c": steady[12:]}
    for cell, lines in records.items():
        (logs / f"acks-{cell}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    held = {r["key"] for r in case["acks"] + steady}
    fps = {"accounts": "24:1", "transfers": "33:2"}
    stack.engine = engine(dict.fromkeys(SYNCED, held), dict.fromkeys(SYNCED, fps), [SYNCED])
    stack.shell = lambda host, command: ""
    progress: list[str] = []
    run = Run(stack, DRILLS["dc-outage"], "dc-a", Options(4.0, 20, "playbook", tmp_path / "reports"), progress.append)
    load = SimpleNamespace(ack_log=lambda cell: logs / f"acks-{cell}.jsonl", summaries={})
    times = {"fault": 100.0, "isolated_from": 100.0, "heal": 104.0, "healed": 104.5}
    return run, run.finish(load, times, 30.0)


@pytest.fixture
def finished(stack, tmp_path) -> tuple[Run, dict[str, Any]]:
    return finish(stack, tmp_path)


def test_finish_measures_judges_and_reports(finished):
    run, result = finished
    cells = {c["cell"]: c for c in result["cells"]}
    assert (cells["cell-a"]["led_from_inside"], cells["cell-a"]["rto_s"], cells["cell-a"]["errors"]) == (True, 1.6, 2)
    assert cells["cell-a"]["max_pause_s"] == pytest.approx(1.8)
    assert not cells["cell-b"]["led_from_inside"] and cells["cell-b"]["errors"] == 0
    assert result["rpo"] == {"acked": 9 + 12 + 12, "lost": 0, "not_checked": []}
    assert result["targets_met"] and result["errors"] == []
    assert {v["outcome"] for v in result["verdicts"]} == {"met"}
    assert result["times"]["converged_s"] == 30.0
    assert result["timeline"]["start"] == 99.0 and result["timeline"]["fault"] == 1.0
    assert sorted(result["errors_per_dc"]) == ["dc-b", "dc-c"]
    assert {v["target"] for v in result["verdicts"] if v["cell"] == "cell-a"} >= {"RTO <= 3 s"}
    assert json.loads((run.out_dir / "report.json").read_text()) == result
    assert (run.out_dir / "timeline.png").read_bytes().startswith(b"\x89PNG")


def test_report_keeps_the_writes_acked_during_the_fault(finished):
    run, result = finished
    cell_a = next(c for c in result["cells"] if c["cell"] == "cell-a")
    assert cell_a["acked"] == 6  # acknowledged between fault and heal (the case's expect); the log holds 9
    assert cell_a["looked_up"] == 9  # every acknowledged write of the drill, looked up on every member
    assert "| cell-a | yes | 1.60 s | 1.80 s | 2 | 6 | b-db-1 |" in (run.out_dir / "report.md").read_text()


# ---------------------------------------------------------------- runbook.Run.execute when a step fails


class FakeLoad:
    last: FakeLoad | None = None
    fail_flowing: Exception | None = None

    def __init__(self, cells, gateways, gateway_ca, out_dir, netns) -> None:
        self.gateways, self.out_dir, self.summaries = gateways, out_dir, {}
        self.events: list[str] = []
        FakeLoad.last = self

    def ack_log(self, cell: str) -> Path:
        return self.out_dir / f"acks-{cell}.jsonl"

    def start(self) -> None:
        self.events.append("start")

    def wait_flowing(self) -> None:
        self.events.append("flowing")
        if FakeLoad.fail_flowing is not None:
            raise FakeLoad.fail_flowing

    def stop(self) -> None:
        self.events.append("stop")


class HalfwayInjector:
    """The fault landed on some hosts, then the step failed (a playbook host failing after another loaded its rules)."""

    name = "fake"

    def __init__(self) -> None:
        self.steps: list[str] = []

    @property
    def heals(self) -> int:
        return self.steps.count("heal")

    def prepare(self) -> tuple[float, float]:
        self.steps.append("prepare")
        raise FaultError("drills/failback.yml --tags prepare: a-edge-1: Drain the gateway: interrupted")

    def inject(self) -> tuple[float, float]:
        self.steps.append("inject")
        raise FaultError("drills/dc-partition.yml --tags inject: a-db-1: Load the fault: nft: interrupted")

    def heal(self) -> tuple[float, float]:
        self.steps.append("heal")
        return 200.0, 200.0


def failing(stack: Stack, tmp_path: Path, monkeypatch, name: str) -> Run:
    from hivestack.drills import runbook

    monkeypatch.setattr(runbook, "BackgroundLoad", FakeLoad)
    monkeypatch.setattr(runbook, "BASELINE_S", 0.0)
    monkeypatch.setattr(FakeLoad, "fail_flowing", None)
    stack.engine = FakeEngine(polls=[SYNCED])
    stack.shell = lambda host, command: ""
    stack.outputs = {"ca_certs": {"gateway": "-----BEGIN CERTIFICATE-----"}}
    control = tmp_path / "ssh"  # as if the run had opened SSH connections
    control.mkdir()
    stack._control_dir = str(control)
    run = Run(stack, DRILLS[name], "dc-a", Options(1.0, 20, "playbook", tmp_path / "reports"), lambda msg: None)
    run.injector = HalfwayInjector()
    return run


@pytest.fixture
def failing_run(stack, tmp_path, monkeypatch) -> Run:
    return failing(stack, tmp_path, monkeypatch, "dc-partition")


def test_failed_injection_stops_the_load(failing_run):
    with pytest.raises(FaultError):
        failing_run.execute()
    assert FakeLoad.last is not None and FakeLoad.last.events == ["start", "flowing", "stop"]


def test_failed_injection_is_healed(failing_run):
    with pytest.raises(FaultError, match="--tags inject"):
        failing_run.execute()
    assert failing_run.injector.steps == ["inject", "heal"]
    assert failing_run.errors == []  # the heal itself went through


def test_failed_preparation_is_healed(stack, tmp_path, monkeypatch):
    run = failing(stack, tmp_path, monkeypatch, "failback")
    with pytest.raises(FaultError, match="--tags prepare"):
        run.execute()
    assert run.injector.steps == ["prepare", "heal"]


def test_a_failure_before_any_step_heals_nothing(failing_run, monkeypatch):
    from hivestack.drills.load import LoadError

    monkeypatch.setattr(FakeLoad, "fail_flowing", LoadError("no acknowledged write within 60 s"))
    with pytest.raises(LoadError):
        failing_run.execute()
    assert failing_run.injector.steps == []
    assert FakeLoad.last is not None and FakeLoad.last.events == ["start", "flowing", "stop"]


def test_a_failed_heal_after_a_failed_injection_is_recorded(failing_run, monkeypatch):
    def heal() -> tuple[float, float]:
        raise FaultError("drills/dc-partition.yml --tags heal: a-db-1: unreachable")

    monkeypatch.setattr(failing_run.injector, "heal", heal)
    with pytest.raises(FaultError, match="--tags inject"):  # the first failure is the one raised
        failing_run.execute()
    assert failing_run.errors == ["heal: drills/dc-partition.yml --tags heal: a-db-1: unreachable"]


def test_execute_closes_the_stack_whatever_happens(failing_run, tmp_path):
    assert (tmp_path / "ssh").is_dir()
    with pytest.raises(FaultError):
        failing_run.execute()
    assert not (tmp_path / "ssh").exists()  # the SSH control directory is gone


class CleanInjector:
    """A fault that takes effect at once and long enough ago that the hold is already over."""

    name = "fake"

    def __init__(self, events: list[str]) -> None:
        self.events = events

    def prepare(self) -> tuple[float, float]:
        raise AssertionError("not a preparing drill")

    def inject(self) -> tuple[float, float]:
        self.events.append("inject")
        t = time.time() - 60
        return t, t

    def heal(self) -> tuple[float, float]:
        self.events.append("heal")
        t = time.time()
        return t, t


class RecordingEngine(FakeEngine):
    """Every use of the stack's shell (through the engine) goes into `events`."""

    def __init__(self, events: list[str]) -> None:
        held: dict[str, set[str]] = {host: set() for host in SYNCED}
        super().__init__(held, {host: {"transfers": "0:0"} for host in SYNCED}, [SYNCED])
        self.events = events

    def state(self, m: Member, shell: Any) -> MemberState:
        self.events.append("shell")
        return super().state(m, shell)

    def transfer_keys(self, m: Member, shell: Any, keys: list[str]) -> set[str]:
        self.events.append("shell")
        return super().transfer_keys(m, shell, keys)

    def fingerprint(self, m: Member, shell: Any) -> dict[str, str]:
        self.events.append("shell")
        return super().fingerprint(m, shell)


def test_execute_closes_the_stack_only_after_the_last_remote_query(failing_run, monkeypatch):
    events: list[str] = []
    failing_run.stack.engine = RecordingEngine(events)
    failing_run.injector = CleanInjector(events)
    monkeypatch.setattr(failing_run.stack, "close", lambda: events.append("close"))
    result = failing_run.execute()
    assert result["errors"] == [] and (failing_run.out_dir / "report.json").is_file()
    assert events.count("close") == 1
    assert events[-1] == "close", events[events.index("close") :]


# ---------------------------------------------------------------- Stack's SSH control directory


def test_stack_makes_its_ssh_control_dir_on_first_use_and_close_removes_it(stack, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stack.inventory = {"_meta": {"hostvars": {"a-db-1": {"ansible_host": "10.80.1.11"}}}}
    assert stack._control_dir is None and list(tmp_path.iterdir()) == []  # nothing made before use
    shell = stack.shell
    assert stack.shell is shell  # one shell (and one directory) per stack
    control = Path(stack._control_dir)
    assert control.parent == tmp_path and control.name.startswith("hivestack-drill-ssh-") and control.is_dir()
    assert f"ControlPath={control}/%C" in shell.argv("a-db-1", "true")
    stack.close()
    assert not control.exists()
    stack.close()  # twice: nothing left to remove


def test_stack_close_without_a_shell_removes_nothing(stack, monkeypatch):
    import shutil

    removed: list[str] = []
    monkeypatch.setattr(shutil, "rmtree", lambda path, **kw: removed.append(path))
    stack.close()
    assert stack._control_dir is None and removed == []


def test_finish_reports_a_member_that_did_not_come_back(stack, tmp_path, clock):
    run, result = finish(stack, tmp_path, UnreachableAfterTheDrill)
    assert not result["targets_met"]
    assert [e.split(":")[0] for e in result["errors"]] == ["converge"]
    assert "c-db-1 unreachable (c-db-1: exit 255: No route to host)" in result["errors"][0]
    # The measures stand; no cell reads "nothing lost": c-db-1 holds a member of every cell, and was not checked.
    cells = {c["cell"]: c for c in result["cells"]}
    assert (cells["cell-a"]["rto_s"], cells["cell-a"]["acked"], cells["cell-a"]["looked_up"]) == (1.6, 6, 9)
    reason = "unreachable (c-db-1: exit 255: No route to host)"
    for cell in cells.values():
        assert (cell["rpo_writes"], cell["diverged"], cell["not_checked"]) == (None, None, {"c-db-1": reason})
        assert sorted(cell["fingerprints"]) == ["a-db-1", "b-db-1"]  # the members that answered were checked
    assert ("transfer_keys", "c-db-1") not in run.stack.engine.calls
    assert result["rpo"] == {"acked": 33, "lost": None, "not_checked": ["cell-a", "cell-b", "cell-c"]}
    consistency = [v for v in result["verdicts"] if v["target"] in (RPO_TARGET, SAME_DATA_TARGET)]
    assert len(consistency) == 6
    assert {(v["outcome"], v["value"]) for v in consistency} == {("not checked", f"c-db-1 not checked: {reason}")}
    assert json.loads((run.out_dir / "report.json").read_text()) == result
    md = (run.out_dir / "report.md").read_text()
    assert "Targets: **MISSED**" in md and "lost: not checked in cell-a, cell-b, cell-c." in md
    assert f"| cell-a | {RPO_TARGET} | c-db-1 not checked: {reason} | **not checked** |" in md


def test_a_causal_query_waits_for_the_clusters_committed_writes_first():
    shell = FakeShell(lambda sql: "7\n")
    m = member("c-db-1", "cell-b")
    assert Galera().query(m, shell, "SELECT 7", causal=True) == [["7"]]
    assert Galera().query(m, shell, "SELECT 7") == [["7"]]
    assert shell.sql == ["SET SESSION wsrep_sync_wait = 1; SELECT 7", "SELECT 7"]


def test_the_command_line_offers_every_injector_and_no_other():
    assert set(INJECTOR_NAMES) == set(faults.INJECTORS)
