"""Shared fixtures and paths. Marker selection (unit / engine / lab / drill) is documented in README.md."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The policy pack is a directory Pulumi runs as a program; its rules module is imported directly by unit tests.
sys.path.insert(0, str(ROOT / "policies"))

LAB_TOPOLOGY = ROOT / "inventories" / "lab" / "topology.yaml"
SAMPLE_TOPOLOGY = ROOT / "inventories" / "sample-sz" / "topology.yaml"
INVALID_TOPOLOGIES = sorted((ROOT / "tests" / "topologies" / "invalid").glob("*.yaml"))


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
