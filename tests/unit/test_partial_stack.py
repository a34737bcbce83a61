"""After a failed or interrupted `up`: the lab verbs say what is missing, and the next `up` is not locked out."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hivestack.cli import project
from hivestack.cli.main import main
from hivestack.lab import network

pytestmark = pytest.mark.unit


@pytest.fixture
def half_made_lab(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Stack `lab` with its core namespace but only dc-a's router, and no host ever created (state in tmp_path)."""
    monkeypatch.setattr(network, "network_exists", lambda names: True)
    monkeypatch.setattr(network, "router_indexes", lambda names: [0])
    real_root = project.root()
    (tmp_path / "stacks").symlink_to(real_root / "stacks")
    (tmp_path / "inventories").symlink_to(real_root / "inventories")
    (tmp_path / "Pulumi.yaml").symlink_to(real_root / "Pulumi.yaml")
    monkeypatch.setattr(project, "root", lambda: tmp_path)
    return tmp_path


def test_a_dc_fault_names_the_missing_router(half_made_lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "fault", "cut", "dc-b", "--stack", "lab"]) == 2
    err = capsys.readouterr().err
    assert "partly made" in err and "dc-b's router" in err and "hivestack lab up --stack lab" in err


def test_a_host_fault_names_the_host_never_created(half_made_lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "fault", "start", "c-worker-1", "--stack", "lab"]) == 2
    err = capsys.readouterr().err
    assert "partly made" in err and "'c-worker-1' was never created" in err
    assert "Traceback" not in err and "KeyError" not in err


def test_a_host_fault_on_an_unknown_host_lists_the_valid_ones(
    half_made_lab: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lab", "fault", "kill", "z-db-9", "--stack", "lab"]) == 2
    assert "no host 'z-db-9'" in capsys.readouterr().err


def test_status_reports_what_is_missing(half_made_lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["lab", "status", "--json", "--stack", "lab"])
    state = json.loads(capsys.readouterr().out)
    assert code == 1
    assert state["routers_missing"] == ["dc-b", "dc-c"]
    assert set(state["hosts"].values()) == {"never created"}


def _lock(backend: Path, stack: str, name: str, pid: int, hostname: str) -> Path:
    path = backend / ".pulumi" / "locks" / "organization" / "hivestack" / stack / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, "hostname": hostname, "timestamp": "2026-12-02T04:00:00Z"}))
    return path


def test_only_locks_of_gone_local_processes_are_cleared(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HIVESTACK_BACKEND_DIR", str(tmp_path))
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, timeout=300
    )
    dead_pid = int(gone.stdout)
    here = socket.gethostname()
    stale = _lock(tmp_path, "lab", "a", dead_pid, here)
    live = _lock(tmp_path, "lab", "b", os.getpid(), here)
    remote = _lock(tmp_path, "lab", "c", dead_pid, "another-machine")
    other_stack = _lock(tmp_path, "labtest", "d", dead_pid, here)
    removed = project.clear_stale_locks("lab")
    assert [lock.path for lock in removed] == [stale]
    assert removed[0].pid == dead_pid
    assert not stale.exists() and live.exists() and remote.exists() and other_stack.exists()
