"""The reference ledger service (playbooks/roles/ledger/files/hivestack_ledger.py): request parsing and validation,
request hashing, the engine's error classifier, the transaction runner's retries, and the HTTP layer's contract
(JSON everywhere, identity fields, 421 / 400 / 404 / 405 / 503) with a fake engine. No database."""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import json
import socket
import ssl
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from hivestack.components.tls import issue, make_ca

pytestmark = pytest.mark.unit

SERVICE = Path(__file__).resolve().parents[2] / "playbooks" / "roles" / "ledger" / "files" / "hivestack_ledger.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hivestack_ledger", SERVICE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


L = _load()

CONFIG = {
    "cell": "cell-a",
    "dc": "dc-a",
    "host": "a-edge-1",
    "listen": "127.0.0.1",
    "port": 8100,
    "engine": "galera",
    "db": {
        "host": "10.80.1.10",
        "port": 6033,
        "user": "ledger",
        "password_file": "/etc/hivestack/ledger/cell-a.password",
        "database": "ledger",
        "ca_file": "/etc/hivestack/tls/db-cell-a/client/ca.pem",
        "server_name": "cell-a.db.lab",
    },
    "tls": {
        "cert_file": "/etc/hivestack/tls/ledger/server/host.pem",
        "key_file": "/etc/hivestack/tls/ledger/server/host-key.pem",
        "client_ca_file": "/etc/hivestack/tls/ledger/server/ca.pem",
    },
}


def api_error(fn: Any, *args: Any) -> Any:
    with pytest.raises(L.ApiError) as info:
        fn(*args)
    return info.value


# ---------------------------------------------------------------- config


def test_config_parses_the_documented_shape():
    cfg = L.parse_config(CONFIG)
    assert (cfg.cell, cfg.dc, cfg.host, cfg.port, cfg.engine) == ("cell-a", "dc-a", "a-edge-1", 8100, "galera")
    assert cfg.db.port == 6033 and cfg.db.ca_file == "/etc/hivestack/tls/db-cell-a/client/ca.pem"
    assert cfg.db.server_name == "cell-a.db.lab"
    assert cfg.tls.client_ca_file == "/etc/hivestack/tls/ledger/server/ca.pem"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cell": None}, "missing cell"),
        ({"port": 0}, "port must be a port number"),
        ({"port": True}, "port must be a port number"),
        ({"engine": "oracle"}, "engine 'oracle'"),
        ({"host": "a edge"}, "host must match"),
        ({"db": {**CONFIG["db"], "ca_file": ""}}, "db.ca_file must be a non-empty string"),
        ({"db": {k: v for k, v in CONFIG["db"].items() if k != "password_file"}}, "missing db.password_file"),
        ({"db": {k: v for k, v in CONFIG["db"].items() if k != "server_name"}}, "missing db.server_name"),
        ({"tls": None}, "missing tls"),
        ({"tls": {**CONFIG["tls"], "client_ca_file": ""}}, "tls.client_ca_file must be a non-empty string"),
    ],
)
def test_config_errors_name_the_field(change, message):
    raw = {**CONFIG, **change}
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(L.ConfigError, match=message):
        L.parse_config(raw)


def test_config_file_and_password_file(tmp_path):
    (tmp_path / "pw").write_text("s3cret \n")
    raw = {**CONFIG, "db": {**CONFIG["db"], "password_file": str(tmp_path / "pw")}}
    (tmp_path / "cell-a.json").write_text(json.dumps(raw))
    cfg = L.load_config(str(tmp_path / "cell-a.json"))
    assert cfg.db.password() == "s3cret "  # only the line end is stripped
    with pytest.raises(L.ConfigError, match="cannot read"):
        L.load_config(str(tmp_path / "missing.json"))


# ---------------------------------------------------------------- request parsing


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("42", 42), ("4294967295", 2**32 - 1)])
def test_customer_ids(text, value):
    assert L.parse_customer(text) == value


