"""A cell: its customer range and its database members, writer first then backups in failover order."""

from __future__ import annotations

import pulumi

from hivestack.components import types
from hivestack.components.declared import Declared
from hivestack.topology import Cell as CellModel
from hivestack.topology.placement import CellMember


class Cell(Declared):
    def __init__(
        self,
        cell: CellModel,
        members: list[CellMember],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        ordered = sorted(members, key=lambda m: m.order)
        super().__init__(
            types.CELL,
            cell.name,
            {
                "name": cell.name,
                "home": cell.home,
                "members": [{"dc": m.dc, "host": m.host, "order": m.order} for m in ordered],
                "writer": ordered[0].host if ordered else None,
                "dr": cell.dr,
                "range_start": cell.range.start,
                "range_end": cell.range.end,
                "accounts": cell.accounts,
            },
            opts,
        )
