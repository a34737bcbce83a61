"""Load client for the reference ledger: transfers through one or more targets (gateways or ledgers), every response
recorded, one JSON summary printed. Standard library only: it is also copied to hosts and run as `python3 load.py`.

    python3 load.py --target dc-a=https://10.80.1.10:8443 --target dc-b=https://10.80.2.10:8443 \\
        --ca-file gateway-ca.pem --customers 0-29999 --workers 8 --duration 10 [--rate N] [--ack-log FILE.jsonl] \\
        [--setup-accounts] [--cert-file CLIENT.pem]

Per target, --workers threads each keep one keep-alive connection and post transfers between the two accounts
(load-a, load-b) of a customer drawn from --customers, with idempotency keys <run>-<target>-<worker>-<seq>.
--setup-accounts first opens both accounts with a large balance for every customer used (through the same target;
--sample N limits the customers used). The ack log has one JSON line per request; acknowledged means a 2xx status.
Ctrl-C / SIGTERM stop the workers after their request in flight; the summary is printed all the same.
HTTPS targets are verified against --ca-file (else the system's CAs), their names included; --cert-file (a PEM with
the certificate and its key) answers a target that asks for a client certificate.

From Python: `run_load(["dc-a=https://10.80.1.10:8443"], "0-99", duration=2, tls=tls_context("ca.pem")).to_dict()`.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import math
import random
import secrets
import signal
import ssl
import sys
import threading
import time
from array import array
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO
from urllib.parse import urlsplit

ACCOUNTS = ("load-a", "load-b")
SETUP_BALANCE = 10**12
MAX_AMOUNT = 100
TIMEOUT_S = 5.0
CONNECTION_ERROR = "connection"
MAX_CUSTOMER = 2**32

# A reused keep-alive connection that the server closed meanwhile fails like this before any response; the request
# is sent again once on a new connection (safe: transfers carry an idempotency key, account opens are idempotent).
_STALE_CONNECTION = (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)


# ---------------------------------------------------------------- arguments


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    scheme: str
    host: str
    port: int
    prefix: str  # path prefix of the base URL, without a trailing slash


def parse_target(text: str) -> Target:
    """`NAME=http://HOST:PORT[/prefix]`."""
    name, sep, url = text.partition("=")
    if not sep or not name:
        raise ValueError(f"target must be NAME=URL, got {text!r}")
    if not all(c.isalnum() or c in "._-" for c in name):
        raise ValueError(f"target name must be letters, digits, . _ -: {name!r}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"target URL must be http(s)://HOST[:PORT], got {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return Target(name, url, parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


def tls_context(ca_file: str | None = None, cert_file: str | None = None) -> ssl.SSLContext:
    """What HTTPS targets are held to: a certificate chaining to ca_file (the system's CAs without one) that names
    the target's host or address. cert_file: certificate and key (one PEM) for targets that ask for a client."""
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file:
        ctx.load_cert_chain(cert_file)
    return ctx


def parse_customers(text: str) -> range:
    """`FIRST-LAST` (inclusive) or a single id."""
    first, sep, last = text.partition("-")
    try:
        low = int(first)
        high = int(last) if sep else low
    except ValueError:
        raise ValueError(f"customers must be FIRST-LAST or ID, got {text!r}") from None
    if not 0 <= low <= high < MAX_CUSTOMER:
        raise ValueError(f"customers must satisfy 0 <= FIRST <= LAST < 2**32, got {text!r}")
    return range(low, high + 1)


# ---------------------------------------------------------------- statistics


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when there are none)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class Stats:
    """What one worker saw; workers keep their own and they are merged at the end."""

    count: int = 0
    ok: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    connection_errors: Counter[str] = field(default_factory=Counter)
    latencies_ms: array = field(default_factory=lambda: array("d"))  # of requests that got a response
    cells: Counter[str] = field(default_factory=Counter)  # of acknowledged requests
    dcs: Counter[str] = field(default_factory=Counter)
    db_members: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0

    def record(self, status: int, latency_ms: float, body: dict[str, Any]) -> None:
        self.count += 1
        self.statuses[status] += 1
        self.latencies_ms.append(latency_ms)
        if 200 <= status < 300:
            self.ok += 1
            for counter, key in ((self.cells, "cell"), (self.dcs, "dc"), (self.db_members, "db_member")):
                if isinstance(body.get(key), str):
                    counter[body[key]] += 1

    def record_connection_error(self, kind: str) -> None:
        self.count += 1
        self.connection_errors[kind] += 1

    def merge(self, other: Stats) -> None:
        self.count += other.count
        self.ok += other.ok
        self.statuses.update(other.statuses)
        self.connection_errors.update(other.connection_errors)
        self.latencies_ms.extend(other.latencies_ms)
        self.cells.update(other.cells)
        self.dcs.update(other.dcs)
        self.db_members.update(other.db_members)
        self.elapsed_s = max(self.elapsed_s, other.elapsed_s)

    def to_dict(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)
        errors: dict[str, int] = {str(s): n for s, n in sorted(self.statuses.items()) if not 200 <= s < 300}
        if self.connection_errors:
            errors[CONNECTION_ERROR] = sum(self.connection_errors.values())

        def ms(p: float) -> float | None:
            value = percentile(ordered, p)
            return None if value is None else round(value, 3)

        rate = (lambda n: round(n / self.elapsed_s, 1)) if self.elapsed_s > 0 else (lambda n: 0.0)
        return {
            "count": self.count,
            "ok": self.ok,
            "errors": errors,
            "statuses": {str(s): n for s, n in sorted(self.statuses.items())},
            "connection_errors": dict(sorted(self.connection_errors.items())),
            "p50_ms": ms(50),
            "p90_ms": ms(90),
            "p99_ms": ms(99),
            "max_ms": round(ordered[-1], 3) if ordered else None,
            "throughput_rps": rate(self.count),
            "ok_rps": rate(self.ok),
            "elapsed_s": round(self.elapsed_s, 3),
            "cells": dict(sorted(self.cells.items())),
            "dcs": dict(sorted(self.dcs.items())),
            "db_members": dict(sorted(self.db_members.items())),
        }


