"""The ledger load client (hivestack.ledger.load): argument parsing, percentiles and summaries, the ack log, and
whole runs against a tiny in-process stub of the ledger's HTTP API (keep-alive, setup, errors, pacing, stopping)."""

from __future__ import annotations

import io
import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import redirect_stdout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from hivestack.components.tls import issue, make_ca
from hivestack.ledger import load

pytestmark = pytest.mark.unit


# ---------------------------------------------------------------- pure logic


def test_parse_target():
    t = load.parse_target("dc-a=https://10.80.1.10:8443")
    assert (t.name, t.scheme, t.host, t.port, t.prefix) == ("dc-a", "https", "10.80.1.10", 8443, "")
    assert load.parse_target("local=http://127.0.0.1:8100").scheme == "http"
    t = load.parse_target("edge=https://gw.example/ledger/")
    assert (t.port, t.prefix) == (443, "/ledger")
    for bad in ("dc-a", "=http://h:1", "dc-a=ftp://h", "dc-a=http://", "d c=http://h:1"):
        with pytest.raises(ValueError):
            load.parse_target(bad)


def test_parse_customers():
    assert load.parse_customers("0-29999") == range(30000)
    assert load.parse_customers("7") == range(7, 8)
    assert load.parse_customers("4294967295") == range(2**32 - 1, 2**32)
    for bad in ("5-1", "-1", "a-b", "0-4294967296", ""):
        with pytest.raises(ValueError):
            load.parse_customers(bad)


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert load.percentile(values, 50) == 50
    assert load.percentile(values, 99) == 99
    assert load.percentile(values, 100) == 100
    assert load.percentile(values, 0) == 1
    assert load.percentile([3.0], 99) == 3
    assert load.percentile([1.0, 2.0], 50) == 1
    assert load.percentile([], 50) is None


def test_stats_summary():
    stats = load.Stats()
    for i in range(98):
        stats.record(201, float(i + 1), {"cell": "cell-a", "dc": "dc-a", "db_member": "db-1"})
    stats.record(503, 500.0, {"cell": "cell-a", "error": "cell database unavailable"})
    stats.record(421, 2.0, {})
    stats.record_connection_error("ConnectionRefusedError")
    stats.elapsed_s = 2.0
    other = load.Stats(elapsed_s=1.0)
    other.record(201, 1.0, {"cell": "cell-b", "dc": "dc-b", "db_member": "db-2"})
    stats.merge(other)
    out = stats.to_dict()
    assert (out["count"], out["ok"]) == (102, 99)
    assert out["errors"] == {"421": 1, "503": 1, "connection": 1}
    assert out["statuses"] == {"201": 99, "421": 1, "503": 1}
    assert out["connection_errors"] == {"ConnectionRefusedError": 1}
    assert out["p50_ms"] == 49.0 and out["max_ms"] == 500.0  # of 1, 1, 2, 2, 3 .. 98, 500
    assert out["throughput_rps"] == 51.0 and out["ok_rps"] == 49.5 and out["elapsed_s"] == 2.0
    assert out["cells"] == {"cell-a": 98, "cell-b": 1} and out["db_members"] == {"db-1": 98, "db-2": 1}
    empty = load.Stats().to_dict()
    assert empty["p99_ms"] is None and empty["throughput_rps"] == 0.0


def test_ack_log_lines(tmp_path):
    log = load.AckLog(tmp_path / "ack.jsonl")
    record = load.ack_record("dc-a", "r-dc-a-0-0", 7, 201, 1.23456, {"cell": "cell-a", "dc": "dc-a", "db_member": "m1"})
    log.write(record)
    log.write(load.ack_record("dc-a", "r-dc-a-0-1", 7, None, 5.0, {}, error="ConnectionRefusedError: refused"))
    log.close()
    lines = [json.loads(line) for line in (tmp_path / "ack.jsonl").read_text().splitlines()]
    assert set(lines[0]) == {"t", "target", "key", "customer", "status", "latency_ms", "cell", "dc", "db_member"}
    assert lines[0]["latency_ms"] == 1.235 and abs(lines[0]["t"] - time.time()) < 5
    assert lines[1]["status"] is None and lines[1]["cell"] is None and "refused" in lines[1]["error"]
    load.AckLog(None).write(record)  # no file: a no-op


