"""GNS agent: range -> CIDR exactness, snapshot parsing and validation, map rendering, the HAProxy runtime-API
transaction (against a fake stats socket), etcdctl's environment, and the daemon loop end to end with fakes."""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import ipaddress
import itertools
import json
import os
import random
import re
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.unit

AGENT_PATH = Path(__file__).resolve().parents[2] / "playbooks/roles/gns/files/hivestack_gns_agent.py"
PREFIX = "/hivestack/gns/ranges/"
CELLS = ["cell-a", "cell-b", "cell-c"]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hivestack_gns_agent", AGENT_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


gns = _load()


def rng(start: int, end: int, cell: str) -> object:
    return gns.Range(start, end, cell, f"{PREFIX}{start:010d}")


def kv(start: int, end: int, cell: str) -> tuple[str, str]:
    return f"{PREFIX}{start:010d}", json.dumps({"start": start, "end": end, "cell": cell})


def etcd_json(items: list[tuple[str, str]], revision: int = 7) -> str:
    """What `etcdctl get --prefix -w json` prints (3.4): base64 keys and values, no "kvs" when nothing matched."""
    doc: dict = {"header": {"cluster_id": 3249525912, "member_id": 3319814642, "revision": revision, "raft_term": 3}}
    if items:
        doc["kvs"] = [
            {
                "key": base64.b64encode(k.encode()).decode(),
                "create_revision": 2,
                "mod_revision": 2,
                "version": 1,
                "value": base64.b64encode(v.encode()).decode(),
            }
            for k, v in items
        ]
        doc["count"] = len(items)
    return json.dumps(doc, separators=(",", ":"))


# ---------------------------------------------------------------- range -> CIDR


def _covered(cidrs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return [(net, net + (1 << (32 - length))) for net, length in cidrs]


def _check_exact(start: int, end: int) -> None:
    cidrs = gns.range_to_cidrs(start, end)
    spans = _covered(cidrs)
    pos = start
    for (net, length), (lo, hi) in zip(cidrs, spans, strict=True):
        assert 0 <= length <= 32
        assert net % (1 << (32 - length)) == 0, f"{net}/{length} is not aligned"
        assert lo == pos, f"gap or overlap at {pos} for [{start},{end})"
        pos = hi
    assert pos == end, f"[{start},{end}) covered up to {pos}"
    expected = (
        []
        if start == end
        else [
            (int(n.network_address), n.prefixlen)
            for n in ipaddress.summarize_address_range(ipaddress.IPv4Address(start), ipaddress.IPv4Address(end - 1))
        ]
    )
    assert cidrs == expected, f"[{start},{end}) is not the minimal cover"


def test_range_to_cidrs_random_ranges_are_covered_exactly_and_minimally() -> None:
    rnd = random.Random(20240601)
    for _ in range(3000):
        a, b = sorted(rnd.randrange(2**32 + 1) for _ in range(2))
        _check_exact(a, b)
    for _ in range(1000):  # small ranges around awkward places
        a = rnd.choice([0, 2**31, 2**32 - 300, rnd.randrange(2**32 - 300)]) + rnd.randrange(256)
        _check_exact(a, min(a + rnd.randrange(1, 300), 2**32))


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, 2**32, ["0.0.0.0/0"]),
        (0, 1, ["0.0.0.0/32"]),
        (2**32 - 1, 2**32, ["255.255.255.255/32"]),
        (2**31, 2**32, ["128.0.0.0/1"]),
        (0, 10000, ["0.0.0.0/19", "0.0.32.0/22", "0.0.36.0/23", "0.0.38.0/24", "0.0.39.0/28"]),
        (5, 5, []),
    ],
)
def test_range_to_cidrs_known_values(start: int, end: int, expected: list[str]) -> None:
    assert [f"{gns.int_to_ipv4(n)}/{m}" for n, m in gns.range_to_cidrs(start, end)] == expected
    _check_exact(start, end)


def test_range_to_cidrs_worst_case_is_62_blocks() -> None:
    assert len(gns.range_to_cidrs(1, 2**32 - 1)) == 62


@pytest.mark.parametrize(("start", "end"), [(-1, 5), (5, 4), (0, 2**32 + 1)])
def test_range_to_cidrs_rejects_bad_ranges(start: int, end: int) -> None:
    with pytest.raises(ValueError):
        gns.range_to_cidrs(start, end)


def test_int_to_ipv4_matches_ipaddress() -> None:
    for value in (0, 1, 255, 256, 10000, 2**31, 2**32 - 1, 3232235777):
        assert gns.int_to_ipv4(value) == str(ipaddress.IPv4Address(value))


# ---------------------------------------------------------------- snapshot parsing


