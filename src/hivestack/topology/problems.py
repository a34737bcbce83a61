"""What a rejected topology reports: one located line per problem, safe to print whatever the file contained."""

from __future__ import annotations

from dataclasses import dataclass

from hivestack.topology.printable import printable


@dataclass(frozen=True)
class Problem:
    file: str
    path: str  # dotted path into the document, items named where they have a name: datacenters[dc-a].subnet
    message: str
    line: int | None = None  # None only when the file could not be read at all

    def __str__(self) -> str:
        # Paths and messages echo keys, names and the file name as written: escape them (see printable).
        where = f" (line {self.line})" if self.line else ""
        return f"{printable(self.file)}:{printable(self.path) or '<document>'}: {printable(self.message)}{where}"


class TopologyError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems
