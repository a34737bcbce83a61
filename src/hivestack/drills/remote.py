"""Commands on the platform's hosts over SSH, reached the way Ansible reaches them (the inventory's hostvars)."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Mapping
from typing import Any

SSH_TIMEOUT_S = 30


class RemoteError(RuntimeError):
    pass


class SshShell:
    """A RemoteShell (hivestack.engines) over one multiplexed SSH connection per host."""

    def __init__(self, hostvars: Mapping[str, Mapping[str, Any]], control_dir: str) -> None:
        self._hostvars = hostvars
        self._control_dir = control_dir

    def argv(self, host: str, command: str) -> list[str]:
        hv = self._hostvars[host]
        argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]
        argv += ["-o", "ControlMaster=auto", "-o", f"ControlPath={self._control_dir}/%C", "-o", "ControlPersist=60"]
        if key := hv.get("ansible_ssh_private_key_file"):
            argv += ["-i", key]
        argv += shlex.split(hv.get("ansible_ssh_common_args", ""))
        return [*argv, f"{hv.get('ansible_user', 'root')}@{hv['ansible_host']}", command]

    def __call__(self, host: str, command: str) -> str:
        try:
            proc = subprocess.run(self.argv(host, command), capture_output=True, text=True, timeout=SSH_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise RemoteError(f"{host}: no answer within {SSH_TIMEOUT_S} s") from None
        if proc.returncode != 0:
            raise RemoteError(f"{host}: exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
        return proc.stdout
