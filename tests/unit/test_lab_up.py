"""`hivestack lab up`: a stack already up whose preview plans nothing is left alone (a no-op `up` is one preview);
a new stack, a planned change or a failed preview goes through `pulumi up`."""

from __future__ import annotations

import subprocess

import pytest

from hivestack.cli import project
from hivestack.cli.errors import CannotRun
from hivestack.cli.main import main

pytestmark = pytest.mark.unit


@pytest.fixture
def pulumi(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Pulumi replaced: records each command; `state` says whether the stack is up and what the preview answers."""
    state: dict = {"up": True, "preview_rc": 0, "calls": []}

    def run(*args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
        state["calls"].append(args[0])
        rc = state["preview_rc"] if args[0] == "preview" else 0
        return subprocess.CompletedProcess(args, rc, "", "")

    def outputs(stack: str) -> dict:
        if not state["up"] and "up" not in state["calls"]:
            raise CannotRun("no outputs")
        return {"inventory": {}}

    monkeypatch.setattr(project, "pulumi", run)
    monkeypatch.setattr(project, "select_stack", lambda stack: None)
    monkeypatch.setattr(project, "clear_stale_locks", lambda stack: [])
    monkeypatch.setattr(project, "stack_outputs", outputs)
    return state


def test_a_stack_with_nothing_to_change_is_only_previewed(pulumi, capsys):
    assert main(["lab", "up", "--stack", "lab"]) == 0
    assert pulumi["calls"] == ["preview"]
    assert "nothing to change" in capsys.readouterr().out


@pytest.mark.parametrize(("up", "preview_rc", "calls"), [(True, 1, ["preview", "up"]), (False, 0, ["up"])])
def test_a_change_a_failed_preview_or_a_new_stack_goes_through_up(pulumi, up, preview_rc, calls, capsys):
    pulumi.update(up=up, preview_rc=preview_rc)
    assert main(["lab", "up", "--stack", "lab"]) == 0
    assert pulumi["calls"] == calls
    assert "nothing to change" not in capsys.readouterr().out