# ---------------------------------------------------------------- stub ledger


class StubLedger:
    """Enough of the ledger's HTTP API: accounts open 201 then 200; transfers 201, replays 200, and 503 for every
    customer divisible by `unavailable_every` (0: never)."""

    def __init__(self, cell: str = "cell-a", unavailable_every: int = 0, drop_after_each: bool = False) -> None:
        self.cell = cell
        self.unavailable_every = unavailable_every
        self.drop_after_each = drop_after_each
        self.lock = threading.Lock()
        self.accounts: set[tuple[int, str]] = set()
        self.transfers: dict[str, dict[str, Any]] = {}
        self.connections = 0


def make_handler(stub: StubLedger) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def setup(self) -> None:
            super().setup()
            with stub.lock:
                stub.connections += 1

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            match = re.fullmatch(r"/v1/customers/(\d+)/(accounts|transfers)", self.path)
            assert match, self.path
            customer, kind = int(match[1]), match[2]
            identity = {"cell": stub.cell, "dc": "dc-a", "host": "stub"}
            with stub.lock:
                if stub.unavailable_every and customer % stub.unavailable_every == 0:
                    status, out = 503, {"error": "cell database unavailable"}
                elif kind == "accounts":
                    key = (customer, body["account"])
                    status = 200 if key in stub.accounts else 201
                    stub.accounts.add(key)
                    out = {"db_member": "db-1"}
                else:
                    replay = body["idempotency_key"] in stub.transfers
                    stub.transfers[body["idempotency_key"]] = {"customer": customer, **body}
                    status, out = (200 if replay else 201), {"replayed": replay, "db_member": "db-1"}
            data = json.dumps({**out, **identity}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            if stub.drop_after_each:
                self.close_connection = True  # without saying so: the client finds out on its next request

    return Handler


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[ThreadingHTTPServer] = []

    def start(stub: StubLedger, tls: ssl.SSLContext | None = None) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(stub))
        server.daemon_threads = True
        if tls:
            server.socket = tls.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- runs


def test_run_records_every_request(serve, tmp_path):
    stub_a, stub_b = StubLedger("cell-a"), StubLedger("cell-b", unavailable_every=3)
    targets = [f"dc-a={serve(stub_a)}", f"dc-b={serve(stub_b)}"]
    ack = tmp_path / "ack.jsonl"
    summary = load.run_load(targets, "100-119", workers=3, duration=0.5, ack_log=ack, run_id="t1", seed=1)
    out = summary.to_dict()
    lines = [json.loads(line) for line in ack.read_text().splitlines()]
    a, b = out["targets"]["dc-a"], out["targets"]["dc-b"]
    assert a["count"] > 10 and a["ok"] == a["count"] and a["errors"] == {}
    assert b["ok"] > 0 and b["errors"]["503"] == b["count"] - b["ok"] > 0
    assert out["total"]["count"] == a["count"] + b["count"] == len(lines)
    assert out["total"]["ok"] == sum(1 for line in lines if 200 <= line["status"] < 300)
    assert a["cells"] == {"cell-a": a["ok"]} and b["cells"] == {"cell-b": b["ok"]}
    assert a["p50_ms"] is not None and a["p99_ms"] >= a["p50_ms"] and a["throughput_rps"] > 0
    assert not out["interrupted"] and "setup" not in out
    keys = [line["key"] for line in lines]
    assert len(set(keys)) == len(keys) and all(re.fullmatch(r"t1-dc-[ab]-[0-2]-\d+", k) for k in keys)
    assert all(100 <= line["customer"] <= 119 and line["target"] in ("dc-a", "dc-b") for line in lines)
    assert set(stub_a.transfers) == {line["key"] for line in lines if line["target"] == "dc-a"}
    first_ok = next(line["key"] for line in lines if line["status"] == 201)  # a 503 left no transfer behind
    sent = stub_a.transfers.get(first_ok) or stub_b.transfers[first_ok]
    assert {sent["from"], sent["to"]} == set(load.ACCOUNTS) and 1 <= sent["amount"] <= load.MAX_AMOUNT
    assert stub_a.connections == 3  # one keep-alive connection per worker


