"""Where a test run's time went, for the table `scripts/run-tests` prints and records under `.hivestack/test-runs/`.

A pytest run started by `scripts/run-tests` is given a file (`HIVESTACK_TEST_TIMINGS`); this module appends one JSON
line to it per measured part: the lab's bring-up, each of its playbook stages, the destroy, and every test module's
own time. The bring-up and the destroy happen inside the first and last lab test (the session fixture), so their
time is taken out of those modules' time: a module's figure is what its own tests cost. Without the variable
(pytest run by hand) nothing is written.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

_FILE = os.environ.get("HIVESTACK_TEST_TIMINGS")
_shared: list[tuple[float, float]] = []  # wall-clock intervals spent in the shared lab's bring-up and destroy
_modules: dict[str, float] = defaultdict(float)


def record(part: str, seconds: float) -> None:
    if _FILE:
        with open(_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps({"part": part, "seconds": round(seconds, 1)}) + "\n")


@contextmanager
def shared(part: str) -> Iterator[None]:
    """Time a part of the session fixture's work; it is recorded whether or not it succeeds."""
    start = time.time()
    try:
        yield
    finally:
        stop = time.time()
        _shared.append((start, stop))
        record(part, stop - start)


def add_test_phase(module: str, start: float, stop: float) -> None:
    """One phase (setup, call, teardown) of one test, less the shared work it contained."""
    overlap = sum(max(0.0, min(stop, b) - max(start, a)) for a, b in _shared)
    _modules[module] += max(0.0, stop - start - overlap)


def record_modules() -> None:
    for module, seconds in _modules.items():
        record(module, seconds)
