"""Per-cell measures from the clients' ack logs: RTO, longest write pause, errors, writers, split-brain.

Times are unix seconds. An ack's `t` is when its answer (or error) came; it was sent `latency_ms` earlier.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any


@dataclass(frozen=True)
class Ack:
    t: float
    sent: float
    dc: str  # the gateway's DC it went through
    key: str
    status: int | None  # None: no answer (connection error, timeout)
    db_member: str | None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @classmethod
    def from_record(cls, r: dict[str, Any]) -> Ack:
        return cls(r["t"], r["t"] - r["latency_ms"] / 1000, r["target"], r["key"], r["status"], r.get("db_member"))


@dataclass(frozen=True)
class Window:
    fault: float  # the fault took effect on its first host
    isolated_from: float  # ... and on its last
    heal: float  # healing started

    def during(self, t: float) -> bool:
        return self.fault <= t <= self.heal


@dataclass
class CellMeasure:
    cell: str
    led_from_inside: bool  # its writer was inside the fault
    # Fault to the first acknowledged write sent after it, through a surviving gateway; None: none before the heal.
    rto_s: float | None
    max_pause_s: float  # the longest time without an acknowledged write, around and during the fault
    errors: int  # requests through surviving gateways answered with an error (or not at all) during the fault
    acked: int  # writes acknowledged during the fault, through any gateway
    writers: list[str]  # the members that acknowledged them
    # None: not measured (no complete cut, so no sides to find writers on: gray failure, one host, planned switches).
    split_brain: bool | None
    split_brain_detail: str = ""
    errors_per_dc: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cell_measure(
    cell: str,
    acks: list[Ack],
    window: Window,
    inside_dcs: set[str],
    inside_hosts: set[str],
    led_from_inside: bool,
    isolates: bool,
) -> CellMeasure:
    surviving = sorted((a for a in acks if a.dc not in inside_dcs), key=lambda a: a.t)
    after = [a.t for a in surviving if a.ok and a.sent >= window.fault and a.t <= window.heal]
    rto = round(min(after) - window.fault, 3) if after else None
    during = [a for a in acks if window.during(a.t)]
    writers = sorted({a.db_member for a in during if a.ok and a.db_member})
    split: bool | None = None
    detail = ""
    if isolates:
        split, detail = _split_brain(acks, window, inside_hosts)
    return CellMeasure(
        cell=cell,
        led_from_inside=led_from_inside,
        rto_s=rto,
        max_pause_s=round(_longest_pause([a.t for a in surviving if a.ok], window), 3),
        errors=sum(1 for a in during if a.dc not in inside_dcs and not a.ok),
        acked=sum(1 for a in during if a.ok),
        writers=writers,
        split_brain=split,
        split_brain_detail=detail,
        errors_per_dc=errors_per_dc(acks, window),
    )


def _longest_pause(ack_times: list[float], window: Window) -> float:
    """The longest gap between consecutive acknowledgements over the fault: from the last one before it to the
    first one after the heal (or the heal itself, when none came)."""
    before = [t for t in ack_times if t < window.fault]
    after = [t for t in ack_times if t > window.heal]
    times = [
        before[-1] if before else window.fault,
        *(t for t in ack_times if window.fault <= t <= window.heal),
        after[0] if after else window.heal,
    ]
    return max(b - a for a, b in pairwise(times))


def _split_brain(acks: list[Ack], window: Window, inside_hosts: set[str]) -> tuple[bool, str]:
    """Members on both sides of the cut acknowledging writes while it was complete."""
    sides = Counter(
        "inside" if a.db_member in inside_hosts else "outside"
        for a in acks
        if a.ok and a.db_member and window.isolated_from <= a.sent and a.t <= window.heal
    )
    if sides["inside"] and sides["outside"]:
        return True, f"{sides['inside']} writes acknowledged inside and {sides['outside']} outside during the cut"
    return False, ""


def errors_per_dc(acks: list[Ack], window: Window) -> dict[str, dict[str, int]]:
    """Per gateway DC during the fault: requests, errors, acknowledged, and acknowledged of those sent once the
    fault was complete (a minority's gateway must show 0 there)."""
    out: dict[str, dict[str, int]] = {}
    for a in acks:
        if not window.during(a.t):
            continue
        row = out.setdefault(a.dc, {"requests": 0, "errors": 0, "acked": 0, "acked_sent_during": 0})
        row["requests"] += 1
        row["errors"] += 0 if a.ok else 1
        row["acked"] += 1 if a.ok else 0
        row["acked_sent_during"] += 1 if a.ok and a.sent >= window.isolated_from else 0
    return dict(sorted(out.items()))


def acks_per_second(acks: list[Ack], start: float) -> dict[str, list[int]]:
    """Acknowledged writes per second per gateway DC, second 0 starting at `start` (for the timeline)."""
    series: dict[str, list[int]] = {}
    for a in acks:
        if a.ok and a.t >= start:
            counts = series.setdefault(a.dc, [])
            second = int(a.t - start)
            counts.extend([0] * (second + 1 - len(counts)))
            counts[second] += 1
    length = max((len(c) for c in series.values()), default=0)
    return {dc: c + [0] * (length - len(c)) for dc, c in sorted(series.items())}
