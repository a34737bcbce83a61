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
    cell: str
    checked: int  # acknowledged writes looked up, over the whole drill
    missing: dict[str, list[str]] = field(default_factory=dict)  # per member: acknowledged keys it does not hold
    fingerprints: dict[str, dict[str, str]] = field(default_factory=dict)  # per member, per table

    @property
    def rpo_writes(self) -> int:
        """Acknowledged writes absent from at least one member."""
        return len({key for keys in self.missing.values() for key in keys})

    @property
    def diverged(self) -> bool:
        return len({tuple(sorted(fp.items())) for fp in self.fingerprints.values()}) > 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "cell": self.cell,
            "checked": self.checked,
            "rpo_writes": self.rpo_writes,
            "missing": {member: keys[:20] for member, keys in self.missing.items() if keys},
            "diverged": self.diverged,
            "fingerprints": self.fingerprints,
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
    """Until every member of every cell is safe to write and (same_position: once writes have stopped) has
    committed the same last transaction; seconds."""
    start = time.monotonic()
    while True:
        lagging = []
        for cell, members in cells.items():
            states = [engine.state(m, shell) for m in members]
            committed = {s.detail.get("wsrep_last_committed") for s in states}
            if not all(s.safe_to_write for s in states) or (same_position and len(committed) != 1):
                lagging.append(f"{cell}: " + ", ".join(f"{s.member.host} {_brief(s.detail)}" for s in states))
        if not lagging:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise NotConverged(f"not converged after {timeout:.0f} s: " + "; ".join(lagging))
        time.sleep(1)


def _brief(detail: dict[str, str]) -> str:
    if "error" in detail:
        return "unreachable"
    status, state = detail.get("wsrep_cluster_status"), detail.get("wsrep_local_state_comment")
    return f"{status}/{state}@{detail.get('wsrep_last_committed')}"


def check_cell(
    engine: CellEngine, cell: str, members: list[Member], shell: RemoteShell, keys: list[str]
) -> CellConsistency:
    result = CellConsistency(cell, len(keys))
    for member in members:
        present = engine.transfer_keys(member, shell, keys)
        result.missing[member.host] = [k for k in keys if k not in present]
        result.fingerprints[member.host] = engine.fingerprint(member, shell)
    return result