def test_setup_opens_accounts_for_the_customers_used(serve):
    stub = StubLedger()
    stub.accounts.add((5, "load-a"))
    summary = load.run_load([f"x={serve(stub)}"], "0-9", workers=2, duration=0.3, setup=True, sample=4, seed=7)
    setup = summary.to_dict()["setup"]["x"]
    assert setup["customers"] == setup["ready"] == 4 and setup["errors"] == {}
    assert setup["opened"] + setup["existing"] == 8
    used = {t["customer"] for t in stub.transfers.values()}
    opened = {c for c, _ in stub.accounts if c != 5 or (5, "load-b") in stub.accounts}
    assert used <= opened and len(opened) == 4


def test_setup_skips_customers_it_could_not_open(serve):
    stub = StubLedger(unavailable_every=2)
    summary = load.run_load([f"x={serve(stub)}"], "0-9", workers=2, duration=0.3, setup=True)
    setup = summary.setup["x"]
    assert setup.ready == [1, 3, 5, 7, 9] and setup.errors == {"503": 10}  # two accounts each
    assert summary.targets["x"].ok == summary.targets["x"].count > 0  # only ready customers were used


def test_connection_errors_are_counted_not_raised(serve, tmp_path):
    ack = tmp_path / "ack.jsonl"
    summary = load.run_load([f"dead=http://127.0.0.1:{closed_port()}"], "1", workers=2, duration=0.3, ack_log=ack)
    dead = summary.to_dict()["targets"]["dead"]
    assert dead["count"] > 0 and dead["ok"] == 0 and dead["errors"] == {"connection": dead["count"]}
    assert dead["connection_errors"] == {"ConnectionRefusedError": dead["count"]}
    assert dead["p50_ms"] is None  # latency percentiles are of responses
    lines = [json.loads(line) for line in ack.read_text().splitlines()]
    assert len(lines) == dead["count"] and all(line["status"] is None for line in lines)


def test_a_connection_the_server_dropped_is_retried_once(serve):
    stub = StubLedger(drop_after_each=True)
    summary = load.run_load([f"x={serve(stub)}"], "1-3", workers=1, duration=0.3)
    stats = summary.targets["x"]
    assert stats.count > 3 and stats.ok == stats.count and not stats.connection_errors
    assert stub.connections >= stats.count  # each request after the first needed a new connection


def test_rate_paces_each_target(serve):
    stub = StubLedger()
    summary = load.run_load([f"x={serve(stub)}"], "1-3", workers=2, duration=1.0, rate=20)
    assert 14 <= summary.targets["x"].count <= 23


