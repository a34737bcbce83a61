"""The Kubernetes layer's tools as setup leaves them: every command at its pinned version, the provider offline.

The commands are the multicall binary from tools/kubernetes (or binaries of the same versions found on PATH);
the provider plugin is the one built from tools/pulumi-kubernetes, which the engine must find beside itself
without trying to download anything.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.engine.test_pulumi_engine import Engine

pytestmark = pytest.mark.engine
BIN = ROOT / ".hivestack" / "bin"


def pinned(module: str, wrapper: str) -> str:
    go_mod = (ROOT / "tools" / wrapper / "go.mod").read_text()
    found = re.search(rf"^\s*(?:require\s+)?{re.escape(module)} (v\S+)(?:\s*//.*)?$", go_mod, re.MULTILINE)
    assert found, f"tools/{wrapper}/go.mod does not require {module}"
    return found.group(1)


KUBERNETES = pinned("k8s.io/kubernetes", "kubernetes")
ETCD = pinned("go.etcd.io/etcd/server/v3", "kubernetes").removeprefix("v")
KWOK = pinned("sigs.k8s.io/kwok", "kubernetes").removeprefix("v")
PROVIDER = pinned("github.com/pulumi/pulumi-kubernetes/sdk/v4", "pulumi-kubernetes").removeprefix("v")


@pytest.mark.parametrize(
    ("command", "args", "expected"),
    [
        ("kube-apiserver", ["--version"], f"Kubernetes {KUBERNETES}"),
        ("kube-controller-manager", ["--version"], f"Kubernetes {KUBERNETES}"),
        ("kube-scheduler", ["--version"], f"Kubernetes {KUBERNETES}"),
        ("kubectl", ["version", "--client"], f"Client Version: {KUBERNETES}"),
        ("etcd", ["--version"], f"etcd Version: {ETCD}"),
        ("etcdctl", ["version"], f"etcdctl version: {ETCD}"),
        ("kwok", ["--version"], KWOK),
    ],
)
def test_command_reports_its_pinned_version(command: str, args: list[str], expected: str):
    proc = subprocess.run([str(BIN / command), *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert expected in proc.stdout, proc.stdout


def test_python_package_names_the_plugin_that_was_built():
    """A newer PyPI package would ask the engine for a plugin version that was not built (and cannot be fetched)."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"pulumi-kubernetes=={PROVIDER}" in dependencies
    proc = subprocess.run(
        [sys.executable, "-c", "import pulumi_kubernetes._utilities as u; print(u.get_version())"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert proc.stdout.strip() == PROVIDER


PROGRAM = """\
import pulumi
import pulumi_kubernetes as k8s

# A cluster that does not exist (yet): the provider must still plan, as on a stack's first preview.
KUBECONFIG = '''
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
'''
provider = k8s.Provider("cluster", kubeconfig=KUBECONFIG)
k8s.core.v1.Namespace("cell-a", metadata={"name": "cell-a"}, opts=pulumi.ResourceOptions(provider=provider))
"""


def test_engine_plans_kubernetes_resources_offline_before_the_cluster_exists(tmp_path: Path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text("name: k8s-offline\nruntime: python\n")
    (project / "__main__.py").write_text(PROGRAM)
    engine = Engine(tmp_path / "state")
    engine.run("stack", "select", "--create", "--secrets-provider", "passphrase", "--cwd", str(project), "offline")
    proc = engine.run("preview", "--cwd", str(project), "--stack", "offline")
    # The stack, the provider and the namespace: planned by the plugin found beside the engine (Engine.run fails
    # on any attempt to download one).
    assert re.search(r"\+ 3 to create", proc.stdout), proc.stdout[-3000:]
