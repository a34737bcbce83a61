"""What every cell-database engine answers: its members, what each says of itself (in engine-neutral words, so a
second engine plugs in without touching its readers), which one writes, and how to reach it. The promise each
engine keeps on its hosts: a health endpoint on the cell's `db-health` port that answers 200 only where writes are
safe; the gateways route by it, whatever the engine."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Protocol


class RemoteShell(Protocol):
    """Runs a command on a host (SSH in the lab and in production) and returns its stdout; raises when the host
    cannot be reached or the command fails."""

    def __call__(self, host: str, command: str) -> str: ...


@dataclass(frozen=True)
class Member:
    cell: str
    host: str
    dc: str
    address: str
    order: int  # 0: the home member, which writes while healthy; then the backups in failover order
    port: int  # client port
    health_port: int


@dataclass(frozen=True)
class MemberState:
    """What a member says of itself, in words every engine can fill (each engine maps its own status onto them).

    Drills, checks and tests read only these fields: never an engine's status names."""

    member: Member
    reachable: bool  # it answered; when False every other field is its default and `error` says why
    in_quorum: bool = False  # in the group that holds the cell's quorum and may commit (Galera: Primary)
    synced: bool = False  # holds what that group committed and applies what it commits next
    safe_to_write: bool = False  # a write sent to it now would commit (Galera: any synced member of the quorum)
    group_size: int = 0  # members in the group it is part of (its own side of a partition)
    last_committed: int | None = None  # position of its last commit, comparable between the cell's members
    phase: str = ""  # the engine's own word for where it is (Galera: Synced, Joiner, Donor/Desynced...)
    error: str = ""

    @property
    def in_service(self) -> bool:
        """Part of the cell as it should be: in the quorum and caught up (a backup included)."""
        return self.reachable and self.in_quorum and self.synced

    def describe(self) -> str:
        if not self.reachable:
            return f"unreachable ({self.error})"
        side = "in quorum" if self.in_quorum else "out of quorum"
        return f"{side} of {self.group_size}, {self.phase or 'no phase'} @{self.last_committed}"

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "member"}


class CellEngine(Protocol):
    name: str

    def members(self, cell: dict[str, Any]) -> list[Member]:
        """A cell's members in failover order, from the platform variables (`hivestack_all_cells`)."""
        ...

    def state(self, member: Member, shell: RemoteShell) -> MemberState:
        """The member's own view of itself; an unreachable member is a state (`reachable` False), not an error."""
        ...

    def writer(self, cell: dict[str, Any], shell: RemoteShell) -> Member | None:
        """The member writes go to: the first, in failover order, that is safe to write to."""
        ...

    def query(self, member: Member, shell: RemoteShell, sql: str, *, causal: bool = False) -> list[list[str]]:
        """Rows of an administrative query run on that member alone (for checks and drills). `causal`: the member
        first applies every write its cluster committed before the query (a read on a backup right after a write)."""
        ...

    def transfer_keys(self, member: Member, shell: RemoteShell, keys: list[str]) -> set[str]:
        """Which of these acknowledged transfers (idempotency keys) this member holds."""
        ...

    def fingerprint(self, member: Member, shell: RemoteShell) -> dict[str, str]:
        """Per ledger table, a digest of its rows: equal on two members only if they hold the same data."""
        ...