@pytest.mark.parametrize("text", ["", "-1", "042", "4294967296", "99999999999", "1e3", "abc", " 1", "+1"])
def test_bad_customer_ids_are_400(text):
    err = api_error(L.parse_customer, text)
    assert err.status == 400 and "customer id" in err.body["error"]


GOOD = {"idempotency_key": "run-dc-a-0-1", "from": "load-a", "to": "load-b", "amount": 5}


def test_transfer_parses():
    req = L.parse_transfer(GOOD)
    assert (req.key, req.source, req.target, req.amount) == ("run-dc-a-0-1", "load-a", "load-b", 5)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"idempotency_key": None}, "idempotency_key"),
        ({"from": None}, "from"),
        ({"to": None}, "to"),
        ({"amount": None}, "amount"),
        ({"idempotency_key": 7}, "idempotency_key"),
        ({"idempotency_key": "has space"}, "idempotency_key"),
        ({"idempotency_key": "k" * 129}, "idempotency_key"),
        ({"from": ["a"]}, "from"),
        ({"to": "a/b"}, "to"),
        ({"to": "x" * 65}, "to"),
        ({"amount": "5"}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": 1.5}, "amount"),
        ({"amount": 0}, "amount"),
        ({"amount": -3}, "amount"),
        ({"amount": 10**16}, "amount"),
        ({"to": "load-a"}, "from and to"),
    ],
)
def test_bad_transfers_are_400_naming_the_field(change, field):
    body = {**GOOD, **change}
    body = {k: v for k, v in body.items() if v is not None}
    err = api_error(L.parse_transfer, body)
    assert err.status == 400 and field in err.body["error"]


def test_open_account_defaults_and_errors():
    assert L.parse_open_account({"account": "main"}) == ("main", 0)
    assert L.parse_open_account({"account": "main", "initial": 10}) == ("main", 10)
    assert "missing field: account" in api_error(L.parse_open_account, {"initial": 1}).body["error"]
    assert "initial" in api_error(L.parse_open_account, {"account": "m", "initial": -1}).body["error"]
    assert "initial" in api_error(L.parse_open_account, {"account": "m", "initial": "1"}).body["error"]


@pytest.mark.parametrize(
    ("raw", "message"), [(b"{", "malformed JSON"), (b"\xff", "malformed JSON"), (b"[1]", "object")]
)
def test_bodies_must_be_json_objects(raw, message):
    err = api_error(L.parse_json_object, raw)
    assert err.status == 400 and message in err.body["error"]


def test_request_hash_binds_every_field_but_the_key():
    base = L.request_hash(7, L.parse_transfer(GOOD))
    assert len(base) == 64 and int(base, 16) >= 0
    assert L.request_hash(7, L.parse_transfer({**GOOD, "idempotency_key": "other"})) == base
    for change in ({"amount": 6}, {"from": "load-c"}, {"to": "load-c"}):
        assert L.request_hash(7, L.parse_transfer({**GOOD, **change})) != base
    assert L.request_hash(8, L.parse_transfer(GOOD)) != base


def test_times_are_utc_iso_with_microseconds():
    naive = datetime(2026, 1, 2, 3, 4, 5, 6)
    assert L.format_time(naive) == "2026-01-02T03:04:05.000006Z"
    aware = datetime(2026, 1, 2, 5, 4, 5, 6, tzinfo=timezone(timedelta(hours=2)))
    assert L.format_time(aware) == "2026-01-02T03:04:05.000006Z"
    assert L.format_time(datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)) == "2026-01-02T03:04:05.000006Z"


def test_schema_has_explicit_primary_keys_and_the_engine_options():
    tables = L.schema(L.GaleraEngine.table_options)
    assert len(tables) == 2
    assert all("CREATE TABLE IF NOT EXISTS" in t and "PRIMARY KEY" in t and "ENGINE=InnoDB" in t for t in tables)
    assert "PRIMARY KEY (customer, account)" in tables[0] and "PRIMARY KEY (idempotency_key)" in tables[1]
    assert "TIMESTAMP(6)" in tables[1] and "request_hash CHAR(64)" in tables[1]


