"""The ground floor: the topology model, its loader, derived placement and the survivability rules.

Nothing here imports any other part of hivestack.
"""

from hivestack.topology.loader import LoadedTopology, load_topology, survivability_violations
from hivestack.topology.model import Arch, Cell, DataCenter, Role, ServerPool, Topology
from hivestack.topology.placement import Host, Placement, place
from hivestack.topology.problems import Problem, TopologyError

__all__ = [
    "Arch",
    "Cell",
    "DataCenter",
    "Host",
    "LoadedTopology",
    "Placement",
    "Problem",
    "Role",
    "ServerPool",
    "Topology",
    "TopologyError",
    "load_topology",
    "place",
    "survivability_violations",
]