@dataclass
class SetupStats:
    customers: int = 0
    ready: list[int] = field(default_factory=list)  # customers whose two accounts exist
    opened: int = 0
    existing: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "customers": self.customers,
            "ready": len(self.ready),
            "opened": self.opened,
            "existing": self.existing,
            "errors": dict(sorted(self.errors.items())),
            "elapsed_s": round(self.elapsed_s, 3),
        }


@dataclass
class Summary:
    run: str
    duration_s: float
    workers: int
    rate: float | None
    targets: dict[str, Stats]
    setup: dict[str, SetupStats] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def total(self) -> Stats:
        total = Stats()
        for stats in self.targets.values():
            total.merge(stats)
        return total

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "run": self.run,
            "duration_s": self.duration_s,
            "workers": self.workers,
            "rate_per_target": self.rate,
            "interrupted": self.interrupted,
        }
        if self.setup:
            out["setup"] = {name: s.to_dict() for name, s in self.setup.items()}
        out["targets"] = {name: s.to_dict() for name, s in self.targets.items()}
        out["total"] = self.total.to_dict()
        return out


# ---------------------------------------------------------------- I/O


class AckLog:
    """One JSON line per request, shared by the workers."""

    def __init__(self, path: str | Path | None) -> None:
        self._lock = threading.Lock()
        self._file: TextIO | None = Path(path).open("a", encoding="utf-8") if path else None  # noqa: SIM115

    def write(self, record: dict[str, Any]) -> None:
        if self._file is not None:
            line = json.dumps(record, separators=(",", ":")) + "\n"
            with self._lock:
                self._file.write(line)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def ack_record(
    target: str, key: str, customer: int, status: int | None, latency_ms: float, body: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """An ack log line: "t" is when the response (or the error) came, unix time."""
    return {
        "t": round(time.time(), 6),
        "target": target,
        "key": key,
        "customer": customer,
        "status": status,
        "latency_ms": round(latency_ms, 3),
        "cell": body.get("cell"),
        "dc": body.get("dc"),
        "db_member": body.get("db_member"),
        **extra,
    }


class Client:
    """One keep-alive HTTP/1.1 connection to a target (HTTPS ones held to `tls`)."""

    def __init__(self, target: Target, timeout: float = TIMEOUT_S, tls: ssl.SSLContext | None = None) -> None:
        self.target = target
        self._conn: http.client.HTTPConnection
        if target.scheme == "https":
            self._conn = http.client.HTTPSConnection(target.host, target.port, timeout=timeout, context=tls)
        else:
            self._conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout)

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        """Status and JSON body (empty when not JSON); raises OSError / http.client.HTTPException on failures."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in (1, 2):
            reused = self._conn.sock is not None
            try:
                self._conn.request(method, self.target.prefix + path, body=data, headers=headers)
                response = self._conn.getresponse()
                raw = response.read()
                break
            except _STALE_CONNECTION:
                self._conn.close()
                if not reused or attempt == 2:
                    raise
            except BaseException:
                self._conn.close()
                raise
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = {}
        return response.status, parsed if isinstance(parsed, dict) else {}

    def close(self) -> None:
        self._conn.close()


def _error_kind(exc: BaseException) -> str:
    return "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__


# ---------------------------------------------------------------- workers


def _setup_worker(
    target: Target,
    todo: Iterator[int],
    lock: threading.Lock,
    setup: SetupStats,
    stop: threading.Event,
    timeout: float,
    tls: ssl.SSLContext | None,
) -> None:
    client = Client(target, timeout, tls)
    try:
        while not stop.is_set():
            with lock:
                customer = next(todo, None)
            if customer is None:
                return
            ready = True
            for account in ACCOUNTS:
                try:
                    status, body = client.request(
                        "POST", f"/v1/customers/{customer}/accounts", {"account": account, "initial": SETUP_BALANCE}
                    )
                except (OSError, http.client.HTTPException) as exc:
                    status, body = 0, {"error": _error_kind(exc)}
                with lock:
                    if status == 201:
                        setup.opened += 1
                    elif status == 200:
                        setup.existing += 1
                    else:
                        setup.errors[str(status) if status else f"{CONNECTION_ERROR}:{body['error']}"] += 1
                        ready = False
            if ready:
                with lock:
                    setup.ready.append(customer)
    finally:
        client.close()


def setup_accounts(
    target: Target,
    customers: Sequence[int],
    workers: int,
    stop: threading.Event,
    timeout: float = TIMEOUT_S,
    tls: ssl.SSLContext | None = None,
) -> SetupStats:
    """Open both load accounts of every customer through the target, with a large initial balance."""
    setup = SetupStats(customers=len(customers))
    todo, lock = iter(customers), threading.Lock()
    start = time.monotonic()
    threads = [
        threading.Thread(target=_setup_worker, args=(target, todo, lock, setup, stop, timeout, tls), daemon=True)
        for _ in range(max(1, workers))
    ]
    for thread in threads:
        thread.start()
    _join(threads)
    setup.elapsed_s = time.monotonic() - start
    setup.ready.sort()
    return setup


@dataclass(frozen=True)
class _Plan:
    run: str
    customers: Sequence[int]
    start: float  # time.monotonic()
    deadline: float
    interval_s: float  # between two requests of one worker; 0: as fast as possible
    workers: int
    timeout: float
    tls: ssl.SSLContext | None


def _transfer_worker(
    plan: _Plan, target: Target, index: int, rng: random.Random, stats: Stats, ack: AckLog, stop: threading.Event
) -> None:
    client = Client(target, plan.timeout, plan.tls)
    next_at = plan.start + (plan.interval_s * index / plan.workers if plan.interval_s else 0.0)
    try:
        for seq in itertools.count():
            now = time.monotonic()
            if plan.interval_s:
                if next_at > now:
                    stop.wait(min(next_at, plan.deadline) - now)
                    now = time.monotonic()
                next_at = max(next_at + plan.interval_s, now - plan.interval_s)  # no burst to catch up
            if stop.is_set() or now >= plan.deadline:
                break
            customer = rng.choice(plan.customers)
            source, dest = rng.sample(ACCOUNTS, 2)
            key = f"{plan.run}-{target.name}-{index}-{seq}"
            amount = rng.randint(1, MAX_AMOUNT)
            body = {"idempotency_key": key, "from": source, "to": dest, "amount": amount}
            sent = time.perf_counter()
            try:
                status, response = client.request("POST", f"/v1/customers/{customer}/transfers", body)
            except (OSError, http.client.HTTPException) as exc:
                latency_ms = (time.perf_counter() - sent) * 1000
                stats.record_connection_error(_error_kind(exc))
                ack.write(
                    ack_record(target.name, key, customer, None, latency_ms, {}, error=f"{type(exc).__name__}: {exc}")
                )
                stop.wait(0.05)  # a dead target is not hammered
                continue
            latency_ms = (time.perf_counter() - sent) * 1000
            stats.record(status, latency_ms, response)
            ack.write(
                ack_record(
                    target.name,
                    key,
                    customer,
                    status,
                    latency_ms,
                    response,
                    **{"from": source, "to": dest},
                    amount=amount,
                )
            )
    finally:
        stats.elapsed_s = time.monotonic() - plan.start
        client.close()


def _join(threads: Sequence[threading.Thread]) -> None:
    """Join with timeouts, so the main thread stays responsive to signals."""
    for thread in threads:
        while thread.is_alive():
            thread.join(0.2)


def run_load(
    targets: Sequence[Target | str],
    customers: Sequence[int] | str,
    *,
    workers: int = 8,
    duration: float = 10.0,
    rate: float | None = None,
    ack_log: str | Path | None = None,
    setup: bool = False,
    sample: int | None = None,
    run_id: str | None = None,
    timeout: float = TIMEOUT_S,
    seed: int | None = None,
    stop: threading.Event | None = None,
    tls: ssl.SSLContext | None = None,
) -> Summary:
    """Run the load and return its summary. rate: requests per second per target (None: as fast as the workers
    go). sample: use only that many customers of the range. stop: set it to end early (the summary still comes).
    tls: what HTTPS targets are held to (default: tls_context(), the system's CAs)."""
    parsed = [t if isinstance(t, Target) else parse_target(t) for t in targets]
    if len({t.name for t in parsed}) != len(parsed):
        raise ValueError("target names must be unique")
    if workers < 1 or duration <= 0 or (rate is not None and rate <= 0):
        raise ValueError("workers must be >= 1, duration and rate > 0")
    pool: Sequence[int] = parse_customers(customers) if isinstance(customers, str) else customers
    if not pool:
        raise ValueError("no customers")
    if sample is not None and sample < len(pool):
        pool = sorted(random.Random(seed).sample(pool, sample))
    run = run_id or time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)
    if tls is None and any(t.scheme == "https" for t in parsed):
        tls = tls_context()
    stop = stop or threading.Event()
    summary = Summary(run, duration, workers, rate, {t.name: Stats() for t in parsed})

    pools: dict[str, Sequence[int]] = {t.name: pool for t in parsed}
    if setup:
        results: dict[str, SetupStats] = {}

        def do_setup(target: Target) -> None:
            results[target.name] = setup_accounts(target, pool, workers, stop, timeout, tls)

        threads = [threading.Thread(target=do_setup, args=(t,), daemon=True) for t in parsed]
        for thread in threads:
            thread.start()
        _join(threads)
        summary.setup = {t.name: results[t.name] for t in parsed}
        pools = {name: s.ready or pool for name, s in results.items()}

    ack = AckLog(ack_log)
    start = time.monotonic()
    per_worker: list[tuple[str, Stats]] = []
    threads = []
    for target in parsed:
        plan = _Plan(
            run, pools[target.name], start, start + duration, workers / rate if rate else 0.0, workers, timeout, tls
        )
        for index in range(workers):
            stats = Stats()
            per_worker.append((target.name, stats))
            rng = random.Random(f"{seed}-{target.name}-{index}") if seed is not None else random.Random()
            threads.append(
                threading.Thread(
                    target=_transfer_worker,
                    args=(plan, target, index, rng, stats, ack, stop),
                    name=f"load-{target.name}-{index}",
                    daemon=True,
                )
            )
    for thread in threads:
        thread.start()
    try:
        _join(threads)
    finally:
        ack.close()
    summary.interrupted = stop.is_set()
    for name, stats in per_worker:
        summary.targets[name].merge(stats)
    return summary


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Load client for the Hivestack reference ledger.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2] if __doc__ else None,
    )
    parser.add_argument("--target", action="append", required=True, metavar="NAME=URL", help="repeatable")
    parser.add_argument("--customers", required=True, metavar="FIRST-LAST", help="customer id range, inclusive")
    parser.add_argument("--workers", type=int, default=8, help="per target (default 8)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of transfers (default 10)")
    parser.add_argument("--rate", type=float, help="requests per second per target (default: unpaced)")
    parser.add_argument("--ack-log", metavar="FILE.jsonl", help="append one JSON line per request")
    parser.add_argument("--setup-accounts", action="store_true", help="open the customers' accounts first")
    parser.add_argument("--sample", type=int, help="use only N customers of the range")
    parser.add_argument("--run-id", help="prefix of the idempotency keys (default: time and random)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help="per request, seconds (default 5)")
    parser.add_argument("--seed", type=int, help="make the customer, account and amount choices repeatable")
    parser.add_argument("--ca-file", help="CA certificates (PEM) HTTPS targets must chain to (default: the system's)")
    parser.add_argument("--cert-file", help="client certificate and its key (one PEM), for targets that ask for one")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        tls = tls_context(args.ca_file, args.cert_file)
        summary = run_load(
            args.target,
            args.customers,
            workers=args.workers,
            duration=args.duration,
            rate=args.rate,
            ack_log=args.ack_log,
            setup=args.setup_accounts,
            sample=args.sample,
            run_id=args.run_id,
            timeout=args.timeout,
            seed=args.seed,
            stop=stop,
            tls=tls,
        )
    except (ValueError, OSError) as exc:
        print(f"load: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary.to_dict(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