# ---------------------------------------------------------------- routing


def test_routes():
    assert L.route("GET", "/health") == ("health", [])
    assert L.route("POST", "/v1/customers/7/accounts") == ("open_account", ["7"])
    assert L.route("GET", "/v1/customers/7/accounts/main") == ("get_account", ["7", "main"])
    assert L.route("HEAD", "/v1/customers/7/accounts/ma%69n") == ("get_account", ["7", "main"])
    assert L.route("POST", "/v1/customers/7/transfers") == ("transfer", ["7"])
    assert api_error(L.route, "GET", "/v1/customers/7").status == 404
    assert api_error(L.route, "GET", "/health/").status == 404
    err = api_error(L.route, "GET", "/v1/customers/7/transfers")
    assert err.status == 405 and err.body["allow"] == ["POST"]


# ---------------------------------------------------------------- engine classifier


class FakeMySQLError(Exception):
    """pymysql's errors carry (errno, message) as their arguments."""


@pytest.fixture
def galera():
    return L.GaleraEngine(L.parse_config(CONFIG).db)


@pytest.mark.parametrize("errno", [1213, 1205])
def test_deadlocks_and_lock_waits_are_retryable(galera, errno):
    exc = FakeMySQLError(errno, "Deadlock found when trying to get lock; try restarting transaction")
    assert galera.is_retryable(exc) and not galera.is_unavailable(exc) and not galera.is_duplicate(exc)


@pytest.mark.parametrize("errno", [0, 1047, 1053, 2003, 2006, 2013, 2026, 4031])
def test_lost_or_refusing_databases_are_unavailable(galera, errno):
    exc = FakeMySQLError(errno, "gone")
    assert galera.is_unavailable(exc) and not galera.is_retryable(exc)


def test_os_errors_are_unavailable_and_have_no_mysql_errno(galera):
    exc = ConnectionRefusedError(1213, "an OS errno that happens to look like a deadlock")
    assert L.mysql_errno(exc) is None
    assert galera.is_unavailable(exc) and not galera.is_retryable(exc)
    assert galera.is_unavailable(TimeoutError("timed out"))


def test_other_errors_are_neither(galera):
    for exc in (FakeMySQLError(1146, "Table doesn't exist"), ValueError("x"), FakeMySQLError("text"), KeyError()):
        assert not galera.is_retryable(exc) and not galera.is_unavailable(exc) and not galera.is_duplicate(exc)
    assert galera.is_duplicate(FakeMySQLError(1062, "Duplicate entry"))
    assert L.mysql_errno(FakeMySQLError(True, "bool is not an errno")) is None


def pem_pair(ca: tuple[str, str], name: str, address: str, usage: str, *dns: str) -> dict[str, str]:
    return issue(*ca, {"common_name": name, "dns": [name, *dns], "ips": [address], "usage": usage})


def write_pair(directory: Path, stem: str, pair: dict[str, str]) -> tuple[Path, Path]:
    (directory / f"{stem}.pem").write_text(pair["cert"])
    (directory / f"{stem}-key.pem").write_text(pair["key"])
    return directory / f"{stem}.pem", directory / f"{stem}-key.pem"


def database_answers(tmp_path: Path, pair: dict[str, str]) -> socket.socket:
    """A TLS server with `pair` on one end of a socket pair; the other end, connected as pymysql would be (to an
    address that is the gateway's, not a member's)."""
    cert, key = write_pair(tmp_path, "server", pair)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    left, right = socket.socketpair()
    left.settimeout(5)
    right.settimeout(5)

    def serve() -> None:
        with contextlib.suppress(ssl.SSLError, OSError), server.wrap_socket(left, server_side=True) as tls:
            tls.sendall(b"ok")

    threading.Thread(target=serve, daemon=True).start()
    return right


