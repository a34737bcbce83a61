"""`hivestack` imports only the chosen noun's module and what it needs: a verb does not pay for another's libraries
(the times themselves are benchmarks/cli_startup.py's)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

PROBE = """
import sys
from hivestack.cli.main import parser
parser({argv!r}).parse_args({argv!r})
print(" ".join(sys.modules))
"""


def imported(*argv: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=list(argv))], capture_output=True, text=True, check=True, timeout=60
    )
    return set(proc.stdout.split())


@pytest.mark.parametrize(
    ("argv", "not_loaded"),
    [
        (["topology", "validate", "f.yaml"], {"pulumi", "ansible_runner", "matplotlib", "hivestack.cli.drill_cmd"}),
        (["lab", "fault", "cut", "dc-a"], {"pulumi", "matplotlib", "hivestack.drills.runbook", "hivestack.drift"}),
        (["drill", "list"], {"pulumi", "matplotlib", "hivestack.drills.runbook", "hivestack.lab.hosts"}),
        (["drift", "--stack", "s"], {"pulumi", "matplotlib", "hivestack.cli.lab_cmd"}),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_a_verb_imports_only_its_own_noun(argv, not_loaded):
    loaded = imported(*argv)
    assert f"hivestack.cli.{argv[0]}_cmd" in loaded
    assert not loaded & not_loaded, sorted(loaded & not_loaded)


def test_the_top_level_help_lists_every_noun_and_imports_none():
    proc = subprocess.run(
        [sys.executable, "-m", "hivestack.cli.main", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    assert all(noun in proc.stdout for noun in ("topology", "plan", "lab", "drift", "drill", "kubeconfig"))
    probe = "import sys\nfrom hivestack.cli.main import parser\nparser(['--help'])\nprint(' '.join(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert not {m for m in loaded.stdout.split() if m.endswith("_cmd")}, loaded.stdout
