"""Data-driven: every file in tests/topologies/invalid/ names, on its first line, the error it must produce.

Each must be rejected by the library and by the CLI (exit 1, one located line per problem, nothing but printable
text whatever the file held) and nothing written. A case's body may be in any encoding, or binary: only its first
line has to be UTF-8.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from hivestack.cli.main import main
from hivestack.topology import TopologyError, load_topology
from tests.conftest import INVALID_TOPOLOGIES

pytestmark = pytest.mark.unit


def expected(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode()
    assert first.startswith("# expect: "), f"{path.name}: first line must be '# expect: <message>'"
    return first.removeprefix("# expect: ")


def test_corpus_is_large_enough():
    assert len(INVALID_TOPOLOGIES) >= 20


@pytest.mark.parametrize("path", INVALID_TOPOLOGIES, ids=lambda p: p.stem)
def test_library_rejects_with_located_message(path: Path):
    with pytest.raises(TopologyError) as caught:
        load_topology(path)
    messages = [str(p) for p in caught.value.problems]
    assert any(expected(path) in m for m in messages), messages
    assert all(m.startswith(f"{path}:") for m in messages)
    assert all(isinstance(p.line, int) and p.line >= 1 for p in caught.value.problems), messages


@pytest.mark.parametrize("path", INVALID_TOPOLOGIES, ids=lambda p: p.stem)
def test_cli_exits_1_and_writes_nothing(path: Path, tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = sorted(os.listdir(tmp_path))
    assert main(["topology", "validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert expected(path) in " ".join(err.split())
    # One line per problem, each located, none able to move the cursor or forge a line of its own.
    lines = err.strip().split("\n")
    assert all(line.startswith("error: ") and re.search(r" \(line \d+\)$", line) for line in lines), lines
    assert all(line.isprintable() for line in lines), lines
    assert "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == before
