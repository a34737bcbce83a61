"""MariaDB Galera behind the seam: one mariadbd per cell per member host, reached on the host by its UNIX socket."""

from __future__ import annotations

import shlex
from typing import Any

from hivestack.engines.base import Member, MemberState, RemoteShell

STATUS = ("wsrep_cluster_status", "wsrep_local_state_comment", "wsrep_ready", "wsrep_cluster_size")


class Galera:
    name = "galera"

    def members(self, cell: dict[str, Any]) -> list[Member]:
        ports = cell["ports"]
        return [
            Member(cell["name"], m["host"], m["dc"], m["address"], m["order"], ports["mysql"], ports["db-health"])
            for m in sorted(cell["members"], key=lambda m: m["order"])
        ]

    def query(self, member: Member, shell: RemoteShell, sql: str) -> list[list[str]]:
        out = shell(member.host, f"mariadb -S /run/mysqld/{member.cell}.sock -N -B -e {shlex.quote(sql)}")
        return [line.split("\t") for line in out.splitlines() if line]

    def state(self, member: Member, shell: RemoteShell) -> MemberState:
        names = ", ".join(f"'{k}'" for k in STATUS)
        try:
            rows = self.query(member, shell, f"SHOW GLOBAL STATUS WHERE Variable_name IN ({names})")
        except Exception as e:  # an unreachable member is a state, not an error
            return MemberState(member, False, False, 0, {"error": str(e)[:200]})
        status = {k.lower(): v for k, v in rows}
        primary = status.get("wsrep_cluster_status") == "Primary"
        safe = primary and status.get("wsrep_local_state_comment") == "Synced" and status.get("wsrep_ready") == "ON"
        return MemberState(member, safe, primary, int(status.get("wsrep_cluster_size", 0)), status)

    def writer(self, cell: dict[str, Any], shell: RemoteShell) -> Member | None:
        return next((m for m in self.members(cell) if self.state(m, shell).safe_to_write), None)