def test_parse_snapshot_decodes_etcdctl_json() -> None:
    # Captured from etcdctl 3.4.23 against etcd 3.4.23.
    real = (
        '{"header":{"cluster_id":324952591200643719,"member_id":3319814642761637952,"revision":3,"raft_term":2},'
        '"kvs":[{"key":"L2hpdmVzdGFjay9nbnMvcmFuZ2VzLzAwMDAwMDAwMDA=","create_revision":2,"mod_revision":2,'
        '"version":1,"value":"eyJzdGFydCI6IDAsICJlbmQiOiAxMDAwMCwgImNlbGwiOiAiY2VsbC1hIn0="},'
        '{"key":"L2hpdmVzdGFjay9nbnMvcmFuZ2VzLzAwMDAwMTAwMDA=","create_revision":3,"mod_revision":3,"version":1,'
        '"value":"eyJzdGFydCI6IDEwMDAwLCAiZW5kIjogMzAwMDAsICJjZWxsIjogImNlbGwtYiJ9"}],"count":2}'
    )
    snap = gns.parse_snapshot(real.encode())
    assert snap.revision == 3
    assert snap.items == (
        ("/hivestack/gns/ranges/0000000000", '{"start": 0, "end": 10000, "cell": "cell-a"}'),
        ("/hivestack/gns/ranges/0000010000", '{"start": 10000, "end": 30000, "cell": "cell-b"}'),
    )
    ranges = gns.validate_ranges(snap.items, PREFIX, CELLS)
    assert [(r.start, r.end, r.cell) for r in ranges] == [(0, 10000, "cell-a"), (10000, 30000, "cell-b")]


def test_parse_snapshot_without_kvs_is_empty() -> None:
    snap = gns.parse_snapshot('{"header":{"cluster_id":1,"member_id":2,"revision":21,"raft_term":3}}')
    assert snap.revision == 21 and snap.items == ()


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("Error: context deadline exceeded", "not JSON"),
        ('{"kvs": []}', "no header"),
        ('{"header": {"revision": "7"}}', "revision"),
        ('{"header": {"revision": 7}, "kvs": [{"value": "eA=="}]}', "without a key"),
        ('{"header": {"revision": 7}, "kvs": [{"key": "***", "value": "eA=="}]}', "undecodable key"),
        ('{"header": {"revision": 7}, "kvs": [{"key": "L2E=", "value": "/w=="}]}', "key /a: value"),
    ],
)
def test_parse_snapshot_rejects_garbage(output: str, message: str) -> None:
    with pytest.raises(gns.SnapshotError, match=re.escape(message)):
        gns.parse_snapshot(output)


# ---------------------------------------------------------------- validation


