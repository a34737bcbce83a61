"""A topology file's YAML read without trusting it: bounded, strict, and indexed by path for located messages.

PyYAML composes a graph in which an alias *is* the node its anchor names, so a few lines can describe a tree of
billions of nodes (each level of aliases doubling the one below) or a node that contains itself. Walking, building
or validating that as a tree never ends, so the graph is measured first, once per distinct node, and refused past
the limits below; only then is it walked as a tree (paths, lines, spelling checks) and turned into Python data.
Before any of that the parser's events are counted: building a node costs several times more than parsing it.

Strict where YAML 1.1 is surprising: a key given twice is refused (PyYAML keeps the last one silently), a number must
be written in plain decimal (YAML reads `010` as octal 8 and `1:30` as 90), and only plain values (mappings, lists,
strings, numbers, booleans, null) are accepted: `!!binary`, dates and other tags have no place in a topology.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hivestack.topology.model import NAME_PATTERN
from hivestack.topology.printable import printable
from hivestack.topology.problems import Problem, TopologyError

# The 1,000-server sample is 12 KB and about 1,800 values; the largest topology the model accepts (64 DCs of 64
# pools, every role in each, 100 cells) is about 400 KB and 95,000 values. The deepest value a topology has is 7
# levels down (the document, datacenters, a DC, pools, a pool, roles, a role), so 16 leaves room for a misplaced
# value to be reported as such.
MAX_FILE_BYTES = 1 << 20
MAX_VALUES = 100_000
MAX_DEPTH = 16
# A key echoed in a path is cut here: a 1 MiB key must not become a 1 MiB message.
_SHOWN_KEY_CHARS = 60

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"
_PLAIN_TAGS = {f"{_TAG}{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map", "merge")}
# Characters YAML does not allow in a stream (the YAML 1.1 printable set): NUL and other controls mean binary data.
_NOT_YAML_TEXT = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_PLAIN_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_PLAIN_FLOAT = re.compile(
    r"[-+]?(\.[0-9]+|(0|[1-9][0-9]*)(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)"
)
# Integers beyond this many digits are refused before Python converts them (above 4,300 it raises, and no bound in
# the model is anywhere near 18 digits).
_MAX_INT_DIGITS = 18
_NAME = re.compile(NAME_PATTERN)


@dataclass(frozen=True)
class Location:
    line: int
    readable: str  # the path as messages show it: datacenters[dc-a].pools[a-db].count


@dataclass(frozen=True)
class Document:
    data: Any
    locations: dict[tuple[str, ...], Location]

    def locate(self, loc: Sequence[str]) -> Location:
        """Where a path is; for a path the file does not have (a missing key), where its nearest parent is."""
        for n in range(len(loc), -1, -1):
            found = self.locations.get(tuple(loc[:n]))
            if found is not None:
                return Location(found.line, _join(found.readable, loc[n:]))
        return Location(1, _join("", loc))


def read_document(path: Path, label: str) -> Document:
    """Read, decode, parse and check `path`; raise TopologyError with located problems on anything refused."""
    raw = _read_bounded(path, label)
    text = _decode(raw, label)
    _count_values(text, label)
    loader = _Loader(text)
    try:
        node = _compose(loader, label)
        if node is None:
            return Document(None, {})
        _measure(node, label)
        locations, problems = _walk(node)
        if problems:
            raise TopologyError([Problem(label, where.readable, message, where.line) for where, message in problems])
        try:
            data = loader.construct_document(node)
        except yaml.YAMLError as e:
            raise TopologyError([_yaml_problem(label, e)]) from None
    finally:
        loader.dispose()
    return Document(data, locations)


def _read_bounded(path: Path, label: str) -> bytes:
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            # A FIFO would block the read, a device such as /dev/zero would never end.
            raise TopologyError([Problem(label, "", "not a regular file")])
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise TopologyError([Problem(label, "", f"cannot read the file: {e.strerror or e}")]) from None
    if len(raw) > MAX_FILE_BYTES:
        line = raw.count(b"\n", 0, MAX_FILE_BYTES) + 1
        raise TopologyError(
            [
                Problem(
                    label,
                    "",
                    f"the file is larger than {MAX_FILE_BYTES // 1024} KiB, the most a topology may be "
                    "(the 1,000-server sample is 12 KB); the limit is reached on this line",
                    line,
                )
            ]
        )
    return raw


def _decode(raw: bytes, label: str) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        message = f"not UTF-8 text: byte 0x{raw[e.start]:02x} cannot be decoded (save the file as UTF-8)"
        raise TopologyError([Problem(label, "", message, line)]) from None
    bad = _NOT_YAML_TEXT.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        message = f"character {printable(bad.group())} is not allowed in YAML text (binary data?)"
        raise TopologyError([Problem(label, "", message, line)])
    return text


def _count_values(text: str, label: str) -> None:
    loader = _Loader(text)
    try:
        count = 0
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.NodeEvent):  # a scalar, an alias, or the start of a list or mapping
                count += 1
                if count > MAX_VALUES:
                    line = event.start_mark.line + 1
                    message = f"the file holds more than {MAX_VALUES:,} values, more than any topology needs"
                    raise TopologyError([Problem(label, "", message, line)])
    except yaml.YAMLError as e:
        raise TopologyError([_yaml_problem(label, e)]) from None
    finally:
        loader.dispose()


def _compose(loader: Any, label: str) -> yaml.Node | None:
    try:
        return loader.get_single_node()
    except yaml.YAMLError as e:
        raise TopologyError([_yaml_problem(label, e)]) from None


def _yaml_problem(label: str, e: yaml.YAMLError) -> Problem:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    return Problem(label, "", f"not valid YAML: {problem}", mark.line + 1 if mark else 1)


def _children(node: yaml.Node) -> Iterator[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield key
            yield value
    elif isinstance(node, yaml.SequenceNode):
        yield from node.value


def _measure(root: yaml.Node, label: str) -> None:
    """Refuse a graph that contains itself, or whose tree (aliases expanded) is too large or too deep.

    Each distinct node is visited once (sizes and heights are summed bottom-up), so an alias bomb costs its own
    length, not its expansion. Iterative: a deep document must not exhaust Python's stack.
    """
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    open_nodes: set[int] = set()  # the nodes on the current path from the root: meeting one again is a cycle
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if isinstance(node, yaml.ScalarNode):  # most nodes: a leaf settles at once
            size[key] = height[key] = 1
            continue
        if finished:
            kids = list(_children(node))
            size[key] = 1 + sum(size[id(k)] for k in kids)
            height[key] = 1 + max((height[id(k)] for k in kids), default=0)
            open_nodes.discard(key)
            if size[key] > MAX_VALUES:  # the events were counted: only aliases can take a value past the limit
                raise _refused(
                    label,
                    node,
                    f"this value holds more than {MAX_VALUES:,} values once aliases are "
                    "expanded, more than any topology needs (an alias bomb?)",
                )
            if height[key] > MAX_DEPTH:
                raise _refused(label, node, f"values are nested more than {MAX_DEPTH} levels deep here")
            continue
        if key in size:
            continue
        if key in open_nodes:
            raise _refused(label, node, "an alias refers to the value that contains it (a recursive alias)")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node) if id(k) not in size)


def _refused(label: str, node: yaml.Node, message: str) -> TopologyError:
    return TopologyError([Problem(label, "", message, node.start_mark.line + 1)])


def _walk(root: yaml.Node) -> tuple[dict[tuple[str, ...], Location], list[tuple[Location, str]]]:
    """Index every path of the tree (aliases expanded: bounded by _measure) and check each distinct node once."""
    locations: dict[tuple[str, ...], Location] = {}
    problems: list[tuple[Location, str]] = []
    checked: set[int] = set()
    stack: list[tuple[yaml.Node, tuple[str, ...], Location]] = [(root, (), Location(root.start_mark.line + 1, ""))]
    while stack:
        node, at, where = stack.pop()
        locations[at] = where
        first_visit = id(node) not in checked
        checked.add(id(node))
        if first_visit:
            problems.extend((where, message) for message in _spelling(node))
        children: list[tuple[yaml.Node, tuple[str, ...], Location]] = []
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode):
                    if first_visit:
                        problems.append((_at(key, where.readable), "a key must be a plain name, not a list or mapping"))
                    continue
                key_where = Location(key.start_mark.line + 1, _join(where.readable, [key.value]))
                if key.value in seen and first_visit:
                    problems.append((key_where, "this key is given twice in the same mapping (keep one)"))
                seen.add(key.value)
                children.append((value, (*at, key.value), key_where))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                children.append((item, (*at, str(i)), _at(item, f"{where.readable}[{_item_name(item) or i}]")))
        stack.extend(reversed(children))  # keep document order, so problems come out top to bottom
    return locations, problems


def _spelling(node: yaml.Node) -> Iterator[str]:
    if node.tag not in _PLAIN_TAGS:
        yield (f"YAML type {node.tag.removeprefix(_TAG)} is not used in topology files (quote the value if it is text)")
    elif isinstance(node, yaml.ScalarNode):  # plain or tagged (`!!int "010"` is octal too)
        text = node.value
        if node.tag == f"{_TAG}int":
            if not _PLAIN_INT.fullmatch(text):
                yield (
                    f"{text} is not a plain decimal number: YAML reads a leading 0 as octal (010 is 8), and 0x, 0o, "
                    "1_000 and 1:30 forms as other numbers (write the digits without a leading zero)"
                )
            elif len(text.lstrip("+-")) > _MAX_INT_DIGITS:
                yield f"a number of {len(text.lstrip('+-'))} digits is far too large"
        elif node.tag == f"{_TAG}float" and not _PLAIN_FLOAT.fullmatch(text):
            yield f"{text} is not a plain decimal number (write it without underscores or colons)"


def _item_name(node: yaml.Node) -> str | None:
    """The name of a list item, when it has a valid one: messages say datacenters[dc-a], not datacenters[0]."""
    if not isinstance(node, yaml.MappingNode):
        return None
    for key, value in node.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "name" and isinstance(value, yaml.ScalarNode):
            return value.value if _NAME.fullmatch(value.value) else None
    return None


def _at(node: yaml.Node, readable: str) -> Location:
    return Location(node.start_mark.line + 1, readable)


def _join(readable: str, parts: Sequence[str]) -> str:
    for part in parts:
        shown = part if len(part) <= _SHOWN_KEY_CHARS else f"{part[: _SHOWN_KEY_CHARS - 3]}..."
        readable = f"{readable}.{shown}" if readable else shown
    return readable
