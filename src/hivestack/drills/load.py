"""The drill's load: one ledger load client per cell, through every gateway it is told to use, every request in
an ack log (`acks-<cell>.jsonl`). Sized for the lab's 2 cores; the client is `python -m hivestack.ledger.load`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WORKERS = 3  # per gateway per cell
RATE = 12.0  # requests per second per gateway per cell
CUSTOMERS = 8  # per cell, from the start of its range
MAX_DURATION_S = 3600  # the load runs until stopped
START_TIMEOUT_S = 60


class LoadError(RuntimeError):
    pass


@dataclass
class CellLoad:
    cell: str
    ack_log: Path
    process: subprocess.Popen[str]


class BackgroundLoad:
    def __init__(
        self, cells: list[dict[str, Any]], gateways: dict[str, str], gateway_ca: str, out_dir: Path, netns: str | None
    ) -> None:
        self.cells, self.gateways, self.gateway_ca, self.out_dir = cells, gateways, gateway_ca, out_dir
        self.prefix = ["ip", "netns", "exec", netns] if netns else []
        self.loads: list[CellLoad] = []
        self.summaries: dict[str, Any] = {}

    def ack_log(self, cell: str) -> Path:
        return self.out_dir / f"acks-{cell}.jsonl"

    def start(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        ca_file = self.out_dir / "gateway-ca.pem"  # the gateways' HTTPS is verified, names included
        ca_file.write_text(self.gateway_ca)
        run = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        for cell in self.cells:
            first = cell["range_start"]
            argv = [*self.prefix, sys.executable, "-m", "hivestack.ledger.load"]
            argv += [arg for dc, url in sorted(self.gateways.items()) for arg in ("--target", f"{dc}={url}")]
            argv += ["--ca-file", str(ca_file), "--customers", f"{first}-{first + CUSTOMERS - 1}", "--setup-accounts"]
            argv += ["--workers", str(WORKERS), "--rate", str(RATE), "--duration", str(MAX_DURATION_S)]
            argv += ["--ack-log", str(self.ack_log(cell["name"])), "--run-id", f"drill-{run}-{cell['name']}"]
            log = self.ack_log(cell["name"])
            log.unlink(missing_ok=True)
            process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.loads.append(CellLoad(cell["name"], log, process))

    def wait_flowing(self, timeout: float = START_TIMEOUT_S) -> None:
        """Until every cell has an acknowledged write through every gateway (accounts are opened first)."""
        deadline = time.monotonic() + timeout
        pending = {(load.cell, dc) for load in self.loads for dc in self.gateways}
        while pending:
            for load in self.loads:
                if load.process.poll() is not None:
                    stderr = load.process.stderr.read() if load.process.stderr else ""
                    raise LoadError(f"the load of {load.cell} exited {load.process.returncode}: {stderr[-500:]}")
                for ack in read_acks(load.ack_log):
                    if ack.get("status") and 200 <= ack["status"] < 300:
                        pending.discard((load.cell, ack["target"]))
            if pending and time.monotonic() > deadline:
                raise LoadError(f"no acknowledged write within {timeout:.0f} s for {sorted(pending)}")
            time.sleep(0.5)

    def stop(self) -> None:
        for load in self.loads:
            if load.process.poll() is None:
                load.process.send_signal(signal.SIGTERM)
        for load in self.loads:
            try:
                out, _ = load.process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                load.process.kill()
                out, _ = load.process.communicate()
            try:
                self.summaries[load.cell] = json.loads(out)
            except json.JSONDecodeError:
                self.summaries[load.cell] = {"error": f"exit {load.process.returncode}, no summary"}


def read_acks(path: Path) -> list[dict[str, Any]]:
    """The ack log's complete lines (the last one may be half-written while the load runs)."""
    if not path.exists():
        return []
    acks = []
    for line in path.read_text().splitlines():
        try:
            acks.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return acks


class AckTail:
    """New complete lines of the ack logs since the last call (for progress while the load runs)."""

    def __init__(self, paths: list[Path]) -> None:
        self._offsets = dict.fromkeys(paths, 0)

    def new(self) -> list[dict[str, Any]]:
        out = []
        for path, offset in self._offsets.items():
            if not path.exists():
                continue
            with path.open("rb") as f:
                f.seek(offset)
                data = f.read()
            complete = data[: data.rfind(b"\n") + 1]
            self._offsets[path] = offset + len(complete)
            out += [json.loads(line) for line in complete.splitlines() if line]
        return out