def test_galera_tls_context_checks_the_ca_and_the_cells_database_name(tmp_path):
    ca = make_ca("db-cell-a CA")
    (tmp_path / "ca.pem").write_text(ca[0])
    engine = L.GaleraEngine(L.DBConfig("10.80.1.10", 6032, "u", "pw", "d", str(tmp_path / "ca.pem"), "cell-a.db.lab"))
    ctx = engine.tls_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert engine.tls_context() is ctx
    member = pem_pair(ca, "a-db-1", "10.80.1.11", "server", "cell-a.db.lab")
    # pymysql wraps with the host it dialled (the gateway): the name checked is still the cell's database.
    with ctx.wrap_socket(database_answers(tmp_path, member), server_hostname="10.80.1.10") as tls:
        assert tls.recv(2) == b"ok"
    other_cell = pem_pair(ca, "a-db-1", "10.80.1.11", "server", "cell-b.db.lab")
    with pytest.raises(ssl.SSLCertVerificationError, match=r"cell-a\.db\.lab"):
        ctx.wrap_socket(database_answers(tmp_path, other_cell), server_hostname="10.80.1.10")
    stranger = pem_pair(make_ca("another CA"), "a-db-1", "10.80.1.11", "server", "cell-a.db.lab")
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        ctx.wrap_socket(database_answers(tmp_path, stranger), server_hostname="10.80.1.10")


# ---------------------------------------------------------------- transaction runner (fake engine)


class FakeCursor:
    def __init__(self, conn: FakeConn) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Any = None) -> None:
        self.conn.statements.append(sql)

    def fetchone(self) -> Any:
        return ("db-member-1",)


class FakeConn:
    def __init__(self) -> None:
        self.statements: list[str] = []
        self.commits = 0
        self.rollbacks = 0
        self.closed = False

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)

    def commit(self) -> None:
        self.commits += 1

    def rollback(self) -> None:
        self.rollbacks += 1

    def close(self) -> None:
        self.closed = True


class FakeEngine(L.GaleraEngine):
    def __init__(self, refuse: bool = False) -> None:
        super().__init__(L.parse_config(CONFIG).db)
        self.connections: list[FakeConn] = []
        self.refuse = refuse

    def connect(self) -> FakeConn:
        if self.refuse:
            raise FakeMySQLError(2003, "Can't connect to MySQL server (Connection refused)")
        self.connections.append(FakeConn())
        return self.connections[-1]


@pytest.fixture
def ledger():
    ledger = L.Ledger(L.parse_config(CONFIG), FakeEngine())
    ledger.schema_ready.set()
    return ledger


def failing(*errors: BaseException, result: tuple[int, dict] = (201, {"done": True})) -> Any:
    pending = list(errors)

    def work(cur: Any, member: str) -> tuple[int, dict]:
        if pending:
            raise pending.pop(0)
        return result[0], dict(result[1])

    return work


def test_transact_commits_2xx_and_reports_the_member(ledger):
    status, body = ledger.transact(failing())
    assert (status, body) == (201, {"done": True, "db_member": "db-member-1"})
    conn = ledger.engine.connections[0]
    assert conn.statements[0] == "SELECT @@wsrep_node_name" and conn.commits == 1 and conn.rollbacks == 0
    ledger.transact(failing())
    assert len(ledger.engine.connections) == 1  # one connection per thread, reused


def test_transact_rolls_back_4xx(ledger):
    status, body = ledger.transact(failing(result=(422, {"error": "insufficient funds"})))
    assert status == 422 and body["db_member"] == "db-member-1"
    conn = ledger.engine.connections[0]
    assert conn.commits == 0 and conn.rollbacks == 1


