"""Fixtures shared by the unit tests of dynamic resources registered under Pulumi's mocks."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.inputs: dict[str, dict[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.inputs[args.name] = dict(args.inputs)
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


@pytest.fixture
def secret_outputs(monkeypatch) -> dict[str, list[str]]:
    """additionalSecretOutputs of each registration, as the engine (and the policy pack) receives them."""
    from pulumi.runtime.mocks import MockMonitor

    seen: dict[str, list[str]] = {}
    register = MockMonitor.RegisterResource

    def recording(self: MockMonitor, request: Any) -> Any:
        seen[request.name] = list(request.additionalSecretOutputs)
        return register(self, request)

    monkeypatch.setattr(MockMonitor, "RegisterResource", recording)
    return seen
