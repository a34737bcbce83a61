"""MariaDB Galera behind the seam: one mariadbd per cell per member host, reached on the host by its UNIX socket."""

from __future__ import annotations

import shlex
from typing import Any

from hivestack.engines.base import Member, MemberState, RemoteShell

STATUS = (
    "wsrep_cluster_status",
    "wsrep_local_state_comment",
    "wsrep_ready",
    "wsrep_cluster_size",
    "wsrep_last_committed",
)
# The ledger's tables and the columns whose values make a row (see the ledger role's schema).
LEDGER_ROWS = {
    "accounts": "customer, account, balance",
    "transfers": "idempotency_key, customer, from_account, to_account, amount",
}
KEYS_PER_QUERY = 1000


class Galera:
    name = "galera"

    def members(self, cell: dict[str, Any]) -> list[Member]:
        ports = cell["ports"]
        return [
            Member(cell["name"], m["host"], m["dc"], m["address"], m["order"], ports["mysql"], ports["db-health"])
            for m in sorted(cell["members"], key=lambda m: m["order"])
        ]

    def query(self, member: Member, shell: RemoteShell, sql: str, *, causal: bool = False) -> list[list[str]]:
        # A backup applies committed writesets asynchronously: wsrep_sync_wait makes a read wait for them first.
        statement = f"SET SESSION wsrep_sync_wait = 1; {sql}" if causal else sql
        out = shell(member.host, f"mariadb -S /run/mysqld/{member.cell}.sock -N -B -r -e {shlex.quote(statement)}")
        return [line.split("\t") for line in out.splitlines() if line]

    def state(self, member: Member, shell: RemoteShell) -> MemberState:
        names = ", ".join(f"'{k}'" for k in STATUS)
        try:
            rows = self.query(member, shell, f"SHOW GLOBAL STATUS WHERE Variable_name IN ({names})")
        except Exception as e:  # whatever kept it from answering (SSH, the socket, mariadb itself)
            return MemberState(member, reachable=False, error=str(e)[:200])
        return member_state(member, {k.lower(): v for k, v in rows})

    def writer(self, cell: dict[str, Any], shell: RemoteShell) -> Member | None:
        return next((m for m in self.members(cell) if self.state(m, shell).safe_to_write), None)

    def transfer_keys(self, member: Member, shell: RemoteShell, keys: list[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(keys), KEYS_PER_QUERY):
            chunk = ", ".join(_quote(k) for k in keys[i : i + KEYS_PER_QUERY])
            rows = self.query(
                member, shell, f"SELECT idempotency_key FROM ledger.transfers WHERE idempotency_key IN ({chunk})"
            )
            found.update(row[0] for row in rows)
        return found

    def fingerprint(self, member: Member, shell: RemoteShell) -> dict[str, str]:
        # Row count and the XOR of per-row CRC32s: order-free, one pass, computed by the member itself.
        sql = " UNION ALL ".join(
            f"SELECT '{table}', COUNT(*), COALESCE(BIT_XOR(CRC32(CONCAT_WS('|', {cols}))), 0) FROM ledger.{table}"
            for table, cols in LEDGER_ROWS.items()
        )
        return {table: f"{count}:{digest}" for table, count, digest in self.query(member, shell, sql)}


def member_state(member: Member, status: dict[str, str]) -> MemberState:
    """The seam's words for a member's wsrep status (a status it did not report counts against it)."""
    in_quorum = status.get("wsrep_cluster_status") == "Primary"
    phase = status.get("wsrep_local_state_comment", "")
    # wsrep_ready OFF: the provider refuses queries even while Synced (it is not applying what the group commits).
    synced = phase == "Synced" and status.get("wsrep_ready") == "ON"
    return MemberState(
        member,
        reachable=True,
        in_quorum=in_quorum,
        synced=synced,
        # Galera is multi-writer: every synced member of the primary component commits what it is sent.
        safe_to_write=in_quorum and synced,
        group_size=_int(status.get("wsrep_cluster_size")) or 0,
        last_committed=_int(status.get("wsrep_last_committed")),
        phase=phase,
    )


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
