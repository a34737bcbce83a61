"""Same-city latency between a lab stack's data centers, without `tc netem` (absent from this kernel).

Runs inside the stack's core namespace. iptables there queues packets forwarded between two DC uplinks to an
NFQUEUE with `--queue-bypass` (traffic still flows if this process dies); this process accepts each packet once it
has been held for the one-way latency of its source DC plus that of its destination DC. Packets between the same
two DCs share one delay, so their order is kept.

    python -m hivestack.lab.delayer --config FILE   # {"queue": 0, "latency_ms": {"dc0": 0.5, ...}}
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import os
import select
import signal
import socket
import time
from pathlib import Path

from netfilterqueue import COPY_META, NetfilterQueue, Packet

# Packets waiting for a verdict; at ~100 MB/s and a few ms that is a few hundred, and the kernel drops beyond it.
_QUEUE_MAX_LEN = 16384


class Delayer:
    def __init__(self, latency_ms_by_interface: dict[str, float]) -> None:
        self._by_name = {dev: ms / 1000 for dev, ms in latency_ms_by_interface.items()}
        # Looked up on first sight: a DC's uplink gets a new ifindex when create_network repairs it.
        self._by_index: dict[int, float] = {}
        self._held: list[tuple[float, int, Packet]] = []
        self._order = itertools.count()  # ties in due time release in arrival order

    def _delay_s(self, ifindex: int) -> float:
        if ifindex not in self._by_index:
            try:
                self._by_index[ifindex] = self._by_name.get(socket.if_indextoname(ifindex), 0.0)
            except OSError:  # gone since the packet was queued
                return 0.0
        return self._by_index[ifindex]

    def hold(self, packet: Packet) -> None:
        delay = self._delay_s(packet.indev) + self._delay_s(packet.outdev)
        if delay <= 0:
            packet.accept()
        else:
            heapq.heappush(self._held, (time.monotonic() + delay, next(self._order), packet))

    def release_due(self) -> float | None:
        """Accept every packet whose time has come; seconds until the next one is due (None: nothing held)."""
        now = time.monotonic()
        while self._held and self._held[0][0] <= now:
            heapq.heappop(self._held)[2].accept()
        return self._held[0][0] - now if self._held else None

    def release_all(self) -> None:
        while self._held:
            heapq.heappop(self._held)[2].accept()


def run(queue: int, latency_ms_by_interface: dict[str, float]) -> None:
    delayer = Delayer(latency_ms_by_interface)
    nfq = NetfilterQueue()
    # Only the verdict is needed, not the payload: metadata-only copies keep the per-packet cost low.
    nfq.bind(queue, delayer.hold, max_len=_QUEUE_MAX_LEN, mode=COPY_META)
    # Signals wake the select through a pipe, so a stop never lands in the middle of a verdict.
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    print(f"delayer: queue {queue}, one-way latency ms {latency_ms_by_interface}", flush=True)
    queue_fd = nfq.get_fd()
    try:
        while True:
            readable, _, _ = select.select([queue_fd, wake_r], [], [], delayer.release_due())
            if wake_r in readable:
                break
            if queue_fd in readable:
                nfq.run(block=False)
    finally:
        # Held packets go on at once rather than being dropped with the queue.
        delayer.release_all()
        nfq.unbind()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hivestack.lab.delayer", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    config = json.loads(parser.parse_args(argv).config.read_text())
    run(config["queue"], config["latency_ms"])


if __name__ == "__main__":
    main()
