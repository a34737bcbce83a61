"""The cell-database engine as validation sees it: the fastest recovery its own timers allow.

The engine lives behind the seam in `hivestack.engines` (members, writer, safe to write) and its timers in its
role's defaults; the topology layer imports neither. The one fact validation needs from them, the shortest RTO the
engine can deliver, is derived here from those same timers, and tests/unit/test_cell_engine.py reads the role
defaults so that the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RtoFloor:
    """Once the writer's DC is lost, two things must happen before a cell commits a write again, and both start at
    the moment of the loss: the surviving members evict the silent writer and form a new primary component (Galera
    does not suspect a member before `evs.suspect_timeout` of silence), and every gateway stops sending the cell's
    writes to it (HAProxy marks a server down after `fall` failed checks `inter` apart). Neither can be shortened
    by anything else, so the later of the two is a floor; the drills measure 1.6-2 s on top of it (the view change,
    the client's retry)."""

    engine: str
    suspect_timeout_s: float  # playbooks/roles/galera/defaults/main.yml: galera_evs["evs.suspect_timeout"]
    check_inter_ms: int  # playbooks/roles/gateway/defaults/main.yml: gateway_check_inter_ms
    check_fall: int  # playbooks/roles/gateway/templates/haproxy.cfg.j2: `fall` of the database backends

    @property
    def seconds(self) -> float:
        return max(self.suspect_timeout_s, self.check_fall * self.check_inter_ms / 1000)

    def describe(self) -> str:
        return (
            f"the {self.engine} cell engine cannot recover faster than {self.seconds:g} s: survivors evict a silent "
            f"writer after evs.suspect_timeout ({self.suspect_timeout_s:g} s) and gateways leave it after "
            f"{self.check_fall} failed checks {self.check_inter_ms} ms apart"
        )


# The engine every platform runs today (the ansible layer's DB_ENGINE names the same one).
CELL_ENGINE_RTO_FLOOR = RtoFloor(engine="galera", suspect_timeout_s=1.0, check_inter_ms=500, check_fall=2)
