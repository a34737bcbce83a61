"""The drill playbooks follow the runbook (tags steady, inject, heal, verify; prepare only for failback) and the drill
role documents every entry point it has. One ansible-playbook run lists the tags of all of them: no host is touched."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.unit

DRILLS = ROOT / "playbooks" / "drills"
ROLE = ROOT / "playbooks" / "roles" / "drill"
BOOKS = sorted(DRILLS.glob("*.yml"))  # steps/ holds the shared plays, not drills
RUNBOOK = {"steady", "inject", "heal", "verify"}


@pytest.fixture(scope="module")
def tags_by_book() -> dict[str, set[str]]:
    ansible_playbook = Path(sys.executable).parent / "ansible-playbook"
    proc = subprocess.run(
        [str(ansible_playbook), "-i", "localhost,", "--list-tags", *(str(b.relative_to(ROOT)) for b in BOOKS)],
        cwd=ROOT,  # ansible.cfg: roles_path
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    found: dict[str, set[str]] = {}
    book = None
    for line in proc.stdout.splitlines():
        if m := re.match(r"playbook: (\S+)", line):
            book = Path(m.group(1)).stem
            found[book] = set()
        elif m := re.search(r"TASK TAGS: \[(.*)\]", line):
            assert book is not None
            found[book] |= {t.strip() for t in m.group(1).split(",") if t.strip()}
    return found


def test_every_drill_is_there():
    assert {b.stem for b in BOOKS} == {
        "dc-outage",
        "dc-partition",
        "gray-failure",
        "host-loss",
        "dc-evacuation",
        "failback",
    }


@pytest.mark.parametrize("book", [b.stem for b in BOOKS])
def test_runbook_tags(tags_by_book: dict[str, set[str]], book: str):
    tags = tags_by_book[book]
    assert tags >= RUNBOOK
    assert ("prepare" in tags) == (book == "failback")
    # The target check runs whatever the caller selects.
    assert "always" in tags


def test_argument_specs_cover_every_entry_point():
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    assert set(specs) == {p.stem for p in (ROLE / "tasks").glob("*.yml")}
    for name, spec in specs.items():
        assert spec.get("short_description"), name
        for option, detail in (spec.get("options") or {}).items():
            assert detail.get("description"), f"{name}.{option}"
