"""Read a topology file into the model, turning every problem into a located, one-line error."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from hivestack.topology.document import Document, read_document
from hivestack.topology.model import LocatedValueError, Topology
from hivestack.topology.placement import Placement, place
from hivestack.topology.problems import Problem, TopologyError
from hivestack.topology.survivability import Violation, check, facts_from_topology

# An echoed value (`got ...`) is cut here: a 1 MiB string must not become a 1 MiB message.
_SHOWN_CHARS = 60


@dataclass(frozen=True)
class LoadedTopology:
    path: Path
    topology: Topology
    placement: Placement


def load_topology(path: Path | str, survivability: bool = True) -> LoadedTopology:
    """Parse, type-check and (by default) apply the survivability rules; raise TopologyError on any problem."""
    path = Path(path)
    label = str(path)
    document = read_document(path, label)
    if not isinstance(document.data, dict):
        raise TopologyError([Problem(label, "", "the document must be a mapping (name, city, datacenters, ...)", 1)])
    try:
        topology = Topology.model_validate(document.data)
        placement = place(topology)
    except ValidationError as e:
        raise TopologyError([_problem(label, document, err) for err in e.errors()]) from None
    except LocatedValueError as e:
        raise TopologyError([_located(label, document, e.path.split("."), e.message)]) from None
    loaded = LoadedTopology(path, topology, placement)
    if survivability:
        violations = survivability_violations(loaded)
        if violations:
            raise TopologyError(
                [_located(label, document, v.path.split("."), f"{v.message} [{v.rule}]") for v in violations]
            )
    return loaded


def survivability_violations(loaded: LoadedTopology) -> list[Violation]:
    return check(facts_from_topology(loaded.topology, loaded.placement))


def _problem(label: str, document: Document, err: ErrorDetails) -> Problem:
    loc = [str(p) for p in err["loc"]]
    cause = err.get("ctx", {}).get("error")
    if isinstance(cause, LocatedValueError):
        return _located(label, document, [*loc, *cause.path.split(".")], cause.message)
    return _located(label, document, loc, _describe(err))


def _describe(err: ErrorDetails) -> str:
    message = err["msg"].removeprefix("Value error, ")
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; `hivestack topology schema` lists the keys)"
    if kind == "missing":
        return "required key is missing"
    if kind == "enum" or ("input" in err and not isinstance(err["input"], dict | list)):
        return f"{message} (got {_shown(err['input'])})"
    return message


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else f"{text[: _SHOWN_CHARS - 3]}..."


def _located(label: str, document: Document, loc: list[str], message: str) -> Problem:
    where = document.locate(loc)
    return Problem(label, where.readable, message, where.line)