def test_transact_retries_deadlocks_and_duplicate_races(ledger):
    work = failing(FakeMySQLError(1213, "deadlock"), FakeMySQLError(1062, "dup"), FakeMySQLError(1205, "lock wait"))
    assert ledger.transact(work)[0] == 201
    conn = ledger.engine.connections[0]
    assert conn.rollbacks == 3 and conn.commits == 1 and not conn.closed


def test_transact_gives_up_after_three_retries(ledger):
    work = failing(*[FakeMySQLError(1213, "deadlock") for _ in range(4)])
    err = api_error(ledger.transact, work)
    assert err.status == 503 and "retries exhausted" in err.body["error"] and err.body["db_member"] == "db-member-1"


def test_transact_replaces_a_dead_reused_connection_once(ledger):
    ledger.transact(failing())
    first = ledger.engine.connections[0]
    assert ledger.transact(failing(FakeMySQLError(2006, "MySQL server has gone away")))[0] == 201
    assert first.closed and len(ledger.engine.connections) == 2
    with pytest.raises(L.Unavailable, match="2013"):
        ledger.transact(failing(FakeMySQLError(2013, "lost"), FakeMySQLError(2013, "lost")))
    assert ledger.state.up is False


def test_transact_on_a_fresh_connection_fails_fast(ledger):
    with pytest.raises(L.Unavailable):
        ledger.transact(failing(FakeMySQLError(2013, "lost")))
    assert len(ledger.engine.connections) == 1
    ledger.engine.refuse = True
    with pytest.raises(L.Unavailable, match="2003"):
        ledger.transact(failing())


def test_transact_drops_the_connection_after_an_unknown_error(ledger):
    with pytest.raises(ZeroDivisionError):
        ledger.transact(failing(ZeroDivisionError()))
    assert ledger.engine.connections[0].closed


def test_transact_before_the_schema_is_unavailable():
    ledger = L.Ledger(L.parse_config(CONFIG), FakeEngine())
    with pytest.raises(L.Unavailable, match="schema"):
        ledger.transact(failing())


def test_db_state_logs_changes_only(capsys):
    state = L.DBState()
    for up in (True, True, False, False, True):
        state.mark(up, "refused")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("hivestack-ledger: ")[1] for line in lines] == [
        "database available",
        "database unavailable: refused",
        "database available",
    ]


# ---------------------------------------------------------------- HTTP layer (fake engine, no schema: 503s)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Any]:
    """The ledger's CA with the ledger's certificate and a gateway's client certificate, and a stranger's."""
    directory = tmp_path_factory.mktemp("ledger-tls")
    ca = make_ca("ledger CA")
    (directory / "ca.pem").write_text(ca[0])
    return {
        "ca": directory / "ca.pem",
        "server": write_pair(directory, "server", pem_pair(ca, "a-edge-1", "127.0.0.1", "server")),
        "gateway": write_pair(directory, "gateway", pem_pair(ca, "gateway@a-edge-1", "127.0.0.1", "client")),
        "stranger": write_pair(directory, "stranger", pem_pair(make_ca("x"), "x", "127.0.0.1", "client")),
        "another-ledger": write_pair(directory, "other", pem_pair(ca, "b-edge-1", "127.0.0.1", "server")),
    }


def client_tls(pki: dict[str, Any], as_: str | None = "gateway") -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=pki["ca"])
    if as_:
        ctx.load_cert_chain(*pki[as_])
    return ctx


@pytest.fixture
def server(pki) -> Iterator[tuple[str, int, ssl.SSLContext]]:
    cert, key = pki["server"]
    tls = L.TLSConfig(str(cert), str(key), str(pki["ca"]))
    cfg = L.Config(**{**L.parse_config(CONFIG).__dict__, "port": 0, "tls": tls})
    ledger = L.Ledger(cfg, FakeEngine(refuse=True))
    srv = L.make_server(ledger)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield (*srv.server_address[:2], client_tls(pki))
    srv.shutdown()
    srv.server_close()


