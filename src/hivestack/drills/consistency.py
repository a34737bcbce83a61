"""RPO and divergence after healing: every acknowledged write looked up on every member, and every member's
ledger digested, once the cell has converged."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from hivestack.drills.measure import Ack
from hivestack.engines import CellEngine, Member, RemoteShell

CONVERGE_TIMEOUT_S = 240  # a killed member rejoins by state transfer (30-40 s here), slower on a loaded machine


class NotConverged(RuntimeError):
    pass


@dataclass
class CellConsistency:
    """What the members of one cell answered. A member that could not be asked (unreachable, out of the quorum, not
    caught up, or its look-up failed) is in `not_checked`, never read as holding everything."""

    cell: str
    looked_up: int  # acknowledged writes to look up on every member, over the whole drill
    missing: dict[str, list[str]] = field(default_factory=dict)  # per member checked: acknowledged keys it lacks
    fingerprints: dict[str, dict[str, str]] = field(default_factory=dict)  # per member checked, per table
    not_checked: dict[str, str] = field(default_factory=dict)  # per member not checked: why

    @property
    def lost(self) -> int:
        """Acknowledged writes found absent from at least one member checked (a floor when some were not)."""
        return len({key for keys in self.missing.values() for key in keys})

    @property
    def complete(self) -> bool:
        """Every member was checked, and there was something to look up."""
        return bool(self.missing) and not self.not_checked and self.looked_up > 0

    @property
    def rpo_writes(self) -> int | None:
        """Acknowledged writes absent from at least one member; None when nothing was found missing but the check
        was not complete: then RPO 0 is not shown."""
        return self.lost if self.lost or self.complete else None

    @property
    def diverged(self) -> bool | None:
        """The members checked do not all hold the same data; None when they agree but some member (or every one)
        was not checked."""
        differing = len({tuple(sorted(fp.items())) for fp in self.fingerprints.values()}) > 1
        if not differing and (self.not_checked or not self.fingerprints):
            return None
        return differing

    def to_dict(self) -> dict[str, Any]:
        return {
            "cell": self.cell,
            "looked_up": self.looked_up,
            "rpo_writes": self.rpo_writes,
            "missing": {member: keys[:20] for member, keys in self.missing.items() if keys},
            "diverged": self.diverged,
            "fingerprints": self.fingerprints,
            "not_checked": self.not_checked,
        }


def acked_keys(acks: list[Ack]) -> list[str]:
    return sorted({a.key for a in acks if a.ok})


def wait_converged(
    engine: CellEngine,
    cells: dict[str, list[Member]],
    shell: RemoteShell,
    timeout: float = CONVERGE_TIMEOUT_S,
    same_position: bool = True,
) -> float:
    """Until every member of every cell is in service and (same_position: once writes have stopped) has committed
    the same last transaction; seconds."""
    start = time.monotonic()
    while True:
        lagging = []
        for cell, members in cells.items():
            states = [engine.state(m, shell) for m in members]
            committed = {s.last_committed for s in states}
            if not all(s.in_service for s in states) or (same_position and len(committed) != 1):
                lagging.append(f"{cell}: " + ", ".join(f"{s.member.host} {s.describe()}" for s in states))
        if not lagging:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise NotConverged(f"not converged after {timeout:.0f} s: " + "; ".join(lagging))
        time.sleep(1)


def check_cell(
    engine: CellEngine, cell: str, members: list[Member], shell: RemoteShell, keys: list[str]
) -> CellConsistency:
    """Every key and a digest of the ledger on every member in service; the others are not checked (a member out of
    the quorum or catching up would read as missing writes it is about to receive)."""
    result = CellConsistency(cell, len(keys))
    for member in members:
        state = engine.state(member, shell)
        if not state.in_service:
            result.not_checked[member.host] = state.describe()
            continue
        try:
            present = engine.transfer_keys(member, shell, keys)
            fingerprint = engine.fingerprint(member, shell)
        except Exception as e:  # it went away between its state and its look-up: not checked, and reported why
            result.not_checked[member.host] = f"look-up failed: {str(e)[:200]}"
            continue
        result.missing[member.host] = [k for k in keys if k not in present]
        result.fingerprints[member.host] = fingerprint
    return result


def rpo_summary(checks: list[CellConsistency]) -> dict[str, Any]:
    """Acknowledged writes over every cell and how many were lost; `lost` is None while any cell's RPO is unknown."""
    unknown = [c.cell for c in checks if c.rpo_writes is None]
    return {
        "acked": sum(c.looked_up for c in checks),
        "lost": None if unknown else sum(c.lost for c in checks),
        "not_checked": unknown,
    }
