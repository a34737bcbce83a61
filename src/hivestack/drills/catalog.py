"""The drills: what each takes away, on which scope, and what it is judged by."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

# How a drill's fault is made (hivestack.drills.faults.INJECTORS): the lab's own primitives, or the drill playbooks
# (the production path). Named here so that the command line offers them without importing the injectors.
INJECTOR_NAMES = ("lab", "playbook")


class Scope(Enum):
    DC = "dc"
    HOST = "host"


@dataclass(frozen=True)
class Drill:
    name: str
    summary: str
    scope: Scope
    # The lab primitive behind it: cut | partition | gray | kill (the host), or drain | undrain (planned switches,
    # which are host operations: the playbook's levers serve the lab too).
    lab_fault: str
    # The fault's side is cut off from the rest: its members must leave the primary component (split-brain window).
    isolates: bool = False
    # Load also goes through the gateways inside the fault: they keep running and must refuse (partition) or
    # struggle (gray), and the drill proves what they acknowledged.
    loads_inside: bool = True
    planned: bool = False
    # A step before the measured one (failback first drains, then measures the way back).
    prepares: bool = False

    @property
    def playbook(self) -> str:
        return f"drills/{self.name}.yml"


DRILLS: dict[str, Drill] = {
    d.name: d
    for d in (
        Drill(
            "dc-outage", "a whole DC cut off, management included", Scope.DC, "cut", isolates=True, loads_inside=False
        ),
        Drill(
            "dc-partition",
            "a DC cut off from the other DCs while its hosts keep running",
            Scope.DC,
            "partition",
            isolates=True,
        ),
        Drill("gray-failure", "random packet loss between one DC and the rest", Scope.DC, "gray"),
        Drill("host-loss", "one database host killed, then started again", Scope.HOST, "kill"),
        Drill("dc-evacuation", "planned: every cell led from a DC switched away", Scope.DC, "drain", planned=True),
        Drill(
            "failback",
            "planned: the cells drained from a DC switched back",
            Scope.DC,
            "undrain",
            planned=True,
            prepares=True,
        ),
    )
}


def drill(name: str) -> Drill:
    try:
        return DRILLS[name]
    except KeyError:
        raise ValueError(f"unknown drill {name!r} (valid: {', '.join(DRILLS)})") from None
