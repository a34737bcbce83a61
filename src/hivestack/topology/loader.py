"""Read a topology file into the model, turning every problem into a located, one-line error."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from hivestack.topology.model import LocatedValueError, Topology
from hivestack.topology.placement import Placement, place
from hivestack.topology.survivability import Violation, check, facts_from_topology

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Problem:
    file: str
    path: str  # dotted path into the document, items named where they have a name: datacenters[dc-a].subnet
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return f"{self.file}:{self.path or '<document>'}: {self.message}{where}"


class TopologyError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class LoadedTopology:
    path: Path
    topology: Topology
    placement: Placement


def load_topology(path: Path | str, survivability: bool = True) -> LoadedTopology:
    """Parse, type-check and (by default) apply the survivability rules; raise TopologyError on any problem."""
    path = Path(path)
    label = str(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise TopologyError([Problem(label, "", f"cannot read the file: {e.strerror}")]) from None
    document, lines = _parse(label, text)
    if not isinstance(document, dict):
        raise TopologyError([Problem(label, "", "the document must be a mapping (name, city, datacenters, ...)", 1)])
    try:
        topology = Topology.model_validate(document)
        placement = place(topology)
    except ValidationError as e:
        raise TopologyError([_problem(label, document, lines, err) for err in e.errors()]) from None
    except LocatedValueError as e:
        raise TopologyError([_located(label, document, lines, e.path.split("."), e.message)]) from None
    loaded = LoadedTopology(path, topology, placement)
    if survivability:
        violations = survivability_violations(loaded)
        if violations:
            raise TopologyError([_violation(label, document, lines, v) for v in violations])
    return loaded


def survivability_violations(loaded: LoadedTopology) -> list[Violation]:
    return check(facts_from_topology(loaded.topology, loaded.placement))


def _parse(label: str, text: str) -> tuple[Any, dict[tuple[str, ...], int]]:
    """YAML to plain data, plus the line where every path starts (for messages)."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        document = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        line = mark.line + 1 if mark else None
        raise TopologyError([Problem(label, "", f"not valid YAML: {e.problem}", line)]) from None
    finally:
        loader.dispose()
    lines: dict[tuple[str, ...], int] = {}
    if node is not None:
        _index_lines(node, (), lines)
    return document, lines


def _index_lines(node: yaml.Node, at: tuple[str, ...], lines: dict[tuple[str, ...], int]) -> None:
    lines[at] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            lines[(*at, str(key.value))] = key.start_mark.line + 1
            _index_lines(value, (*at, str(key.value)), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, (*at, str(i)), lines)


def _problem(label: str, document: Any, lines: dict[tuple[str, ...], int], err: dict[str, Any]) -> Problem:
    loc = [str(p) for p in err["loc"]]
    cause = err.get("ctx", {}).get("error")
    if isinstance(cause, LocatedValueError):
        return _located(label, document, lines, [*loc, *cause.path.split(".")], cause.message)
    return _located(label, document, lines, loc, _describe(err))


def _describe(err: dict[str, Any]) -> str:
    message = err["msg"].removeprefix("Value error, ")
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; `hivestack topology schema` lists the keys)"
    if kind == "missing":
        return "required key is missing"
    if kind == "enum":
        return f"{message} (got {err['input']!r})"
    if "input" in err and not isinstance(err["input"], dict | list):
        return f"{message} (got {err['input']!r})"
    return message


def _violation(label: str, document: Any, lines: dict[tuple[str, ...], int], v: Violation) -> Problem:
    parts = v.path.split(".") if _resolves(document, v.path.split(".")) else []
    problem = _located(label, document, lines, parts, f"{v.message} [{v.rule}]")
    return problem if parts else Problem(label, v.path, problem.message)


def _located(label: str, document: Any, lines: dict[tuple[str, ...], int], loc: list[str], message: str) -> Problem:
    return Problem(label, _readable(document, loc), message, _line_of(lines, loc))


def _line_of(lines: dict[tuple[str, ...], int], loc: list[str]) -> int | None:
    for n in range(len(loc), -1, -1):
        if tuple(loc[:n]) in lines:
            return lines[tuple(loc[:n])]
    return None


def _resolves(document: Any, loc: list[str]) -> bool:
    node = document
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def _readable(document: Any, loc: list[str]) -> str:
    """datacenters.0.pools.1.count -> datacenters[dc-a].pools[db-a].count, naming items that have a name."""
    out = ""
    node = document
    for part in loc:
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            item = node[int(part)]
            name = item.get("name") if isinstance(item, dict) else None
            out += f"[{name}]" if isinstance(name, str) and name else f"[{part}]"
            node = item
            continue
        out += f".{part}" if out else part
        node = node.get(part) if isinstance(node, dict) else None
    return out
