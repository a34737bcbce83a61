"""The `hivestack` command line: exit codes, JSON output, schema."""

from __future__ import annotations

import json

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


def test_missing_file_cannot_run(capsys, tmp_path):
    assert main(["plan", str(tmp_path / "nope.yaml")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


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
