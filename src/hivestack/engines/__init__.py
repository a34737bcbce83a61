"""The cell-database seam: routing, checks, the ledger and drills reach a cell's database only through it."""

from hivestack.engines.base import CellEngine, Member, MemberState, RemoteShell
from hivestack.engines.galera import Galera

ENGINES: dict[str, type[CellEngine]] = {"galera": Galera}


def engine_for(name: str) -> CellEngine:
    try:
        return ENGINES[name]()
    except KeyError:
        raise ValueError(f"unknown database engine {name!r} (valid: {', '.join(ENGINES)})") from None


__all__ = ["ENGINES", "CellEngine", "Member", "MemberState", "RemoteShell", "engine_for"]
