"""The `hivestack` command line: exit codes, JSON output, schema."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest
import yaml

from hivestack.cli.main import main
from tests.conftest import LAB_TOPOLOGY, SAMPLE_TOPOLOGY

pytestmark = pytest.mark.unit


def test_validate_ok_json(capsys):
    assert main(["topology", "validate", "--json", str(LAB_TOPOLOGY)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["valid"] is True and data["servers"] == 7 and data["cells"] == 3


def test_schema_accepts_both_examples(capsys):
    assert main(["topology", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    for path in (LAB_TOPOLOGY, SAMPLE_TOPOLOGY):
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)


def test_plan_json(capsys):
    assert main(["plan", "--json", str(SAMPLE_TOPOLOGY)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["servers"] == 1040 and data["reference"]["cost_per_account_year"] == 2.0


def _directory(path: Path) -> None:
    path.mkdir()


def _broken_link(path: Path) -> None:
    path.symlink_to(path.with_name("gone.yaml"))


@pytest.mark.parametrize("verb", [["plan"], ["topology", "validate"]], ids=["plan", "validate"])
@pytest.mark.parametrize(
    ("make", "what"),
    [
        (lambda path: None, "no such file"),
        (_directory, "a directory, not a regular file"),
        (os.mkfifo, "a FIFO (named pipe), not a regular file"),  # never opened: reading it would block
        (_broken_link, "a symbolic link to a missing file"),
    ],
    ids=["missing", "directory", "fifo", "broken-link"],
)
def test_a_path_that_is_not_a_regular_file_cannot_run(capsys, tmp_path: Path, verb, make, what):
    path = tmp_path / "topology.yaml"
    make(path)
    assert main([*verb, str(path)]) == 2
    assert capsys.readouterr().err == f"error: {path}: {what}\n"


def test_an_unexpected_error_is_one_escaped_line(capsys, monkeypatch):
    from hivestack.cli import plan_cmd

    # Text an exception may carry from outside: a screen clear, a forged line, a bidirectional override, and
    # enough of it that a wrapping console would break it over several lines.
    text = "boom\x1b[2J\nerror: forged line\r\u202e" + "x" * 300

    def broken(loaded):
        raise RuntimeError(text)

    monkeypatch.setattr(plan_cmd, "plan", broken)
    assert main(["plan", str(LAB_TOPOLOGY)]) == 2
    err = capsys.readouterr().err
    assert err.endswith("\n") and "\n" not in err[:-1] and err[:-1].isprintable(), err
    assert err.startswith("error: RuntimeError: boom\\x1b[2J\\nerror: forged line\\r\\u202exxx")
    assert err.endswith("x (run with --debug for the traceback)\n")


def test_an_unexpected_error_shows_its_traceback_with_debug(monkeypatch):
    from hivestack.cli import plan_cmd

    def broken(loaded):
        raise RuntimeError("boom")

    monkeypatch.setattr(plan_cmd, "plan", broken)
    with pytest.raises(RuntimeError, match="boom"):
        main(["--debug", "plan", str(LAB_TOPOLOGY)])


def test_usage_error_exits_2():
    with pytest.raises(SystemExit) as e:
        main(["topology", "validate", "--wrong-flag", str(LAB_TOPOLOGY)])
    assert e.value.code == 2


def test_lab_verbs_refuse_an_unknown_stack(capsys):
    assert main(["lab", "status", "--stack", "no-such-stack"]) == 2
    err = capsys.readouterr().err
    assert "no-such-stack" in err and "no such stack" in err and "known:" in err


def test_lab_fault_needs_a_running_lab(capsys):
    # The developer's stack name with a random suffix: never up on this machine.
    assert main(["lab", "fault", "cut", "dc-a", "--stack", "lab-never-up"]) == 2
    assert "is not up" in capsys.readouterr().err


# ---------------------------------------------------------------- drill


@pytest.fixture
def no_stack_outputs(monkeypatch, tmp_path) -> list[str]:
    """Records any read of a stack's outputs (a Pulumi call); an SSH control directory, were one made, goes to
    tmp_path."""
    import tempfile

    from hivestack.cli import project

    reads: list[str] = []
    monkeypatch.setattr(project, "stack_outputs", lambda stack: reads.append(stack) or {})
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return reads


def test_drill_list(capsys):
    from hivestack.drills.catalog import DRILLS

    assert main(["drill", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in DRILLS) and len(DRILLS) == 6
    assert "--host" in out and "planned" in out


def test_drill_run_unknown_drill(capsys, no_stack_outputs):
    assert main(["drill", "run", "nosuch", "--dc", "dc-a"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown drill 'nosuch' (valid: dc-outage, dc-partition, gray-failure, host-loss")
    assert no_stack_outputs == []


def test_drill_run_unknown_dc_before_reading_the_stack(capsys, no_stack_outputs):
    assert main(["drill", "run", "dc-outage", "--dc", "dc-z"]) == 2
    assert capsys.readouterr().err.strip() == "error: unknown data center 'dc-z' (valid: dc-a, dc-b, dc-c)"
    assert no_stack_outputs == []


def test_drill_run_host_loss_of_a_host_without_a_database(capsys, no_stack_outputs):
    assert main(["drill", "run", "host-loss", "--host", "a-edge-1"]) == 2
    err = capsys.readouterr().err
    assert "'a-edge-1' is not a database host" in err and "(valid: a-db-1, b-db-1, c-db-1)" in err
    assert no_stack_outputs == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["drill", "run", "host-loss", "--dc", "dc-a"], "host-loss takes away a host: give --host"),
        (["drill", "run", "dc-outage", "--host", "a-db-1"], "dc-outage takes away a dc: give --dc"),
    ],
)
def test_drill_run_scope_flag_must_match_the_drill(capsys, no_stack_outputs, argv, message):
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == f"error: {message}"
    assert no_stack_outputs == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["drill", "run", "gray-failure", "--dc", "dc-a", "--loss", "0"],
            "--hold must be > 0 (got 12) and --loss in 1..100 (got 0)",
        ),
        (
            ["drill", "run", "gray-failure", "--dc", "dc-a", "--loss", "101"],
            "--hold must be > 0 (got 12) and --loss in 1..100 (got 101)",
        ),
        (
            ["drill", "run", "dc-outage", "--dc", "dc-a", "--hold", "0"],
            "--hold must be > 0 (got 0) and --loss in 1..100 (got 20)",
        ),
    ],
)
def test_drill_run_bad_hold_or_loss_before_reading_the_stack(capsys, no_stack_outputs, argv, message):
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == f"error: {message}"
    assert no_stack_outputs == []


def test_drill_report_of_a_missing_directory(capsys):
    assert main(["drill", "report", "/nonexistent"]) == 2
    assert capsys.readouterr().err.strip() == "error: /nonexistent/report.md: no such report"


def test_drill_report_prints_the_summary(capsys, tmp_path):
    (tmp_path / "report.md").write_text("# Drill dc-outage on dc-a (stack lab)\n")
    assert main(["drill", "report", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "# Drill dc-outage on dc-a (stack lab)\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["drill", "run", "dc-outage"],
        ["drill", "run", "dc-outage", "--dc", "dc-a", "--host", "a-db-1"],
        ["drill", "run", "dc-outage", "--dc", "dc-a", "--injector", "chaos"],
        ["drill", "run", "gray-failure", "--dc", "dc-a", "--loss", "12.5"],  # a whole percent
        ["drill"],
    ],
)
def test_drill_usage_errors_exit_2(argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
