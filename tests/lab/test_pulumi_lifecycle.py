"""Pulumi's view of the lab follows reality: refresh notices a host stopped by hand; up brings it back."""

from __future__ import annotations

import json

import pytest

from hivestack.lab import hosts
from tests.lab.conftest import pulumi

pytestmark = [pytest.mark.lab, pytest.mark.full]  # make test-full


def host_resources(stack: str) -> dict[str, dict]:
    state = json.loads(pulumi("stack", "export", "--stack", stack).stdout)
    return {
        r["outputs"]["name"]: r
        for r in state["deployment"].get("resources", [])
        if r["type"] == "pulumi-python:dynamic:Resource" and "netns" in r.get("outputs", {})
    }


def test_refresh_notices_a_host_stopped_by_hand_and_up_restores_it(lab):
    host = "a-edge-1"
    assert host in host_resources(lab.stack)
    hosts.stop(lab.names, host)
    refresh = pulumi("refresh", "--yes", "--stack", lab.stack, "--non-interactive")
    assert refresh.returncode == 0, refresh.stdout + refresh.stderr
    assert host not in host_resources(lab.stack), "refresh kept a host that is not running"
    up = pulumi("up", "--yes", "--stack", lab.stack, "--non-interactive", "--policy-pack", "policies")
    assert up.returncode == 0, up.stdout + up.stderr
    assert host in host_resources(lab.stack) and hosts.is_running(lab.names, host)
    # And nothing else changes on a second run.
    again = pulumi("preview", "--expect-no-changes", "--stack", lab.stack, "--non-interactive")
    assert again.returncode == 0, again.stdout + again.stderr
