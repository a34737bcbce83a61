"""The ground floor: the topology model, its loader, derived placement and the survivability rules.

Nothing here imports any other part of hivestack. The names below are imported when first used (PEP 562): a
caller that needs one small module of the package (`printable`, `ports`) does not pay for the model's validators.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hivestack.topology.loader import LoadedTopology, load_topology, survivability_violations
    from hivestack.topology.model import Arch, Cell, DataCenter, Role, ServerPool, Topology
    from hivestack.topology.placement import Host, Placement, place
    from hivestack.topology.problems import Problem, TopologyError

_HOME = {
    "LoadedTopology": "loader",
    "load_topology": "loader",
    "survivability_violations": "loader",
    "Arch": "model",
    "Cell": "model",
    "DataCenter": "model",
    "Role": "model",
    "ServerPool": "model",
    "Topology": "model",
    "Host": "placement",
    "Placement": "placement",
    "place": "placement",
    "Problem": "problems",
    "TopologyError": "problems",
}

__all__ = [  # noqa: RUF022 - the same names as _HOME, in its order
    "LoadedTopology",
    "load_topology",
    "survivability_violations",
    "Arch",
    "Cell",
    "DataCenter",
    "Role",
    "ServerPool",
    "Topology",
    "Host",
    "Placement",
    "place",
    "Problem",
    "TopologyError",
]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value  # once found, an ordinary attribute
    return value
