"""The test suite's own lab stack (`labtest`), brought up once per session and destroyed at the end.

If the lab cannot come up, every lab test fails with the reason: nothing is skipped. After the destroy, the
session checks that no namespace, mount or host process of the stack is left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hivestack.lab import hosts, network
from hivestack.lab.names import LabNames
from hivestack.topology import LoadedTopology, load_topology
from tests import timing
from tests.conftest import LAB_TOPOLOGY, ROOT

# HIVESTACK_TEST_STACK points the lab tests at another stack (it is brought up, then destroyed).
STACK = os.environ.get("HIVESTACK_TEST_STACK", "labtest")
# Deadlines of the commands the fixtures run (a hang fails naming the command, not at CI's limit).
BRING_UP_S = 2100  # a cold bring-up: root filesystems, hosts and every stage
DESTROY_S = 600
PULUMI_S = 1800  # the longest `pulumi` a test runs: every stage again
HIVESTACK = ROOT / ".venv" / "bin" / "hivestack"
# etcdctl on an etcd host, a client of the platform CA. With `--user NAME` and no password it reads the password as a
# line of stdin (after the new password that `user add` and `user passwd` read first): never on a command line.
# etcdctl on an etcd host, as its administrator: the member's own client URL (etcd listens on the host's address
# only) and the admin's client identity from the etcd-client trust domain.
ETCD_ADMIN_TLS = "/etc/hivestack/tls/etcd-client/admin"
ETCDCTL = (
    "ETCDCTL_API=3 ETCDCTL_ENDPOINTS=$(. /etc/default/etcd && echo $ETCD_ADVERTISE_CLIENT_URLS) "
    f"ETCDCTL_CACERT={ETCD_ADMIN_TLS}/ca.pem ETCDCTL_CERT={ETCD_ADMIN_TLS}/host.pem "
    f"ETCDCTL_KEY={ETCD_ADMIN_TLS}/host-key.pem etcdctl"
)


@dataclass
class Lab:
    stack: str
    names: LabNames
    topology: LoadedTopology
    outputs: dict[str, Any]
    ssh_config: Path
    hivestack_root: Path = ROOT

    def mgmt(self) -> list[str]:
        return network.mgmt_command(self.names)

    def host_ns(self, host: str) -> str:
        return self.names.host_ns(host)

    def address(self, host: str) -> str:
        return self.outputs["inventory"][host]["address"]

    def hivestack(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = bounded([str(HIVESTACK), *args, "--stack", self.stack], PULUMI_S)
        if check and proc.returncode != 0:
            pytest.fail(f"hivestack {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr}")
        return proc

    def pulumi(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = pulumi(*args, "--stack", self.stack)
        if proc.returncode != 0:
            pytest.fail(f"pulumi {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr}")
        return proc

    def generated_secrets(self) -> dict[str, str]:
        """The stack's generated passwords by purpose ("etcd root user", "cell-a database admin", ...)."""
        state = json.loads(self.pulumi("stack", "export", "--show-secrets").stdout)
        # An exported secret is an envelope whose `plaintext` is the value as JSON.
        return {
            r["outputs"]["purpose"]: json.loads(r["outputs"]["secret"]["plaintext"])
            for r in state["deployment"]["resources"]
            if "purpose" in r.get("outputs", {})
        }

    def rerun_stages(self, *stages: str) -> dict[str, int]:
        """Run these playbook stages again (`up --replace` of their PlaybookRuns); the tasks each one changed."""
        runs = stage_runs(self.stack)
        urns = [runs[s]["urn"] for s in stages if s in runs]
        assert len(urns) == len(stages), f"stages {stages}: found {sorted(runs)}"
        self.pulumi("up", "--yes", "--non-interactive", *[arg for u in urns for arg in ("--replace", u)])
        configured = json.loads(self.pulumi("stack", "output", "configured", "--json").stdout)
        return {s: configured[s] for s in stages}

    def in_core(self, script: str, *args: str) -> Any:
        """Run a Python snippet inside the stack's core namespace (where the DCs are reachable); it prints JSON."""
        proc = subprocess.run(
            ["ip", "netns", "exec", self.outputs["lab"]["core_ns"], sys.executable, "-c", script, *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout)

    def ssh(self, host: str, command: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """`command` on `host`, with `stdin` as its input: a secret goes there, never into `command` (which `ps`
        shows on both ends)."""
        argv = ["ssh", "-F", str(self.ssh_config), f"root@{self.address(host)}", command]
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120)


def leftovers(names: LabNames) -> dict[str, list[str]]:
    """What of this stack exists on the machine: namespaces, mounts, host processes."""
    lab_dir = str(ROOT / ".hivestack" / "lab" / names.stack)
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    return {
        "namespaces": [ns for ns in network.list_lab_namespaces() if ns.startswith(names.tag)],
        "mounts": [m for m in mounts if m.startswith(lab_dir)],
        "host processes": hosts.stack_pids(names),
    }


def bounded(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a command that may start others (hivestack starts Pulumi, Pulumi its plugins and Ansible) with a deadline
    that stops all of them. At the deadline, or when the test is interrupted (Ctrl-C, pytest-timeout), the command's
    process group is interrupted as by Ctrl-C, so Pulumi cancels its update and releases the stack's lock, and is
    killed a minute later if it is still there. A plain `subprocess.run` timeout kills only the direct child: the
    `pulumi up` under `hivestack lab up` would go on making hosts."""
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except BaseException:
            _stop_group(proc)
            raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _stop_group(proc: subprocess.Popen[str]) -> None:
    for sig, grace in ((signal.SIGINT, 60.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.communicate(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def pulumi(*args: str, timeout: float = PULUMI_S) -> subprocess.CompletedProcess[str]:
    return bounded([str(ROOT / "scripts" / "pulumi"), *args], timeout)


def stage_runs(stack: str) -> dict[str, dict[str, Any]]:
    """The stack's PlaybookRun resources from its state, by stage name (resource `configure-<stage>`)."""
    proc = pulumi("stack", "export", "--stack", stack)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {
        r["urn"].rsplit("::configure-", 1)[-1]: r
        for r in json.loads(proc.stdout)["deployment"]["resources"]
        if r["urn"].rsplit("::", 1)[-1].startswith("configure-")
    }


def stage_durations(stack: str) -> dict[str, float]:
    """How long each playbook stage of the stack's last `up` took (the PlaybookRun outputs), in stage order."""
    runs = {stage: r.get("outputs", {}).get("duration_s") for stage, r in stage_runs(stack).items()}
    return {stage: float(seconds) for stage, seconds in runs.items() if seconds is not None}


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    names = LabNames(STACK)
    up_argv, down_argv = (
        [str(HIVESTACK), "lab", "up", "--stack", STACK],
        [str(HIVESTACK), "lab", "down", "--stack", STACK],
    )
    try:
        with timing.shared("lab bring-up"):
            up = bounded(up_argv, BRING_UP_S)
        if up.returncode != 0:
            # What a failed bring-up made is removed before the suite fails: no host is left running.
            down = bounded(down_argv, DESTROY_S)
            left = leftovers(names)
            removed = "removed" if down.returncode == 0 and not any(left.values()) else f"NOT removed: {left}"
            pytest.fail(
                f"the lab could not come up (hivestack lab up --stack {STACK}); what it made was {removed}:\n"
                f"{up.stdout[-6000:]}\n{up.stderr}"
            )
        outputs = json.loads(pulumi("stack", "output", "--json", "--show-secrets", "--stack", STACK).stdout)
        for stage, seconds in stage_durations(STACK).items():
            timing.record(f"  stage {stage}", seconds)
    except pytest.fail.Exception:
        raise
    except BaseException:
        # Interrupted while coming up (Ctrl-C, a CI timeout) or unreadable once up: what was made goes before the
        # suite stops.
        bounded(down_argv, DESTROY_S)
        raise
    ssh_config = tmp_path_factory.mktemp("ssh") / "config"
    ssh_config.write_text(
        "Host *\n"
        "  User root\n"
        f"  IdentityFile {outputs['lab']['ssh_key_file']}\n"
        f"  ProxyCommand ip netns exec {outputs['lab']['core_ns']} nc %h %p\n"
        f"  StrictHostKeyChecking yes\n  UserKnownHostsFile {outputs['lab']['known_hosts_file']}\n  LogLevel ERROR\n"
    )
    yield Lab(STACK, names, load_topology(LAB_TOPOLOGY), outputs, ssh_config)

    with timing.shared("lab destroy"):
        down = bounded(down_argv, DESTROY_S)
    assert down.returncode == 0, f"lab down failed:\n{down.stdout[-4000:]}\n{down.stderr}"
    # Compared with nothing, not with `before`: HIVESTACK_TEST_STACK may name a stack that was already up.
    assert not any(leftovers(names).values()), f"the destroy left things behind: {leftovers(names)}"
    assert not os.path.exists(outputs["lab"]["ssh_key_file"])
    # Each host's disk (its overlay) holds every file the layers wrote on it, the control plane's certificates and
    # etcd data included: none is left.
    disks = hosts.state_dir(ROOT, STACK, "-").parent
    left = sorted(p.name for p in disks.iterdir()) if disks.is_dir() else []
    assert left == [], f"the destroy left host disks behind in {disks}: {left}"
