"""Shared fixtures and paths. Marker selection (unit / engine / lab / drill) is documented in README.md."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests import timing

ROOT = Path(__file__).resolve().parent.parent
# The policy pack is a directory Pulumi runs as a program; its rules module is imported directly by unit tests.
sys.path.insert(0, str(ROOT / "policies"))

LAB_TOPOLOGY = ROOT / "inventories" / "lab" / "topology.yaml"
SAMPLE_TOPOLOGY = ROOT / "inventories" / "sample-sz" / "topology.yaml"
INVALID_TOPOLOGIES = sorted((ROOT / "tests" / "topologies" / "invalid").glob("*.yaml"))


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


# The lab tests share one stack: the ones that only read it run first, then the second run of every stage (which
# must find nothing to change), then the tests that break something and heal it. A module not listed runs last;
# `make test-full`'s own tests run after all of `make test`'s.
LAB_ORDER = (
    "test_hosts",
    "test_cells",
    "test_kubernetes",
    "test_network_faults",
    "test_no_secrets_in_argv",
    "test_drills",
    "test_drift",
    "test_pulumi_lifecycle",
    "test_side_by_side",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def position(item: pytest.Item) -> tuple[bool, int]:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        return item.get_closest_marker("full") is not None, (
            LAB_ORDER.index(module) if module in LAB_ORDER else len(LAB_ORDER)
        )

    items.sort(key=position)  # stable: within a module, the order the file gives


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    timing.add_test_phase(report.nodeid.split("::", 1)[0], report.start, report.stop)


def pytest_sessionfinish() -> None:
    timing.record_modules()


def pytest_report_header() -> str | None:
    stack = os.environ.get("HIVESTACK_TEST_STACK", "labtest")
    if stack == "labtest":
        return None
    return (
        f"WARNING: HIVESTACK_TEST_STACK={stack}: the lab tests bring up stack {stack!r}, change it, and DESTROY it at "
        "the end, whatever it held"
    )