def test_validate_accepts_gaps_adjacency_and_sorts() -> None:
    items = [kv(30000, 2**32, "cell-c"), kv(0, 10000, "cell-a"), kv(10000, 20000, "cell-b")]
    ranges = gns.validate_ranges(items, PREFIX, CELLS)
    assert [(r.start, r.end, r.cell) for r in ranges] == [
        (0, 10000, "cell-a"),
        (10000, 20000, "cell-b"),
        (30000, 2**32, "cell-c"),
    ]
    assert gns.validate_ranges([], PREFIX, CELLS) == []


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([(f"{PREFIX}0000000000", "not json")], "key /hivestack/gns/ranges/0000000000: value is not JSON"),
        ([(f"{PREFIX}0000000000", "[0, 1]")], "0000000000: value must be a JSON object"),
        ([(f"{PREFIX}0000000000", '{"start": 0.0, "end": 5, "cell": "cell-a"}')], "start must be an integer"),
        ([(f"{PREFIX}0000000000", '{"start": "0", "end": 5, "cell": "cell-a"}')], "start must be an integer"),
        ([(f"{PREFIX}0000000001", '{"start": true, "end": 5, "cell": "cell-a"}')], "start must be an integer"),
        ([(f"{PREFIX}0000000000", '{"start": 0, "cell": "cell-a"}')], "end must be an integer"),
        ([kv(5, 5, "cell-a")], "0000000005: need 0 <= start < end <= 2**32, got start=5 end=5"),
        ([kv(6, 5, "cell-a")], "need 0 <= start < end"),
        ([kv(0, 2**32 + 1, "cell-a")], "end=4294967297"),
        ([(f"{PREFIX}-000000001", '{"start": -1, "end": 5, "cell": "cell-a"}')], "start=-1"),
        ([kv(0, 5, "cell-z")], "0000000000: cell 'cell-z' is not one of ['cell-a', 'cell-b', 'cell-c']"),
        ([(f"{PREFIX}0000000000", '{"start": 0, "end": 5}')], "cell None is not one of"),
        ([(f"{PREFIX}10000", '{"start": 10000, "end": 20000, "cell": "cell-a"}')], "must be named after its start"),
        ([(f"{PREFIX}sub/0000010000", kv(10000, 20000, "cell-a")[1])], "key /hivestack/gns/ranges/sub/0000010000"),
        (
            [kv(0, 10000, "cell-a"), kv(9999, 20000, "cell-b")],
            "key /hivestack/gns/ranges/0000009999: [9999,20000) overlaps key /hivestack/gns/ranges/0000000000",
        ),
        ([kv(0, 100, "cell-a"), kv(10, 20, "cell-b")], "0000000010: [10,20) overlaps"),  # nested
    ],
)
def test_validate_names_the_offending_key(items: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(gns.SnapshotError, match=re.escape(message)):
        gns.validate_ranges(items, PREFIX, CELLS)


# ---------------------------------------------------------------- rendering and change descriptions


def test_render_map_file() -> None:
    ranges = gns.validate_ranges([kv(10000, 30000, "cell-b"), kv(0, 10000, "cell-a")], PREFIX, CELLS)
    entries = gns.render_entries(ranges)
    text = gns.render_map_file(entries)
    lines = text.splitlines()
    assert lines[0].startswith("#")
    assert lines[1:6] == [
        "0.0.0.0/19 cell-a",
        "0.0.32.0/22 cell-a",
        "0.0.36.0/23 cell-a",
        "0.0.38.0/24 cell-a",
        "0.0.39.0/28 cell-a",
    ]
    assert lines[6] == "0.0.39.16/28 cell-b"
    assert lines[-1] == "0.0.117.32/28 cell-b"
    assert len(lines) == 1 + 17 and text.endswith("\n")
    # Every customer resolves like HAProxy's map_ip would (longest prefix; ours never overlap).
    nets = [(ipaddress.IPv4Network(k), v) for k, v in entries]
    for customer, cell in [(0, "cell-a"), (9999, "cell-a"), (10000, "cell-b"), (29999, "cell-b"), (30000, None)]:
        hits = [v for n, v in nets if ipaddress.IPv4Address(customer) in n]
        assert hits == ([cell] if cell else [])


def test_render_random_ranges_partition_the_space() -> None:
    rnd = random.Random(7)
    cuts = sorted(rnd.sample(range(1, 2**32), 39))
    bounds = [0, *cuts, 2**32]
    ranges = [rng(a, b, rnd.choice(CELLS)) for a, b in itertools.pairwise(bounds)]
    entries = gns.render_entries(ranges)
    total = sum(ipaddress.IPv4Network(k).num_addresses for k, _ in entries)
    assert total == 2**32
    probe = {c: None for c in rnd.sample(range(2**32), 200)}
    for r in ranges:
        probe.update({r.start: r.cell, r.end - 1: r.cell})
    for customer, _ in probe.items():
        want = next(r.cell for r in ranges if r.start <= customer < r.end)
        got = [v for k, v in entries if ipaddress.IPv4Address(customer) in ipaddress.IPv4Network(k)]
        assert got == [want]


def test_describe_changes() -> None:
    old = [rng(0, 10000, "cell-a"), rng(10000, 30000, "cell-b"), rng(50000, 60000, "cell-c")]
    new = [
        rng(0, 10000, "cell-a"),
        rng(10000, 20000, "cell-c"),
        rng(20000, 30000, "cell-b"),
        rng(40000, 50000, "cell-a"),
    ]
    assert gns.describe_changes(old, new) == [
        "[10000,20000) cell-b->cell-c",
        "[40000,50000) none->cell-a",
        "[50000,60000) cell-c->none",
    ]
    assert gns.describe_changes(new, new) == []
    # A range split into two keys that keep the cell is no change; adjacent moves with one direction coalesce.
    assert gns.describe_changes([rng(0, 100, "cell-a")], [rng(0, 50, "cell-a"), rng(50, 100, "cell-a")]) == []
    assert gns.describe_changes(
        [rng(0, 50, "cell-a"), rng(50, 100, "cell-a")], [rng(0, 30, "cell-b"), rng(30, 100, "cell-b")]
    ) == ["[0,100) cell-a->cell-b"]


# ---------------------------------------------------------------- the HAProxy customer regex


def test_haproxy_customer_regex_accepts_exactly_canonical_ids_below_2_32() -> None:
    pattern = re.compile(gns.HAPROXY_CUSTOMER_REGEX)

    def expected(text: str) -> bool:
        return bool(re.fullmatch(r"0|[1-9][0-9]*", text)) and int(text) < 2**32

    samples = ["", "0", "00", "01", "-1", "+1", " 1", "1 ", "1e3", "abc", "4294967295", "4294967296", "9999999999"]
    samples += ["10000000000", "42949672950", "999999999", "1000000000", "3999999999", "4099999999", "4199999999"]
    digits = "4294967295"
    for i in range(len(digits)):  # every boundary of the alternation, just below / at / above
        for d in "0123456789":
            samples.append((digits[:i] + d).ljust(10, "0"))
            samples.append((digits[:i] + d).ljust(10, "9"))
    rnd = random.Random(3)
    samples += [str(rnd.randrange(10**11)) for _ in range(20000)]
    samples += [str(rnd.randrange(2**32 - 10**6, 2**32 + 10**6)) for _ in range(5000)]
    for text in samples:
        assert bool(pattern.search(text)) == expected(text), text


# ---------------------------------------------------------------- config


def config_doc(tmp_path: Path, **over: object) -> dict:
    doc = {
        "etcd_endpoints": ["https://10.80.1.11:2379", "https://10.80.2.11:2379"],
        "ca_file": "/etc/hivestack/tls/ca.pem",
        "user": "gns-agent",
        "password_file": str(tmp_path / "agent.password"),
        "prefix": PREFIX,
        "haproxy_socket": str(tmp_path / "admin.sock"),
        "map_file": str(tmp_path / "gns.map"),
        "cells": CELLS,
        "resync_seconds": 30,
    }
    doc.update(over)
    return doc


def test_config_parses_the_contract_example(tmp_path: Path) -> None:
    cfg = gns.parse_config(config_doc(tmp_path))
    assert cfg.etcd_endpoints == ("https://10.80.1.11:2379", "https://10.80.2.11:2379")
    assert cfg.cells == frozenset(CELLS) and cfg.resync_seconds == 30.0 and cfg.etcdctl == "etcdctl"
    plain = gns.parse_config(config_doc(tmp_path, ca_file="", user=None, password_file=None))
    assert plain.ca_file is None and plain.user is None


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"etcd_endpoints": []}, "etcd_endpoints"),
        ({"etcd_endpoints": ["10.80.1.11:2379"]}, "http:// or https://"),
        ({"password_file": None}, "user needs password_file"),
        ({"user": "a:b"}, "user must not contain"),
        ({"prefix": "/hivestack/gns/ranges"}, "prefix must end with '/'"),
        ({"map_file": "gns.map"}, "map_file must be an absolute path"),
        ({"map_file": "/var/lib/a b.map"}, "map_file must be an absolute path"),
        ({"cells": ["cell-a", "cell b"]}, "cell 'cell b'"),
        ({"cells": ["cell;a"]}, "cell 'cell;a'"),
        ({"cells": []}, "cells must be"),
        ({"resync_seconds": 0}, "resync_seconds"),
        ({"resync_seconds": True}, "resync_seconds"),
        ({"haproxy_socket": ""}, "missing haproxy_socket"),
    ],
)
def test_config_errors(tmp_path: Path, over: dict, message: str) -> None:
    with pytest.raises(gns.ConfigError, match=re.escape(message)):
        gns.parse_config(config_doc(tmp_path, **over))


