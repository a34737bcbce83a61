"""The drills' targets (issue: RPO 0 and no split-brain everywhere; a lost writer's cell writable again within the
topology's RTO; a cell that lost only a backup answers no error and stalls under 2 s; a planned switch pauses at
most 1 s). Gray failure is judged on loss, divergence and split-brain only: it degrades, it does not fail over."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from hivestack.drills.catalog import Drill
from hivestack.drills.consistency import CellConsistency
from hivestack.drills.measure import CellMeasure

BACKUP_LOSS_STALL_S = 2.0
PLANNED_PAUSE_S = 1.0


@dataclass(frozen=True)
class Verdict:
    cell: str  # "*" for the platform
    target: str
    met: bool
    value: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge(
    drill: Drill,
    measures: list[CellMeasure],
    consistency: list[CellConsistency],
    rto_target_s: float,
    minority_acked: int | None,
) -> list[Verdict]:
    """minority_acked: writes the fault's side acknowledged once it was cut off (None where no load went there)."""
    out: list[Verdict] = []
    for c in consistency:
        out.append(
            Verdict(
                c.cell, "RPO 0 (every acknowledged write on every member)", c.rpo_writes == 0, f"{c.rpo_writes} lost"
            )
        )
        out.append(Verdict(c.cell, "members hold the same data", not c.diverged, "diverged" if c.diverged else "equal"))
    for m in measures:
        out.append(Verdict(m.cell, "no split-brain", not m.split_brain, m.split_brain_detail or "none"))
        if drill.name == "gray-failure":
            continue
        if drill.planned:
            if m.led_from_inside:
                out.append(
                    Verdict(
                        m.cell,
                        f"write pause <= {PLANNED_PAUSE_S:g} s",
                        m.max_pause_s <= PLANNED_PAUSE_S,
                        f"{m.max_pause_s:.2f} s",
                    )
                )
        elif m.led_from_inside:
            rto = "never" if m.rto_s is None else f"{m.rto_s:.2f} s"
            out.append(
                Verdict(m.cell, f"RTO <= {rto_target_s:g} s", m.rto_s is not None and m.rto_s <= rto_target_s, rto)
            )
        else:
            out.append(Verdict(m.cell, "no client error", m.errors == 0, f"{m.errors} errors"))
            out.append(
                Verdict(
                    m.cell,
                    f"stall < {BACKUP_LOSS_STALL_S:g} s",
                    m.max_pause_s < BACKUP_LOSS_STALL_S,
                    f"{m.max_pause_s:.2f} s",
                )
            )
    if minority_acked is not None:
        out.append(
            Verdict("*", "the cut-off side refuses writes", minority_acked == 0, f"{minority_acked} acknowledged")
        )
    return out


def all_met(verdicts: list[Verdict]) -> bool:
    return all(v.met for v in verdicts)
