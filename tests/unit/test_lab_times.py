"""The times `hivestack lab` prints: `up`, each stage's time (a stage that ran in this `up` with its span, an older
run as not run); `fault`, how long after the command started the fault took effect."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from rich.console import Console

from hivestack.cli.lab_cmd import StageTime, _print_stages, stage_times

pytestmark = pytest.mark.unit

BEGAN = 1_000.0


def test_only_runs_that_ended_after_the_up_began_count_with_their_span_in_stage_order():
    exported = {  # as Pulumi returns it: sorted by name
        "common": {"seconds": 100.0, "finished_at": 1_150.0},
        "etcd": {"seconds": 20.0, "finished_at": 900.0},  # an earlier `up`'s run
        "gateway": {"seconds": 30.0, "finished_at": 1_190.0},
        "kubernetes": {"seconds": 90.0, "finished_at": 1_250.0},
    }
    assert stage_times(exported, BEGAN) == [
        StageTime("common", 100.0, 50.0),
        StageTime("etcd", 20.0, None),
        StageTime("kubernetes", 90.0, 160.0),
        StageTime("gateway", 30.0, 160.0),
    ]


def test_a_stage_never_run_is_not_run():
    assert stage_times({"ledger": {"seconds": None, "finished_at": None}}, BEGAN) == [StageTime("ledger", 0.0, None)]


def test_the_table_names_every_stage():
    console = Console(record=True, width=120)
    _print_stages([StageTime("common", 100.0, 50.0), StageTime("etcd", 20.0, None)], console)
    text = console.export_text()
    assert "common" in text and "100 s" in text and "50 - 150" in text
    assert "etcd" in text and "unchanged: not run" in text


def test_a_fault_is_timed_from_the_start_of_its_process():
    # A process that waits 0.3 s before it asks: its own clock says at least that, and at most what its parent saw.
    script = "import time; time.sleep(0.3); from hivestack.cli.lab_cmd import since_start; print(since_start())"
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    seen = time.monotonic() - start
    assert 0.3 <= float(proc.stdout) <= seen + 0.02, (proc.stdout, seen)  # + one kernel tick of rounding
