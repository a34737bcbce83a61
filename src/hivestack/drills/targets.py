"""The drills' targets (issue: RPO 0 and no split-brain everywhere; a lost writer's cell writable again within the
topology's RTO; a cell that lost only a backup answers no error and stalls under 2 s; a planned switch pauses at
most 1 s). Gray failure is judged on loss and divergence only: it degrades, it does not fail over.

A target the drill could not check (a member that did not answer, nothing to look up) is `not checked`: never a
pass, and the drill misses its targets."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from hivestack.drills.catalog import Drill
from hivestack.drills.consistency import CellConsistency
from hivestack.drills.measure import CellMeasure
from hivestack.engines import MemberState

BACKUP_LOSS_STALL_S = 2.0
PLANNED_PAUSE_S = 1.0
RPO_TARGET = "RPO 0 (every acknowledged write on every member)"
SAME_DATA_TARGET = "members hold the same data"
LEAVES_QUORUM_TARGET = "its members inside the cut leave the quorum"


class Outcome(Enum):
    MET = "met"
    MISSED = "missed"
    NOT_CHECKED = "not checked"


@dataclass(frozen=True)
class Verdict:
    cell: str  # "*" for the platform
    target: str
    outcome: Outcome
    value: str

    @property
    def met(self) -> bool:
        return self.outcome is Outcome.MET

    def to_dict(self) -> dict[str, Any]:
        return {"cell": self.cell, "target": self.target, "outcome": self.outcome.value, "value": self.value}


def passed(ok: bool) -> Outcome:
    return Outcome.MET if ok else Outcome.MISSED


def judge(
    drill: Drill,
    measures: list[CellMeasure],
    consistency: list[CellConsistency],
    rto_target_s: float,
    minority_acked: int | None,
    inside_states: dict[str, MemberState] | None,
) -> list[Verdict]:
    """minority_acked: writes the fault's side acknowledged once it was cut off (None where no load went there).
    inside_states: what the members inside a cut said of themselves during it, per `cell@host` (None: not asked)."""
    out: list[Verdict] = []
    for c in consistency:
        out += [rpo_verdict(c), same_data_verdict(c)]
    for m in measures:
        if m.split_brain is not None:
            out.append(Verdict(m.cell, "no split-brain", passed(not m.split_brain), m.split_brain_detail or "none"))
        if drill.name == "gray-failure":
            continue
        if drill.planned:
            if m.led_from_inside:
                out.append(
                    Verdict(
                        m.cell,
                        f"write pause <= {PLANNED_PAUSE_S:g} s",
                        passed(m.max_pause_s <= PLANNED_PAUSE_S),
                        f"{m.max_pause_s:.2f} s",
                    )
                )
        elif m.led_from_inside:
            rto = "never" if m.rto_s is None else f"{m.rto_s:.2f} s"
            out.append(
                Verdict(
                    m.cell, f"RTO <= {rto_target_s:g} s", passed(m.rto_s is not None and m.rto_s <= rto_target_s), rto
                )
            )
        else:
            out.append(Verdict(m.cell, "no client error", passed(m.errors == 0), f"{m.errors} errors"))
            out.append(
                Verdict(
                    m.cell,
                    f"stall < {BACKUP_LOSS_STALL_S:g} s",
                    passed(m.max_pause_s < BACKUP_LOSS_STALL_S),
                    f"{m.max_pause_s:.2f} s",
                )
            )
    if minority_acked is not None:
        out.append(
            Verdict(
                "*", "the cut-off side refuses writes", passed(minority_acked == 0), f"{minority_acked} acknowledged"
            )
        )
    if drill.isolates and drill.loads_inside:
        out += leaves_quorum_verdicts(inside_states)
    return out


def rpo_verdict(c: CellConsistency) -> Verdict:
    unchecked = _not_checked(c)
    if c.rpo_writes is None:
        why = "no acknowledged write to look up" if c.looked_up == 0 else unchecked or "no member checked"
        return Verdict(c.cell, RPO_TARGET, Outcome.NOT_CHECKED, why)
    if c.rpo_writes:  # missing on a member that answered: lost, whatever the others would have said
        return Verdict(c.cell, RPO_TARGET, Outcome.MISSED, _with(f"{c.rpo_writes} lost", unchecked))
    return Verdict(c.cell, RPO_TARGET, Outcome.MET, f"0 lost of {c.looked_up}")


def same_data_verdict(c: CellConsistency) -> Verdict:
    unchecked = _not_checked(c)
    if c.diverged is None:
        return Verdict(c.cell, SAME_DATA_TARGET, Outcome.NOT_CHECKED, unchecked or "no member checked")
    if c.diverged:
        return Verdict(c.cell, SAME_DATA_TARGET, Outcome.MISSED, _with("diverged", unchecked))
    return Verdict(c.cell, SAME_DATA_TARGET, Outcome.MET, "equal")


def leaves_quorum_verdicts(inside_states: dict[str, MemberState] | None) -> list[Verdict]:
    """A member on the cut-off side must say it is out of the quorum; one that did not answer said nothing."""
    if not inside_states:
        return [Verdict("*", LEAVES_QUORUM_TARGET, Outcome.NOT_CHECKED, "not asked during the cut")]
    out = []
    for state in inside_states.values():
        outcome = passed(not state.in_quorum) if state.reachable else Outcome.NOT_CHECKED
        out.append(Verdict(state.member.cell, LEAVES_QUORUM_TARGET, outcome, f"{state.member.host} {state.describe()}"))
    return out


def _not_checked(c: CellConsistency) -> str:
    return "; ".join(f"{host} not checked: {why}" for host, why in sorted(c.not_checked.items()))


def _with(value: str, unchecked: str) -> str:
    return f"{value}; {unchecked}" if unchecked else value


def all_met(verdicts: list[Verdict]) -> bool:
    return all(v.met for v in verdicts)
