"""Hostile topology files that cannot be case files (too large, generated, devices, other encodings): each is
refused quickly, with bounded memory, as located lines; and what YAML legitimately offers (anchors) still works."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from hivestack.topology import TopologyError, load_topology
from hivestack.topology.document import MAX_FILE_BYTES, MAX_VALUES
from tests.conftest import LAB_TOPOLOGY

pytestmark = pytest.mark.unit


def rejected(path: Path) -> list[str]:
    with pytest.raises(TopologyError) as caught:
        load_topology(path)
    assert all(p.line for p in caught.value.problems), caught.value.problems
    return [str(p) for p in caught.value.problems]


def test_a_50_mb_file_is_refused_in_bounded_time_and_memory(tmp_path: Path):
    path = tmp_path / "huge.yaml"
    lab = LAB_TOPOLOGY.read_text()
    with path.open("w") as f:
        while f.tell() < 50 * 2**20:
            f.write(lab)
    tracemalloc.start()
    start = time.perf_counter()
    messages = rejected(path)
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 2, elapsed
    assert peak < 4 * MAX_FILE_BYTES, peak  # reads no more than the limit, whatever the size
    assert len(messages) == 1 and "larger than 1024 KiB" in messages[0], messages
    # Located on the line where the limit is reached, counted from the bytes that were read.
    limit_line = path.read_bytes()[:MAX_FILE_BYTES].count(b"\n") + 1
    assert messages[0].endswith(f"(line {limit_line})")


def test_a_file_just_within_the_limit_is_read(tmp_path: Path):
    path = tmp_path / "padded.yaml"
    lab = LAB_TOPOLOGY.read_text()
    padding = "#" * 99 + "\n"
    path.write_text(lab + padding * ((MAX_FILE_BYTES - len(lab.encode())) // len(padding)))
    assert path.stat().st_size <= MAX_FILE_BYTES
    assert load_topology(path).topology.name == "lab"


def test_too_many_values_are_refused_before_they_are_built(tmp_path: Path):
    path = tmp_path / "wide.yaml"
    path.write_text("name: lab\ncity:\n" + "- 0\n" * (MAX_VALUES + 1))
    start = time.perf_counter()
    messages = rejected(path)
    assert time.perf_counter() - start < 5
    # Located on the value that passes the limit: the document, its two keys, `lab` and the list come first.
    assert messages == [
        f"{path}:<document>: the file holds more than {MAX_VALUES:,} values, more than any topology "
        f"needs (line {MAX_VALUES + 1 - 5 + 2})"
    ]


def test_an_alias_bomb_is_refused_in_bounded_time(root: Path):
    start = time.perf_counter()
    rejected(root / "tests" / "topologies" / "invalid" / "51-alias-bomb.yaml")
    assert time.perf_counter() - start < 1


def test_utf16_file_is_located_not_a_crash(tmp_path: Path):
    path = tmp_path / "utf16.yaml"
    path.write_bytes(LAB_TOPOLOGY.read_text().encode("utf-16"))
    (message,) = rejected(path)
    assert "not UTF-8 text: byte 0xff cannot be decoded" in message and message.endswith("(line 1)")


@pytest.mark.parametrize("spelling", ["0x10", "0o17", "1_000", "1:30", "1e3", "+010", "1.0"])
def test_counts_must_be_plain_decimals(tmp_path: Path, spelling: str):
    path = tmp_path / "count.yaml"
    written = "{name: a-edge, roles: [gateway, app], arch: amd64, count: 1,"
    path.write_text(LAB_TOPOLOGY.read_text().replace(written, written.replace("count: 1", f"count: {spelling}")))
    assert any("pools[a-edge].count" in m for m in rejected(path))


def _in_subprocess(path: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\nfrom hivestack.topology import TopologyError, load_topology\n"
        "try:\n    load_topology(sys.argv[1])\nexcept TopologyError as e:\n    print(e)\n"
    )

    def limit_memory() -> None:  # a regression must fail this test, not take the machine's memory with it
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    return subprocess.run(
        [sys.executable, "-c", code, path], capture_output=True, text=True, timeout=30, preexec_fn=limit_memory
    )


def test_a_device_is_not_read(tmp_path: Path):
    result = _in_subprocess("/dev/zero")
    assert result.stdout.strip() == "/dev/zero:<document>: not a regular file", result.stderr


def test_a_fifo_is_not_opened(tmp_path: Path):
    fifo = tmp_path / "topology.yaml"
    os.mkfifo(fifo)
    result = _in_subprocess(str(fifo))  # opening a FIFO for reading would block until a writer came
    assert result.stdout.strip() == f"{fifo}:<document>: not a regular file", result.stderr


def test_anchors_aliases_and_merge_keys_within_limits_are_accepted(tmp_path: Path):
    text = LAB_TOPOLOGY.read_text()
    b_edge = next(line for line in text.splitlines() if "{name: b-edge," in line)
    # One edge server shape, written once: merged into b-edge, and a list of roles shared by alias.
    shaped = text.replace(
        "- {name: a-edge, roles: [gateway, app]", "- &edge {name: a-edge, roles: &edge-roles [gateway, app]"
    )
    shaped = shaped.replace(b_edge, b_edge.split("-")[0] + "- {<<: *edge, name: b-edge}")
    shaped = shaped.replace("{name: c-edge, roles: [gateway, app]", "{name: c-edge, roles: *edge-roles")
    path = tmp_path / "anchors.yaml"
    path.write_text(shaped)
    pools = {p.name: p for p in load_topology(path).topology.pools}
    assert pools["b-edge"] == pools["a-edge"].model_copy(update={"name": "b-edge"})
    assert pools["c-edge"].roles == pools["a-edge"].roles