def test_stop_ends_a_run_early_with_a_summary(serve):
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    summary = load.run_load([f"x={serve(StubLedger())}"], "1-3", workers=2, duration=30, stop=stop)
    assert time.monotonic() - started < 3
    assert summary.interrupted and summary.targets["x"].count > 0


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Any]:
    """A gateway CA with a front door certificate for 127.0.0.1, one for another address, a client certificate
    (certificate and key in one PEM), and another CA."""
    directory = tmp_path_factory.mktemp("load-tls")
    ca, other = make_ca("gateway CA"), make_ca("another CA")

    def write(name: str, ca_pair: tuple[str, str], address: str, usage: str) -> str:
        pair = issue(*ca_pair, {"common_name": name, "dns": [name], "ips": [address], "usage": usage})
        (directory / f"{name}.pem").write_text(pair["cert"] + pair["key"])
        return str(directory / f"{name}.pem")

    (directory / "ca.pem").write_text(ca[0])
    (directory / "other-ca.pem").write_text(other[0])
    return {
        "ca": str(directory / "ca.pem"),
        "other_ca": str(directory / "other-ca.pem"),
        "front": write("gw", ca, "127.0.0.1", "server"),
        "elsewhere": write("gw-elsewhere", ca, "10.9.9.9", "server"),
        "client": write("checker", ca, "127.0.0.1", "client"),
    }


def front_door(pki: dict[str, Any], cert: str = "front", client_ca: str | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki[cert])
    if client_ca:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def test_https_targets_are_held_to_the_ca_and_their_address(serve, pki):
    good = load.run_load(
        [f"x={serve(StubLedger(), front_door(pki))}"], "1", workers=1, duration=0.2, tls=load.tls_context(pki["ca"])
    )
    assert good.targets["x"].ok == good.targets["x"].count > 0
    for target, tls in (
        (serve(StubLedger(), front_door(pki)), load.tls_context(pki["other_ca"])),  # another CA
        (serve(StubLedger(), front_door(pki, "elsewhere")), load.tls_context(pki["ca"])),  # names another address
        (serve(StubLedger(), front_door(pki)), None),  # the system's CAs know no platform CA
    ):
        stats = load.run_load([f"x={target}"], "1", workers=1, duration=0.2, tls=tls).targets["x"]
        assert stats.ok == 0 and set(stats.connection_errors) == {"SSLCertVerificationError"}, stats


def test_a_client_certificate_is_presented_to_a_target_that_asks(serve, pki):
    url = serve(StubLedger(), front_door(pki, client_ca=pki["ca"]))
    with_cert = load.run_load(
        [f"x={url}"], "1", workers=1, duration=0.2, tls=load.tls_context(pki["ca"], pki["client"])
    )
    assert with_cert.targets["x"].ok == with_cert.targets["x"].count > 0
    without = load.run_load([f"x={url}"], "1", workers=1, duration=0.2, tls=load.tls_context(pki["ca"]))
    assert without.targets["x"].ok == 0 and without.targets["x"].connection_errors


def test_invalid_arguments():
    with pytest.raises(ValueError, match="unique"):
        load.run_load(["a=http://127.0.0.1:1", "a=http://127.0.0.1:2"], "1", duration=0.1)
    with pytest.raises(ValueError):
        load.run_load(["a=http://127.0.0.1:1"], "1", workers=0, duration=0.1)


def test_command_line_prints_one_json_summary(serve, tmp_path):
    url = serve(StubLedger())
    out = io.StringIO()
    with redirect_stdout(out):
        rc = load.main(["--target", f"dc-a={url}", "--customers", "0-4", "--workers", "2", "--duration", "0.3"])
    assert rc == 0
    summary = json.loads(out.getvalue())
    assert summary["targets"]["dc-a"]["ok"] == summary["total"]["ok"] > 0
    assert load.main(["--target", "nonsense", "--customers", "0-4"]) == 2


def test_command_line_verifies_https_with_the_ca_file(serve, pki, tmp_path):
    url = serve(StubLedger(), front_door(pki))
    argv = ["--target", f"dc-a={url}", "--customers", "0-4", "--workers", "1", "--duration", "0.2"]
    out = io.StringIO()
    with redirect_stdout(out):
        assert load.main([*argv, "--ca-file", pki["ca"]]) == 0
    assert json.loads(out.getvalue())["targets"]["dc-a"]["errors"] == {}
    assert load.main([*argv, "--ca-file", str(tmp_path / "missing.pem")]) == 2
