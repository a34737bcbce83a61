"""The real Pulumi engine, offline: the pinned CLI, our language host, the policy pack, dynamic providers.

Every test runs against a state directory of its own (HIVESTACK_BACKEND_DIR), never the developer's.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import INVALID_TOPOLOGIES, LAB_TOPOLOGY, ROOT

pytestmark = pytest.mark.engine
PULUMI = ROOT / "scripts" / "pulumi"


class Engine:
    def __init__(self, backend: Path) -> None:
        self.backend = backend

    def run(self, *args: str, ok: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HIVESTACK_BACKEND_DIR": str(self.backend), "NO_COLOR": "1"}
        proc = subprocess.run(
            [str(PULUMI), *args, "--non-interactive"], env=env, capture_output=True, text=True, timeout=timeout
        )
        output = proc.stdout + proc.stderr
        if ok and proc.returncode != 0:
            pytest.fail(f"pulumi {' '.join(args)} exited {proc.returncode}:\n{output[-6000:]}")
        # Offline by construction: no plugin download and no update check may even be attempted.
        assert not re.search(r"(?i)downloading plugin|new version of pulumi is available", output), output
        return proc

    def stack(self, name: str) -> None:
        self.run("stack", "select", "--create", "--secrets-provider", "passphrase", name)


@pytest.fixture()
def engine(tmp_path: Path) -> Engine:
    return Engine(tmp_path / "state")


def pinned_version() -> str:
    go_mod = (ROOT / "tools" / "pulumi" / "go.mod").read_text()
    return re.search(r"github.com/pulumi/pulumi/pkg/v3 (v\S+)", go_mod).group(1)


def test_cli_is_the_pinned_version(engine: Engine):
    assert engine.run("version").stdout.strip() == pinned_version()


def test_sample_preview_with_policy_pack_passes(engine: Engine):
    engine.stack("sample-sz")
    proc = engine.run("preview", "--stack", "sample-sz", "--policy-pack", "policies")
    out = proc.stdout
    assert "hivestack" in out and "Policies:" in out, out[-3000:]
    creates = re.search(r"\+ ([\d,]+) to create", out)
    assert creates and int(creates.group(1).replace(",", "")) > 1000, out[-2000:]


@contextlib.contextmanager
def temporary_stack(engine: Engine, topology: Path) -> Iterator[str]:
    """A stack of the test's own on the baremetal backend (declarations only, nothing made on this machine).

    Pulumi keeps a stack's settings (and its passphrase salt) in stacks/; the test's own file goes away after.
    """
    stack = f"test-engine-{os.getpid()}"
    config = ROOT / "stacks" / f"Pulumi.{stack}.yaml"
    config.write_text(f"config:\n  hivestack:topology: {topology}\n  hivestack:hostBackend: baremetal\n")
    try:
        engine.stack(stack)
        yield stack
    finally:
        config.unlink()


@pytest.mark.parametrize(
    ("case", "policy"),
    [("23-etcd-majority-in-one-dc", "quorum-no-dc-majority"), ("22-too-few-dcs-for-cell", "cell-spans-three-dcs")],
)
def test_unsurvivable_preview_fails_and_names_the_policy(engine: Engine, case: str, policy: str):
    topology = next(p for p in INVALID_TOPOLOGIES if p.stem == case)
    with temporary_stack(engine, topology) as stack:
        proc = engine.run("preview", "--stack", stack, "--policy-pack", "policies", ok=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert policy in output and "mandatory" in output, output[-4000:]


def test_up_secrets_idempotence_and_destroy(engine: Engine):
    with temporary_stack(engine, LAB_TOPOLOGY) as stack:
        engine.run("up", "--yes", "--stack", stack, "--policy-pack", "policies")
        # A second run with no change changes nothing.
        engine.run("preview", "--stack", stack, "--expect-no-changes", "--policy-pack", "policies")

        state = json.loads(engine.run("stack", "export", "--stack", stack).stdout)
        resources = state["deployment"]["resources"]
        secrets = [r for r in resources if "purpose" in r.get("outputs", {})]
        # etcd root, GNS agent, the Kubernetes service-account and encryption keys, three per cell.
        assert len(secrets) == 2 + 2 + 3 * 3
        for r in secrets:
            # Stored encrypted: the secret signature with ciphertext, never the plaintext value.
            assert set(r["outputs"]["secret"]) == {"4dabf18193072939515e22adb298388d", "ciphertext"}, r["outputs"]
        outputs = json.loads(engine.run("stack", "output", "--stack", stack, "--json").stdout)
        assert sorted(outputs["inventory"]) == [
            "a-db-1",
            "a-edge-1",
            "b-db-1",
            "b-edge-1",
            "c-db-1",
            "c-edge-1",
            "c-worker-1",
        ]

        engine.run("destroy", "--yes", "--stack", stack)
        state = json.loads(engine.run("stack", "export", "--stack", stack).stdout)
        assert not state["deployment"].get("resources")
