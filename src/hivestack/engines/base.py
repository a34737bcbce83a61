"""What every cell-database engine answers: its members, which one writes, whether a member is safe to write to,
and how to reach it. The promise each engine keeps on its hosts: a health endpoint on the cell's `db-health` port
that answers 200 only where writes are safe; the gateways route by it, whatever the engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


class RemoteShell(Protocol):
    """Runs a command on a host (SSH in the lab and in production) and returns its stdout."""

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
    member: Member
    safe_to_write: bool
    in_primary: bool
    cluster_size: int
    detail: dict[str, str]


class CellEngine(Protocol):
    name: str

    def members(self, cell: dict[str, Any]) -> list[Member]:
        """A cell's members in failover order, from the platform variables (`hivestack_all_cells`)."""
        ...

    def state(self, member: Member, shell: RemoteShell) -> MemberState: ...

    def writer(self, cell: dict[str, Any], shell: RemoteShell) -> Member | None:
        """The member writes go to: the first, in failover order, that is safe to write to."""
        ...

    def query(self, member: Member, shell: RemoteShell, sql: str) -> list[list[str]]:
        """Rows of an administrative query run on that member alone (for checks and drills)."""
        ...

    def transfer_keys(self, member: Member, shell: RemoteShell, keys: list[str]) -> set[str]:
        """Which of these acknowledged transfers (idempotency keys) this member holds."""
        ...

    def fingerprint(self, member: Member, shell: RemoteShell) -> dict[str, str]:
        """Per ledger table, a digest of its rows: equal on two members only if they hold the same data."""
        ...