def call(
    address: tuple[str, int, ssl.SSLContext], method: str, path: str, body: Any = None, headers: Any = None
) -> Any:
    conn = http.client.HTTPSConnection(*address[:2], timeout=5, context=address[2])
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    conn.request(method, path, body=data, headers=headers or {})
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    assert resp.getheader("Content-Type") == "application/json"
    return resp.status, (json.loads(raw) if raw else None), resp


IDENTITY = {"cell": "cell-a", "dc": "dc-a", "host": "a-edge-1"}


def test_health_does_not_touch_the_database(server):
    status, body, _ = call(server, "GET", "/health")
    assert status == 200 and body == {"status": "ok", "db": "unknown", **IDENTITY}


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "message"),
    [
        ("GET", "/nope", None, {}, 404, "no route"),
        ("DELETE", "/v1/customers/1/transfers", None, {}, 405, "not allowed"),
        ("BREW", "/health", None, {}, 405, "not allowed"),
        ("POST", "/v1/customers/01/transfers", GOOD, {}, 400, "customer id"),
        ("POST", "/v1/customers/1/transfers", b"{nope", {}, 400, "malformed JSON"),
        ("POST", "/v1/customers/1/transfers", {**GOOD, "amount": "1"}, {}, 400, "amount"),
        ("POST", "/v1/customers/1/accounts", {}, {}, 400, "account"),
        ("GET", "/v1/customers/1/accounts/a%2Fb", None, {}, 400, "account"),
        ("POST", "/v1/customers/1/transfers", GOOD, {"X-Hivestack-Cell": "cell-b"}, 421, "misdirected"),
        ("POST", "/v1/customers/1/transfers", GOOD, {"X-Hivestack-Cell": "cell-a"}, 503, "unavailable"),
        ("POST", "/v1/customers/1/transfers", GOOD, {}, 503, "unavailable"),
        ("GET", "/v1/customers/1/accounts/main", None, {}, 503, "unavailable"),
    ],
)
def test_http_errors_are_json_with_identity(server, method, path, body, headers, status, message):
    got, payload, resp = call(server, method, path, body, headers)
    assert got == status and message in payload["error"]
    assert {k: payload[k] for k in IDENTITY} == IDENTITY
    assert "db_member" not in payload  # no database transaction ran
    if status == 405 and method != "BREW":
        assert resp.getheader("Allow") == "POST"
    if status == 421:
        assert payload["error"] == "misdirected: customer routed to cell cell-b, this is cell cell-a"
    if status == 503:
        assert payload["error"] == "cell database unavailable"


def test_only_gateways_with_a_certificate_of_the_ledgers_ca_are_served(server, pki):
    host, port, _ = server
    assert call(server, "GET", "/health")[0] == 200
    for who in ("stranger", "another-ledger", None):  # another CA; a server certificate; none at all
        conn = http.client.HTTPSConnection(host, port, timeout=5, context=client_tls(pki, who))
        with pytest.raises((ssl.SSLError, ConnectionError)):
            conn.request("GET", "/health")
            conn.getresponse()
        conn.close()
    plain = http.client.HTTPConnection(host, port, timeout=5)
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        plain.request("GET", "/health")
        plain.getresponse()
    plain.close()
    assert call(server, "GET", "/health")[0] == 200  # refusals did not hurt the server


def test_keep_alive_and_chunked_bodies(server):
    conn = http.client.HTTPSConnection(*server[:2], timeout=5, context=server[2])
    for _ in range(3):
        conn.request("GET", "/health")
        resp = conn.getresponse()
        assert resp.status == 200 and not resp.will_close
        resp.read()
    sock = conn.sock
    conn.request("POST", "/v1/customers/1/transfers", body=iter([b'{"amount": ', b"true}"]), encode_chunked=True)
    resp = conn.getresponse()
    assert resp.status == 400 and "missing field: idempotency_key" in json.loads(resp.read())["error"]
    conn.request("HEAD", "/health")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read() == b""
    assert conn.sock is sock  # every answer kept the connection
    conn.close()