def test_main_exits_2_on_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert gns.main(["--config", str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in capsys.readouterr().out


# ---------------------------------------------------------------- etcdctl


def test_etcdctl_env_carries_the_user_and_ca_only_when_given_and_stdin_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "agent.password").write_text("s3cr:et\n")
    monkeypatch.setenv("ETCDCTL_INSECURE_SKIP_TLS_VERIFY", "true")  # inherited: must not leak into etcdctl
    monkeypatch.setenv("ETCDCTL_CACERT", "/elsewhere/ca.pem")
    etcd = gns.Etcdctl(gns.parse_config(config_doc(tmp_path)))
    env = etcd.env()
    assert env["ETCDCTL_USER"] == "gns-agent"  # the name only: etcdctl asks for the password on stdin
    assert not any("s3cr" in value for value in env.values())
    assert etcd.credentials() == b"s3cr:et\n"
    assert env["ETCDCTL_CACERT"] == "/etc/hivestack/tls/ca.pem"
    assert env["ETCDCTL_ENDPOINTS"] == "https://10.80.1.11:2379,https://10.80.2.11:2379"
    assert env["ETCDCTL_API"] == "3"
    assert "ETCDCTL_INSECURE_SKIP_TLS_VERIFY" not in env
    argv = etcd.snapshot_argv() + etcd.watch_argv(41)
    assert not any("s3cr" in a or "gns-agent" in a or "10.80." in a or "ca.pem" in a for a in argv)
    assert etcd.snapshot_argv()[1:6] == ["get", "--prefix", PREFIX, "-w", "json"]
    assert etcd.watch_argv(41)[-2:] == ["--rev", "42"]
    assert "--rev" not in etcd.watch_argv(None)

    plain = gns.Etcdctl(gns.parse_config(config_doc(tmp_path, ca_file="", user="", password_file="")))
    env = plain.env()
    assert "ETCDCTL_CACERT" not in env and "ETCDCTL_USER" not in env
    assert plain.credentials() == b""


def test_etcdctl_unreadable_password_is_an_etcd_error(tmp_path: Path) -> None:
    etcd = gns.Etcdctl(gns.parse_config(config_doc(tmp_path)))
    with pytest.raises(gns.EtcdError, match="cannot read password_file"):
        etcd.credentials()


FAKE_ETCDCTL = """\
#!{python}
import json, os, pathlib, sys, time
state = pathlib.Path({state!r})
password = None
if os.environ.get("ETCDCTL_USER"):  # a user without a password: etcdctl 3.4 prompts and reads a line of stdin
    sys.stdout.write("Password: ")
    sys.stdout.flush()
    print("stty: 'standard input': Inappropriate ioctl for device", file=sys.stderr, flush=True)
    password = sys.stdin.readline().rstrip("\\n")
    print(flush=True)
(state / "calls").open("a").write(json.dumps({{"argv": sys.argv[1:], "user": os.environ.get("ETCDCTL_USER"),
    "password": password, "env": sorted(os.environ.values()), "cacert": os.environ.get("ETCDCTL_CACERT"),
    "endpoints": os.environ.get("ETCDCTL_ENDPOINTS")}}) + "\\n")
if sys.argv[1] == "get":
    if (state / "fail").exists():
        print("Error: context deadline exceeded", file=sys.stderr)
        sys.exit(1)
    sys.stdout.write((state / "snapshot.json").read_text())
elif sys.argv[1] == "watch":
    (state / "watch.pid").write_text(str(os.getpid()))
    seen = 0
    while True:
        trigger = state / "trigger"
        if trigger.exists():
            n = int(trigger.read_text() or 0)
            if n > seen:
                seen = n
                print("PUT", flush=True)
                print("/hivestack/gns/ranges/0000000000", flush=True)
        time.sleep(0.01)
"""


@pytest.fixture
def fake_etcdctl(tmp_path: Path) -> Path:
    state = tmp_path / "etcd"
    state.mkdir()
    script = state / "etcdctl"
    script.write_text(FAKE_ETCDCTL.format(python=sys.executable, state=str(state)))
    script.chmod(0o755)
    return state


def test_etcdctl_snapshot_hands_etcdctl_the_password_on_stdin(tmp_path: Path, fake_etcdctl: Path) -> None:
    (tmp_path / "agent.password").write_text("Zq81-agent-pw")
    (fake_etcdctl / "snapshot.json").write_text(etcd_json([kv(0, 10, "cell-a")], revision=12))
    cfg = gns.parse_config(config_doc(tmp_path, etcdctl=str(fake_etcdctl / "etcdctl")))
    snap = gns.Etcdctl(cfg).snapshot()
    assert snap.revision == 12 and snap.items == (kv(0, 10, "cell-a"),)
    call = json.loads((fake_etcdctl / "calls").read_text().splitlines()[0])
    assert (
        call["user"] == "gns-agent"
        and call["password"] == "Zq81-agent-pw"
        and call["cacert"] == "/etc/hivestack/tls/ca.pem"
    )
    assert not any("Zq81" in value for value in call["env"])
    assert call["argv"][:5] == ["get", "--prefix", PREFIX, "-w", "json"]

    (fake_etcdctl / "fail").touch()
    with pytest.raises(gns.EtcdError, match="exited 1: Error: context deadline exceeded"):
        gns.Etcdctl(cfg).snapshot()


# ---------------------------------------------------------------- a fake HAProxy stats socket


class FakeHAProxy:
    """Non-interactive stats socket of HAProxy 2.6: one request per connection, payload after ` <<` up to an empty
    line, requests over tune.bufsize closed without a reply, versioned maps with prepare / add / show / commit."""

    BUFSIZE = 16384

    def __init__(self, path: Path, map_file: str) -> None:
        self.path = path
        self.map_file = map_file
        self.pid = 4242
        self.start_time = 1_700_000_000
        self.current: list[tuple[str, str]] = []
        self.versions: dict[int, list[tuple[str, str]]] = {}
        self.next_ver = 0
        self.requests: list[str] = []
        self.fail_add = False
        self.lock = threading.Lock()
        fake = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data = b""
                self.request.settimeout(5)
                while True:
                    chunk = self.request.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                    if len(data) > fake.BUFSIZE:
                        return  # what HAProxy does: close, say nothing, do nothing
                    first, _, rest = data.partition(b"\n")
                    if not _:
                        continue
                    if first.endswith(b" <<") and not (rest == b"\n" or b"\n\n" in rest):
                        continue
                    break
                reply = fake.execute(data.decode())
                self.request.sendall(reply.encode())

        self.server = socketserver.ThreadingUnixStreamServer(str(path), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.path.unlink(missing_ok=True)

    def commands(self, word: str) -> list[str]:
        return [r for r in self.requests if r.startswith(word)]

    def execute(self, request: str) -> str:
        with self.lock:
            first, _, rest = request.partition("\n")
            self.requests.append(request)
            words = first.split()
            if first == "show info":
                return (
                    f"Name: HAProxy\nVersion: 2.6.12\nPid: {self.pid}\nUptime_sec: 5\n"
                    f"Start_time_sec: {self.start_time}\n\n"
                )
            if words[-1] != self.map_file and not (words[-1] == "<<" and words[-2] == self.map_file):
                return "Unknown map identifier. Please use #<id> or <file>.\n\n"
            if words[:2] == ["prepare", "map"]:
                self.next_ver += 1
                self.versions[self.next_ver] = []
                return f"New version created: {self.next_ver}\n\n"
            ver = int(words[2][1:]) if len(words) > 2 and words[2].startswith("@") else None
            if ver is not None and ver not in self.versions:
                return "Version number in the future, please use 'prepare map' before.\n\n"
            if words[:2] == ["add", "map"] and words[-1] == "<<":
                if self.fail_add:
                    return "'999.0.0.0/8' is not a valid IPv4 or IPv6 address.\n\n"
                for line in rest.splitlines():
                    if line:
                        key, value = line.split(" ", 1)
                        self.versions[ver].append((key, value))
                return "\n"
            if words[:2] == ["show", "map"]:
                entries = self.versions[ver] if ver is not None else self.current
                return "".join(f"0x{i + 1:x} {k} {v}\n" for i, (k, v) in enumerate(entries)) + "\n"
            if words[:2] == ["commit", "map"]:
                self.current = self.versions.pop(ver)
                self.versions = {v: e for v, e in self.versions.items() if v > ver}
                return "\n"
            if words[:2] == ["clear", "map"]:
                self.versions.pop(ver, None)
                return "\n"
            return "Unknown command.\n\n"


@pytest.fixture
def short_tmp() -> Path:
    # UNIX socket paths must stay under 108 bytes; pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="gns-") as d:
        yield Path(d)


@pytest.fixture
def haproxy(short_tmp: Path) -> FakeHAProxy:
    fake = FakeHAProxy(short_tmp / "admin.sock", str(short_tmp / "gns.map"))
    yield fake
    fake.close()


def many_entries(n: int, cell: str = "cell-a") -> tuple[tuple[str, str], ...]:
    return tuple((f"{gns.int_to_ipv4(i * 256)}/24", cell) for i in range(n))


def test_payload_batches_stay_under_the_limit_and_keep_order() -> None:
    entries = many_entries(3000)
    command = "add map @1 /var/lib/hivestack/gns/gns.map"
    batches = gns.payload_batches(command, entries)
    assert len(batches) > 1
    assert [tuple(line.split(" ", 1)) for batch in batches for line in batch] == list(entries)
    for batch in batches:
        request = command + " <<\n" + "".join(f"{line}\n" for line in batch) + "\n"
        assert len(request.encode()) <= gns.PAYLOAD_MAX_BYTES < FakeHAProxy.BUFSIZE
    assert gns.payload_batches(command, []) == []


def test_replace_map_is_one_versioned_transaction(haproxy: FakeHAProxy) -> None:
    haproxy.current = [("0.0.0.0/0", "cell-c")]
    rt = gns.HAProxyRuntime(str(haproxy.path))
    entries = many_entries(3000, "cell-b")
    sent = rt.replace_map(haproxy.map_file, entries)
    adds = haproxy.commands("add map")
    assert all(a.startswith(f"add map @1 {haproxy.map_file} <<\n") for a in adds)
    assert sent == len(haproxy.requests) == 1 + len(adds) + 2  # prepare, adds, show map @1, commit
    assert haproxy.requests[0] == f"prepare map {haproxy.map_file}\n"
    assert haproxy.requests[-2] == f"show map @1 {haproxy.map_file}\n"
    assert haproxy.requests[-1] == f"commit map @1 {haproxy.map_file}\n"
    assert 3000 * 20 // gns.PAYLOAD_MAX_BYTES <= len(adds) <= 3000 * 25 // gns.PAYLOAD_MAX_BYTES + 1
    assert haproxy.current == list(entries)
    assert rt.show_entries(haproxy.map_file) == list(entries)
    assert rt.identity() == ("4242", "1700000000")


def test_replace_map_with_no_entries_empties_the_map(haproxy: FakeHAProxy) -> None:
    haproxy.current = [("0.0.0.0/0", "cell-c")]
    gns.HAProxyRuntime(str(haproxy.path)).replace_map(haproxy.map_file, ())
    assert haproxy.current == [] and not haproxy.commands("add")


def test_replace_map_failure_commits_nothing(haproxy: FakeHAProxy) -> None:
    haproxy.current = [("0.0.0.0/0", "cell-c")]
    haproxy.fail_add = True
    rt = gns.HAProxyRuntime(str(haproxy.path))
    with pytest.raises(gns.HAProxyError, match="not a valid IPv4"):
        rt.replace_map(haproxy.map_file, many_entries(10))
    assert not haproxy.commands("commit")
    assert haproxy.requests[-1] == f"clear map @1 {haproxy.map_file}\n"
    assert haproxy.current == [("0.0.0.0/0", "cell-c")]
    with pytest.raises(gns.HAProxyError, match="Unknown map identifier"):
        rt.replace_map("/not/the/map", many_entries(1))


def test_oversized_request_is_detected(haproxy: FakeHAProxy) -> None:
    rt = gns.HAProxyRuntime(str(haproxy.path))
    lines = [f"{k} {v}" for k, v in many_entries(2000)]
    with pytest.raises(gns.HAProxyError, match=r"larger than tune\.bufsize"):
        rt.request(f"add map @1 {haproxy.map_file}", lines)


def test_unreachable_socket(short_tmp: Path) -> None:
    with pytest.raises(gns.HAProxyError) as err:
        gns.HAProxyRuntime(str(short_tmp / "nothing.sock")).identity()
    assert err.value.unreachable


# ---------------------------------------------------------------- the agent with fakes


class FakeEtcd:
    def __init__(self, items: list[tuple[str, str]]) -> None:
        self.items = items
        self.revision = 1
        self.fail = False

    def set(self, items: list[tuple[str, str]]) -> None:
        self.items = items
        self.revision += 1

    def snapshot(self, stop: object = None) -> object:
        if self.fail:
            raise gns.EtcdError("etcdctl get exited 1: Error: context deadline exceeded")
        return gns.parse_snapshot(etcd_json(self.items, self.revision))


def make_agent(short_tmp: Path, haproxy: FakeHAProxy, etcd: FakeEtcd) -> object:
    cfg = gns.parse_config(
        config_doc(short_tmp, haproxy_socket=str(haproxy.path), map_file=haproxy.map_file, ca_file="", user="")
    )
    return gns.Agent(cfg, etcd=etcd, runtime=gns.HAProxyRuntime(str(haproxy.path)))


def test_agent_applies_skips_unchanged_and_logs_moves(
    short_tmp: Path, haproxy: FakeHAProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    etcd = FakeEtcd([kv(0, 10000, "cell-a"), kv(10000, 30000, "cell-b")])
    agent = make_agent(short_tmp, haproxy, etcd)
    assert agent.sync("startup", force=True)
    expected = gns.render_entries(gns.validate_ranges(etcd.items, PREFIX, CELLS))
    assert tuple(haproxy.current) == expected and len(expected) == 17
    assert Path(haproxy.map_file).read_text() == gns.render_map_file(expected)
    out = capsys.readouterr().out
    assert "initial map: [0,10000) none->cell-a; [10000,30000) none->cell-b" in out
    assert re.search(r"apply \d+\.\d ms", out)

    before = len(haproxy.requests)
    etcd.revision += 1  # another key changed elsewhere: same ranges, nothing to do
    assert agent.sync("etcd watch")
    assert len(haproxy.requests) == before and capsys.readouterr().out == ""

    etcd.set([kv(0, 10000, "cell-a"), kv(10000, 30000, "cell-c")])
    assert agent.sync("etcd watch")
    out = capsys.readouterr().out
    assert "moved: [10000,30000) cell-b->cell-c" in out and f"revision {etcd.revision}" in out
    assert ("0.0.39.16/28", "cell-c") in haproxy.current
    assert "0.0.39.16/28 cell-c\n" in Path(haproxy.map_file).read_text()


def test_agent_keeps_the_applied_map_on_an_invalid_snapshot(
    short_tmp: Path, haproxy: FakeHAProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    etcd = FakeEtcd([kv(0, 10000, "cell-a")])
    agent = make_agent(short_tmp, haproxy, etcd)
    agent.sync("startup", force=True)
    applied, text = list(haproxy.current), Path(haproxy.map_file).read_text()
    capsys.readouterr()
    etcd.set([kv(0, 10000, "cell-a"), kv(5000, 6000, "cell-b")])
    assert not agent.sync("etcd watch")
    out = capsys.readouterr().out
    assert "ERROR: invalid snapshot" in out and "key /hivestack/gns/ranges/0000005000" in out
    assert "keeping the applied map" in out
    assert haproxy.current == applied and Path(haproxy.map_file).read_text() == text
    assert agent.sync("periodic resync") is False and capsys.readouterr().out == ""  # logged once per minute
    etcd.set([kv(0, 10000, "cell-a")])
    assert agent.sync("etcd watch")
    assert "valid again" in capsys.readouterr().out


def test_agent_writes_the_file_when_haproxy_is_down_and_reapplies_on_restart(
    short_tmp: Path, haproxy: FakeHAProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    etcd = FakeEtcd([kv(0, 10000, "cell-a")])
    agent = make_agent(short_tmp, haproxy, etcd)
    agent.sync("startup", force=True)
    real_path = agent.runtime.path
    agent.runtime.path = str(short_tmp / "down.sock")  # HAProxy stopped
    agent.check_haproxy()
    etcd.set([kv(0, 10000, "cell-b")])
    assert not agent.sync("etcd watch")
    out = capsys.readouterr().out
    assert "HAProxy runtime API unreachable" in out and "map file" in out and "HAProxy not updated" in out
    assert "0.0.0.0/19 cell-b" in Path(haproxy.map_file).read_text()
    assert agent.retry_at is not None and agent.retry_kind == "reconcile"

    agent.runtime.path = real_path  # HAProxy back, a new process that loaded an older file
    haproxy.pid += 1
    haproxy.current = [("0.0.0.0/19", "cell-a")]
    agent.check_haproxy()
    out = capsys.readouterr().out
    assert "HAProxy runtime API reachable again (pid 4243)" in out
    assert "(haproxy restarted)" in out and "[0,10000) cell-a->cell-b" in out
    assert ("0.0.0.0/19", "cell-b") in haproxy.current and agent.retry_at is None

    before = len(haproxy.requests)
    agent.check_haproxy()  # same process: only `show info`
    assert haproxy.requests[before:] == ["show info\n"]


def test_agent_repairs_drift_on_periodic_resync(
    short_tmp: Path, haproxy: FakeHAProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    etcd = FakeEtcd([kv(0, 10000, "cell-a")])
    agent = make_agent(short_tmp, haproxy, etcd)
    agent.sync("startup", force=True)
    haproxy.current = []  # someone ran `clear map`
    Path(haproxy.map_file).write_text("# stale\n")
    assert agent.sync("periodic resync", verify=True)
    assert "live map differs" in capsys.readouterr().out
    assert tuple(haproxy.current) == agent.desired.entries
    assert Path(haproxy.map_file).read_text() == agent.desired.text


def test_agent_etcd_failure_keeps_map_and_schedules_retry(
    short_tmp: Path, haproxy: FakeHAProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    etcd = FakeEtcd([kv(0, 10000, "cell-a")])
    agent = make_agent(short_tmp, haproxy, etcd)
    agent.sync("startup", force=True)
    etcd.fail = True
    assert not agent.sync("periodic resync")
    assert "etcd snapshot failed" in capsys.readouterr().out
    assert agent.retry_kind == "sync" and agent.retry_at is not None
    assert haproxy.current and agent.desired is not None
    etcd.fail = False
    assert agent.sync("retry") and agent.retry_at is None


# ---------------------------------------------------------------- the daemon, end to end with fakes


def test_daemon_follows_the_watch_and_stops_cleanly_on_sigterm(
    short_tmp: Path, haproxy: FakeHAProxy, fake_etcdctl: Path
) -> None:
    (fake_etcdctl / "snapshot.json").write_text(etcd_json([kv(0, 10000, "cell-a")], revision=5))
    (short_tmp / "agent.password").write_text("Zq81-agent-pw\n")  # the watch gets it on stdin and prompts for it
    config = short_tmp / "agent.json"
    config.write_text(
        json.dumps(
            config_doc(
                short_tmp,
                etcd_endpoints=["http://127.0.0.1:1"],
                ca_file="",
                haproxy_socket=str(haproxy.path),
                map_file=haproxy.map_file,
                etcdctl=str(fake_etcdctl / "etcdctl"),
            )
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(AGENT_PATH), "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def wait_for(predicate: object, what: str) -> None:
            deadline = time.monotonic() + 10
            while not predicate():
                assert proc.poll() is None, f"agent exited while waiting for {what}"
                assert time.monotonic() < deadline, f"timed out waiting for {what}"
                time.sleep(0.02)

        wait_for(lambda: ("0.0.0.0/19", "cell-a") in haproxy.current, "the initial apply")
        # The fake watch writes its pid file non-atomically: wait for the content, not the file.
        wait_for(
            lambda: (fake_etcdctl / "watch.pid").exists() and (fake_etcdctl / "watch.pid").read_text(), "the watch"
        )
        watch_pid = int((fake_etcdctl / "watch.pid").read_text())
        calls = [json.loads(line) for line in (fake_etcdctl / "calls").read_text().splitlines()]
        watch = next(c for c in calls if c["argv"][0] == "watch")
        assert watch["argv"][:3] == ["watch", "--prefix", PREFIX] and watch["argv"][-2:] == ["--rev", "6"]
        assert watch["cacert"] is None and watch["endpoints"] == "http://127.0.0.1:1"
        assert (watch["user"], watch["password"]) == ("gns-agent", "Zq81-agent-pw")

        (fake_etcdctl / "snapshot.json").write_text(etcd_json([kv(0, 10000, "cell-c")], revision=6))
        (fake_etcdctl / "trigger").write_text("1")
        wait_for(lambda: ("0.0.0.0/19", "cell-c") in haproxy.current, "the watched change")
        # The file is written right after the runtime apply.
        wait_for(lambda: "0.0.0.0/19 cell-c" in Path(haproxy.map_file).read_text(), "the map file")

        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        if (fake_etcdctl / "watch.pid").exists():  # never leave a fake watch running if the agent failed to stop it
            with contextlib.suppress(ProcessLookupError):
                os.kill(int((fake_etcdctl / "watch.pid").read_text()), signal.SIGKILL)
    assert proc.returncode == 0, out
    assert "moved: [0,10000) cell-a->cell-c" in out and "stopping (SIGTERM)" in out
    with pytest.raises(ProcessLookupError):  # the watch child is gone (reaped by the agent)
        os.kill(watch_pid, 0)


def test_once_writes_the_map_file_even_without_haproxy(short_tmp: Path, fake_etcdctl: Path) -> None:
    (fake_etcdctl / "snapshot.json").write_text(etcd_json([kv(0, 10000, "cell-a")], revision=5))
    config = short_tmp / "agent.json"
    map_file = short_tmp / "gns.map"
    config.write_text(
        json.dumps(
            config_doc(
                short_tmp,
                ca_file="",
                user="",
                password_file="",
                haproxy_socket=str(short_tmp / "absent.sock"),
                map_file=str(map_file),
                etcdctl=str(fake_etcdctl / "etcdctl"),
            )
        )
    )
    result = subprocess.run(
        [sys.executable, str(AGENT_PATH), "--config", str(config), "--once"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout
    assert "0.0.0.0/19 cell-a\n" in map_file.read_text()
    (fake_etcdctl / "fail").touch()
    map_file.unlink()
    result = subprocess.run(
        [sys.executable, str(AGENT_PATH), "--config", str(config), "--once"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1 and "etcd snapshot failed" in result.stdout


def test_agent_file_is_executable_stdlib_only() -> None:
    text = AGENT_PATH.read_text()
    assert text.startswith("#!/usr/bin/python3\n")
    assert AGENT_PATH.stat().st_mode & 0o111 == 0o111
    imported = set(re.findall(r"^(?:from|import) (\w+)", text, re.MULTILINE))
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported - set(sys.stdlib_module_names)
