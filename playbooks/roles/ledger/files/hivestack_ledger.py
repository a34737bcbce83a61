#!/usr/bin/env python3
"""Hivestack reference ledger: one instance per cell per app host, proving routing and data safety.

    python3 hivestack_ledger.py --config /etc/hivestack/ledger/<cell>.json

Runs on Debian 12 with python3.11's standard library and python3-pymysql only. The HTTP and business layers use
portable SQL with `%s` placeholders; everything specific to a database engine and its driver sits in an engine
adapter chosen by the config's "engine" (only "galera" today): connect(), is_retryable(), is_unavailable(),
is_duplicate(), member_query() and the DDL table options.

Routes (every response is JSON carrying "cell", "dc", "host", plus "db_member" when a database transaction ran):
    GET  /health                                  process health only, never touches the database
    POST /v1/customers/<id>/accounts              {"account": str, "initial": int >= 0} -> 201 new, 200 existing
    GET  /v1/customers/<id>/accounts/<account>    200 balance, 404 unknown
    POST /v1/customers/<id>/transfers             {"idempotency_key", "from", "to", "amount" > 0} -> 201 new,
                                                  200 replay, 409 key reused differently, 404, 422 no funds
A request whose X-Hivestack-Cell header names another cell gets 421; an unreachable database gives a fast 503.

HTTPS only: the ledger presents its certificate (config "tls") and serves only clients with a certificate of the
ledger's CA, the gateways'. It reaches its cell's database over TLS too, checking the certificate for the cell's
database name ("db.server_name") because it connects through a gateway's TCP proxy.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import random
import re
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, Protocol
from urllib.parse import unquote, urlsplit

MAX_CUSTOMER = 2**32  # exclusive
MAX_AMOUNT = 10**15  # keeps any realistic sum of balances far inside BIGINT
MAX_BODY = 64 * 1024
MAX_RETRIES = 3  # re-runs of a transaction after a deadlock / certification failure / duplicate-key race
RETRY_BUDGET_S = 2.0  # no new attempt starts after this long, so a request never outlives a client's 5 s timeout
RECONNECT_BUDGET_S = 1.0  # a reused connection that failed this fast is replaced once before answering 503
CONNECT_TIMEOUT_S = 1
IO_TIMEOUT_S = 3
LOCK_WAIT_TIMEOUT_S = 1  # below IO_TIMEOUT_S: a lock wait ends as a retryable error, not as a lost connection
IDLE_KEEPALIVE_S = 75  # above the usual 60 s idle timeout of a gateway's connection pool

NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
KEY_RE = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no spaces
CUSTOMER_RE = re.compile(r"0|[1-9][0-9]{0,9}")  # canonical decimal: the gateway routes on the same text

UNAVAILABLE = "cell database unavailable"


def log(msg: str) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    print(f"{stamp}Z hivestack-ledger: {msg}", flush=True)


# ---------------------------------------------------------------- config


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class DBConfig:
    host: str
    port: int
    user: str
    password_file: str
    database: str
    ca_file: str
    server_name: str  # the cell's database name, which every member's certificate carries

    def password(self) -> str:
        """Read on every connect, so a rotated password file takes effect without a restart."""
        return Path(self.password_file).read_text(encoding="utf-8").rstrip("\r\n")


@dataclass(frozen=True)
class TLSConfig:
    cert_file: str
    key_file: str
    client_ca_file: str  # the CA of the gateways' client certificates: only they may call

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_file, self.key_file)
        ctx.load_verify_locations(self.client_ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx


@dataclass(frozen=True)
class Config:
    cell: str
    dc: str
    host: str
    listen: str
    port: int
    engine: str
    db: DBConfig
    tls: TLSConfig


def _field(obj: dict[str, Any], name: str, kind: type, where: str) -> Any:
    if name not in obj:
        raise ConfigError(f"config: missing {where}{name}")
    value = obj[name]
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
            raise ConfigError(f"config: {where}{name} must be a port number (1-65535)")
    elif not isinstance(value, str) or not value:
        raise ConfigError(f"config: {where}{name} must be a non-empty string")
    return value


def parse_config(raw: Any) -> Config:
    if not isinstance(raw, dict):
        raise ConfigError("config: must be a JSON object")
    db, tls = raw.get("db"), raw.get("tls")
    if not isinstance(db, dict):
        raise ConfigError("config: missing db (an object)")
    if not isinstance(tls, dict):
        raise ConfigError("config: missing tls (an object)")
    for name in ("cell", "dc", "host"):
        if not NAME_RE.fullmatch(_field(raw, name, str, "")):
            raise ConfigError(f"config: {name} must match {NAME_RE.pattern}")
    engine = _field(raw, "engine", str, "")
    if engine not in ENGINES:
        raise ConfigError(f"config: engine {engine!r} is not one of {sorted(ENGINES)}")
    return Config(
        cell=raw["cell"],
        dc=raw["dc"],
        host=raw["host"],
        listen=_field(raw, "listen", str, ""),
        port=_field(raw, "port", int, ""),
        engine=engine,
        db=DBConfig(
            host=_field(db, "host", str, "db."),
            port=_field(db, "port", int, "db."),
            user=_field(db, "user", str, "db."),
            password_file=_field(db, "password_file", str, "db."),
            database=_field(db, "database", str, "db."),
            ca_file=_field(db, "ca_file", str, "db."),
            server_name=_field(db, "server_name", str, "db."),
        ),
        tls=TLSConfig(
            cert_file=_field(tls, "cert_file", str, "tls."),
            key_file=_field(tls, "key_file", str, "tls."),
            client_ca_file=_field(tls, "client_ca_file", str, "tls."),
        ),
    )


def load_config(path: str) -> Config:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"config: cannot read {path}: {exc}") from exc
    return parse_config(raw)


# ---------------------------------------------------------------- engine adapters


class Engine(Protocol):
    """What the business layer needs from a database engine and its driver. Connections are DB-API 2.0 with
    autocommit off (the first statement opens a transaction; commit()/rollback() end it) and `%s` placeholders."""

    name: str
    table_options: str  # appended to CREATE TABLE

    def connect(self) -> Any: ...
    def is_retryable(self, exc: BaseException) -> bool: ...  # deadlock / certification failure: re-run is safe
    def is_unavailable(self, exc: BaseException) -> bool: ...  # the connection or the database is gone
    def is_duplicate(self, exc: BaseException) -> bool: ...  # a unique key raced: re-run finds the winner's row
    def member_query(self, cur: Any) -> str: ...  # name of the database member serving this transaction


def mysql_errno(exc: BaseException) -> int | None:
    """The server / client error number of a pymysql error: its first argument. OSError's first argument is an
    OS errno, not a MySQL one, so it has none."""
    if isinstance(exc, OSError) or not exc.args or isinstance(exc.args[0], bool):
        return None
    return exc.args[0] if isinstance(exc.args[0], int) else None


class NamedServerContext(ssl.SSLContext):
    """Holds the server's certificate to `server_name`, whatever address the socket was connected to: pymysql passes
    the host it dialled (the gateway's proxy), which no member's certificate names."""

    server_name = ""

    def wrap_socket(
        self,
        sock: socket.socket,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLSocket:
        return super().wrap_socket(
            sock, server_side, do_handshake_on_connect, suppress_ragged_eofs, self.server_name, session
        )


class GaleraEngine:
    """MariaDB Galera through a TCP proxy, with pymysql. TLS is mandatory: the certificate must chain to the cell's
    CA and name the cell's database (db.server_name), and a server that does not offer TLS is refused before any
    credential is sent (pymysql itself would silently carry on in plaintext)."""

    name = "galera"
    table_options = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
    RETRYABLE: ClassVar[frozenset[int]] = frozenset({1213, 1205})  # deadlock or Galera certification; lock wait
    DUPLICATE = 1062
    UNAVAILABLE: ClassVar[frozenset[int]] = frozenset(
        {
            0,  # pymysql InterfaceError(0, ''): the connection is already closed
            1040,  # too many connections
            1045,  # access denied
            1047,  # WSREP has not yet prepared node for application use (non-primary member)
            1049,  # unknown database
            1053,  # server shutdown in progress
            1077,
            1152,
            1156,
            1158,
            1159,
            1160,
            1161,  # aborted connection / network read-write errors
            1180,  # error during COMMIT: the member left the primary component under it
            1290,  # running with --read-only
            1836,  # read-only mode
            1927,  # connection killed
            2002,
            2003,
            2005,
            2006,
            2013,
            2014,
            2026,  # client: can't connect / gone away / lost / out of sync / TLS error
            2055,
            4031,  # disconnected by the server for inactivity
        }
    )

    def __init__(self, db: DBConfig) -> None:
        self.db = db
        self._tls: ssl.SSLContext | None = None
        self._connection_class: Any = None

    def tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            ctx = NamedServerContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the name
            ctx.load_verify_locations(self.db.ca_file)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.server_name = self.db.server_name
            self._tls = ctx
        return self._tls

    def _tls_only_connection(self) -> Any:
        if self._connection_class is None:
            import pymysql  # on first connect: unit tests need no driver
            from pymysql.constants import CLIENT

            class TLSOnlyConnection(pymysql.connections.Connection):
                def _request_authentication(self) -> None:
                    if not self.server_capabilities & CLIENT.SSL:
                        raise pymysql.err.OperationalError(2026, "database does not offer TLS; refusing plaintext")
                    super()._request_authentication()
                    if not isinstance(self._sock, ssl.SSLSocket):
                        raise pymysql.err.OperationalError(2026, "TLS was not negotiated; refusing plaintext")

            self._connection_class = TLSOnlyConnection
        return self._connection_class

    def connect(self) -> Any:
        return self._tls_only_connection()(
            host=self.db.host,
            port=self.db.port,
            user=self.db.user,
            password=self.db.password(),
            database=self.db.database,
            charset="utf8mb4",
            autocommit=False,
            connect_timeout=CONNECT_TIMEOUT_S,
            read_timeout=IO_TIMEOUT_S,
            write_timeout=IO_TIMEOUT_S,
            ssl=self.tls_context(),
            init_command=(
                f"SET SESSION time_zone = '+00:00', SESSION innodb_lock_wait_timeout = {LOCK_WAIT_TIMEOUT_S}"
            ),
        )

    def is_retryable(self, exc: BaseException) -> bool:
        return mysql_errno(exc) in self.RETRYABLE

    def is_unavailable(self, exc: BaseException) -> bool:
        return isinstance(exc, OSError) or mysql_errno(exc) in self.UNAVAILABLE

    def is_duplicate(self, exc: BaseException) -> bool:
        return mysql_errno(exc) == self.DUPLICATE

    def member_query(self, cur: Any) -> str:
        # The member's name in its cluster (the inventory's host name), whatever the machine calls itself.
        cur.execute("SELECT @@wsrep_node_name")
        row = cur.fetchone()
        return str(row[0])[:64] if row and row[0] is not None else "unknown"


ENGINES: dict[str, Callable[[DBConfig], Engine]] = {"galera": GaleraEngine}


# ---------------------------------------------------------------- requests


class ApiError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"error": message, **extra}


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


@dataclass(frozen=True)
class TransferRequest:
    key: str
    source: str
    target: str
    amount: int


def parse_customer(text: str) -> int:
    if not CUSTOMER_RE.fullmatch(text) or int(text) >= MAX_CUSTOMER:
        raise bad_request(f"customer id must be a non-negative integer below 2**32 in canonical form, got {text!r}")
    return int(text)


def parse_account(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise bad_request(f"{field} must be a string")
    if not NAME_RE.fullmatch(value):
        raise bad_request(f"{field} must be 1-64 characters of A-Z a-z 0-9 . _ -")
    return value


def _int_field(body: dict[str, Any], field: str, minimum: int) -> int:
    value = body[field]
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"{field} must be an integer")
    if not minimum <= value <= MAX_AMOUNT:
        raise bad_request(f"{field} must be between {minimum} and {MAX_AMOUNT}")
    return value


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise bad_request(f"malformed JSON body: {exc}") from exc
    if not isinstance(body, dict):
        raise bad_request("body must be a JSON object")
    return body


def parse_open_account(body: dict[str, Any]) -> tuple[str, int]:
    if "account" not in body:
        raise bad_request("missing field: account")
    account = parse_account(body["account"], "account")
    initial = _int_field(body, "initial", 0) if "initial" in body else 0
    return account, initial


def parse_transfer(body: dict[str, Any]) -> TransferRequest:
    for field in ("idempotency_key", "from", "to", "amount"):
        if field not in body:
            raise bad_request(f"missing field: {field}")
    key = body["idempotency_key"]
    if not isinstance(key, str):
        raise bad_request("idempotency_key must be a string")
    if not KEY_RE.fullmatch(key):
        raise bad_request("idempotency_key must be 1-128 printable ASCII characters without spaces")
    source = parse_account(body["from"], "from")
    target = parse_account(body["to"], "to")
    if source == target:
        raise bad_request("from and to must be different accounts")
    return TransferRequest(key, source, target, _int_field(body, "amount", 1))


def request_hash(customer: int, req: TransferRequest) -> str:
    """What an idempotency key is bound to: the same key with a different hash is a 409."""
    canonical = {"customer": customer, "from": req.source, "to": req.target, "amount": req.amount}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def format_time(value: datetime) -> str:
    """A TIMESTAMP(6) read back (naive, the session's UTC) or an aware datetime, as ISO 8601 UTC."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---------------------------------------------------------------- business layer (portable SQL only)


def schema(table_options: str) -> list[str]:
    return [
        "CREATE TABLE IF NOT EXISTS accounts ("
        " customer BIGINT NOT NULL,"
        " account VARCHAR(64) NOT NULL,"
        " balance BIGINT NOT NULL,"
        " opened_by VARCHAR(64) NOT NULL,"
        " PRIMARY KEY (customer, account)"
        f") {table_options}",
        "CREATE TABLE IF NOT EXISTS transfers ("
        " idempotency_key VARCHAR(128) NOT NULL,"
        " customer BIGINT NOT NULL,"
        " from_account VARCHAR(64) NOT NULL,"
        " to_account VARCHAR(64) NOT NULL,"
        " amount BIGINT NOT NULL,"
        " request_hash CHAR(64) NOT NULL,"
        " served_dc VARCHAR(64) NOT NULL,"
        " db_member VARCHAR(64) NOT NULL,"
        " created_at TIMESTAMP(6) NOT NULL,"
        " PRIMARY KEY (idempotency_key)"
        f") {table_options}",
    ]


class Unavailable(Exception):
    pass


class DBState:
    """Logs a line when the database becomes available or unavailable, not on every request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.up: bool | None = None

    def mark(self, up: bool, reason: str = "") -> None:
        if self.up is up:
            return
        with self._lock:
            if self.up is up:
                return
            self.up = up
        log("database available" if up else f"database unavailable: {reason}")


Work = Callable[[Any, str], tuple[int, dict[str, Any]]]


class Ledger:
    def __init__(self, cfg: Config, engine: Engine) -> None:
        self.cfg = cfg
        self.engine = engine
        self.state = DBState()
        self.schema_ready = threading.Event()
        self._local = threading.local()

    # -- connections: one per thread (ThreadingHTTPServer: one thread per client connection)

    def _connection(self) -> tuple[Any, bool]:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn, True
        try:
            conn = self.engine.connect()
        except Exception as exc:
            self.state.mark(False, _describe(exc))
            raise Unavailable(_describe(exc)) from exc
        self._local.conn = conn
        return conn, False

    def close_thread_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with contextlib.suppress(Exception):  # a broken connection may fail to close; it is dropped anyway
                conn.close()

    def _rollback(self, conn: Any) -> None:
        try:
            conn.rollback()
        except Exception:
            self.close_thread_connection()

    def transact(self, work: Work) -> tuple[int, dict[str, Any]]:
        """Run work(cursor, db_member) in one transaction: commit on a 2xx result, roll back otherwise. Re-run it on
        a deadlock / certification failure or a duplicate-key race (safe: every write is keyed), and once on a fresh
        connection when a reused one turns out dead; otherwise a database failure is Unavailable."""
        if not self.schema_ready.is_set():
            raise Unavailable("waiting for the database to create the schema")
        start = time.monotonic()
        retries = 0
        reconnected = False
        while True:
            conn, reused = self._connection()
            served: dict[str, str] = {}
            try:
                cur = conn.cursor()
                member = self.engine.member_query(cur)
                served["db_member"] = member
                status, body = work(cur, member)
                if status < 300:
                    conn.commit()
                else:
                    conn.rollback()
            except Exception as exc:
                elapsed = time.monotonic() - start
                if self.engine.is_unavailable(exc):
                    self.close_thread_connection()
                    if reused and not reconnected and elapsed < RECONNECT_BUDGET_S:
                        reconnected = True
                        continue
                    self.state.mark(False, _describe(exc))
                    raise Unavailable(_describe(exc)) from exc
                self._rollback(conn)
                if self.engine.is_retryable(exc) or self.engine.is_duplicate(exc):
                    if retries < MAX_RETRIES and elapsed < RETRY_BUDGET_S:
                        retries += 1
                        time.sleep(random.uniform(0.002, 0.01) * retries)
                        continue
                    raise ApiError(503, "transaction conflict: retries exhausted, retry the request", **served) from exc
                self.close_thread_connection()  # unknown state: do not reuse
                raise
            self.state.mark(True)
            body["db_member"] = member
            return status, body

    def ensure_schema(self, stop: threading.Event) -> None:
        """Create the tables, retrying until the database is reachable; requests get 503 meanwhile."""
        delay = 0.5
        while not stop.is_set():
            conn = None
            try:
                conn = self.engine.connect()
                cur = conn.cursor()
                for ddl in schema(self.engine.table_options):
                    cur.execute(ddl)
                conn.commit()
            except Exception as exc:
                self.state.mark(False, f"cannot create the schema yet, retrying: {_describe(exc)}")
                stop.wait(delay)
                delay = min(delay * 2, 5.0)
                continue
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
            self.schema_ready.set()
            log("schema ready")
            self.state.mark(True)
            return

    # -- operations

    def open_account(self, customer: int, account: str, initial: int) -> tuple[int, dict[str, Any]]:
        def work(cur: Any, member: str) -> tuple[int, dict[str, Any]]:
            cur.execute(
                "SELECT balance, opened_by FROM accounts WHERE customer = %s AND account = %s", (customer, account)
            )
            row = cur.fetchone()
            if row is not None:
                return 200, _account(customer, account, int(row[0]), row[1], created=False)
            cur.execute(
                "INSERT INTO accounts (customer, account, balance, opened_by) VALUES (%s, %s, %s, %s)",
                (customer, account, initial, self.cfg.host),
            )
            return 201, _account(customer, account, initial, self.cfg.host, created=True)

        return self.transact(work)

    def get_account(self, customer: int, account: str) -> tuple[int, dict[str, Any]]:
        def work(cur: Any, member: str) -> tuple[int, dict[str, Any]]:
            cur.execute(
                "SELECT balance, opened_by FROM accounts WHERE customer = %s AND account = %s", (customer, account)
            )
            row = cur.fetchone()
            if row is None:
                return 404, {"error": f"unknown account {account!r} for customer {customer}", "account": account}
            return 200, _account(customer, account, int(row[0]), row[1])

        return self.transact(work)

    def transfer(self, customer: int, req: TransferRequest) -> tuple[int, dict[str, Any]]:
        rhash = request_hash(customer, req)

        def work(cur: Any, member: str) -> tuple[int, dict[str, Any]]:
            cur.execute(
                "SELECT customer, from_account, to_account, amount, request_hash, served_dc, db_member, created_at"
                " FROM transfers WHERE idempotency_key = %s",
                (req.key,),
            )
            row = cur.fetchone()
            if row is not None:
                if row[4] != rhash:
                    return 409, {
                        "error": "idempotency key already used for a different request",
                        "idempotency_key": req.key,
                    }
                original = _transfer(req.key, int(row[0]), row[1], row[2], int(row[3]), row[5], row[6], row[7])
                return 200, {"replayed": True, "transfer": original}
            balances: dict[str, int] = {}
            for account in sorted((req.source, req.target)):  # one lock order for every transfer: no deadlocks
                cur.execute(
                    "SELECT balance FROM accounts WHERE customer = %s AND account = %s FOR UPDATE",
                    (customer, account),
                )
                found = cur.fetchone()
                if found is None:
                    return 404, {"error": f"unknown account {account!r} for customer {customer}", "account": account}
                balances[account] = int(found[0])
            if balances[req.source] < req.amount:
                return 422, {
                    "error": "insufficient funds",
                    "account": req.source,
                    "balance": balances[req.source],
                    "amount": req.amount,
                }
            created = datetime.now(UTC).replace(tzinfo=None)
            cur.execute(
                "INSERT INTO transfers (idempotency_key, customer, from_account, to_account, amount, request_hash,"
                " served_dc, db_member, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (req.key, customer, req.source, req.target, req.amount, rhash, self.cfg.dc, member, created),
            )
            cur.execute(
                "UPDATE accounts SET balance = balance - %s WHERE customer = %s AND account = %s",
                (req.amount, customer, req.source),
            )
            cur.execute(
                "UPDATE accounts SET balance = balance + %s WHERE customer = %s AND account = %s",
                (req.amount, customer, req.target),
            )
            record = _transfer(req.key, customer, req.source, req.target, req.amount, self.cfg.dc, member, created)
            return 201, {"replayed": False, "transfer": record}

        return self.transact(work)


def _account(customer: int, account: str, balance: int, opened_by: str, created: bool | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"customer": customer, "account": account, "balance": balance, "opened_by": opened_by}
    if created is not None:
        body["created"] = created
    return body


def _transfer(
    key: str, customer: int, source: str, target: str, amount: int, served_dc: str, member: str, created: datetime
) -> dict[str, Any]:
    return {
        "idempotency_key": key,
        "customer": customer,
        "from": source,
        "to": target,
        "amount": amount,
        "served_dc": served_dc,
        "db_member": member,
        "created_at": format_time(created),
    }


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


# ---------------------------------------------------------------- HTTP layer

ROUTES: list[tuple[re.Pattern[str], dict[str, str]]] = [
    (re.compile(r"/health"), {"GET": "health"}),
    (re.compile(r"/v1/customers/([^/]+)/accounts"), {"POST": "open_account"}),
    (re.compile(r"/v1/customers/([^/]+)/accounts/([^/]+)"), {"GET": "get_account"}),
    (re.compile(r"/v1/customers/([^/]+)/transfers"), {"POST": "transfer"}),
]


def route(method: str, path: str) -> tuple[str, list[str]]:
    """The operation and path parameters for a request; ApiError 404 / 405 when there is none."""
    for pattern, methods in ROUTES:
        match = pattern.fullmatch(path)
        if match:
            if method not in methods and not (method == "HEAD" and "GET" in methods):
                raise ApiError(405, f"method {method} not allowed on {path}", allow=sorted(methods))
            return methods.get(method, methods.get("GET", "")), [unquote(g) for g in match.groups()]
    raise ApiError(404, f"no route for {method} {path}")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hivestack-ledger"
    timeout = IDLE_KEEPALIVE_S
    disable_nagle_algorithm = True
    ledger: Ledger  # set on the subclass made by make_server
    verbose = False

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        # In this connection's own thread and under its timeout, never in the accept loop: a client that stalls
        # its handshake holds up nobody else.
        self.connection.do_handshake()

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.ledger.close_thread_connection()

    def log_message(self, format: str, *args: Any) -> None:
        if self.verbose:
            log(f"{self.address_string()} {format % args}")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The base class's errors (bad request line, oversized headers, unknown method) as JSON too."""
        if code == 501:  # a method no route knows
            code, message = 405, f"method {self.command} not allowed"
        self.close_connection = True
        self._send(code, {"error": message or explain or "error"})

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        cfg = self.ledger.cfg
        payload = json.dumps({**body, "cell": cfg.cell, "dc": cfg.dc, "host": cfg.host}, separators=(",", ":"))
        data = payload.encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b""
        if not length_text.strip().isdigit():
            self.close_connection = True
            raise bad_request("invalid Content-Length")
        length = int(length_text)
        if length > MAX_BODY:
            self.close_connection = True
            raise ApiError(413, f"body larger than {MAX_BODY} bytes")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        data = bytearray()
        while True:
            line = self.rfile.readline(1024).split(b";", 1)[0].strip()
            try:
                size = int(line, 16)
            except ValueError:
                self.close_connection = True
                raise bad_request("malformed chunked body") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):  # trailers
                    pass
                return bytes(data)
            if len(data) + size > MAX_BODY:
                self.close_connection = True
                raise ApiError(413, f"body larger than {MAX_BODY} bytes")
            data += self.rfile.read(size)
            self.rfile.readline(1024)

    def _handle(self) -> None:
        headers: dict[str, str] = {}
        try:
            raw = self._read_body()
            path = urlsplit(self.path).path
            try:
                operation, params = route(self.command, path)
            except ApiError as exc:
                if exc.status == 405:
                    headers["Allow"] = ", ".join(exc.body["allow"])
                raise
            status, body = self._dispatch(operation, params, raw)
        except ApiError as exc:
            status, body = exc.status, exc.body
        except Unavailable as exc:
            status, body = 503, {"error": UNAVAILABLE, "detail": str(exc)}
        except Exception as exc:
            log(f"internal error on {self.command} {self.path}: {traceback.format_exc()}")
            status, body = 500, {"error": "internal error", "detail": _describe(exc)}
        self._send(status, body, headers)

    def _dispatch(self, operation: str, params: list[str], raw: bytes) -> tuple[int, dict[str, Any]]:
        ledger = self.ledger
        if operation == "health":
            up = ledger.state.up
            return 200, {"status": "ok", "db": "unknown" if up is None else "up" if up else "down"}
        routed = self.headers.get("X-Hivestack-Cell")
        if routed is not None and routed.strip() != ledger.cfg.cell:
            raise ApiError(
                421, f"misdirected: customer routed to cell {routed.strip()[:64]}, this is cell {ledger.cfg.cell}"
            )
        customer = parse_customer(params[0])
        if operation == "get_account":
            return ledger.get_account(customer, parse_account(params[1], "account"))
        body = parse_json_object(raw)
        if operation == "open_account":
            account, initial = parse_open_account(body)
            return ledger.open_account(customer, account, initial)
        return ledger.transfer(customer, parse_transfer(body))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # a refused handshake (no or a wrong certificate), a peer gone: no traceback
            log(f"connection from {client_address[0]} failed: {exc}")
            return
        super().handle_error(request, client_address)


def make_server(ledger: Ledger, verbose: bool = False) -> Server:
    """Listening with TLS (ledger.cfg.tls); the handshake runs in each connection's thread (Handler.setup)."""
    tls = ledger.cfg.tls.server_context()
    handler = type("LedgerHandler", (Handler,), {"ledger": ledger, "verbose": verbose})
    server_class = Server
    if ":" in ledger.cfg.listen:
        server_class = type("Server6", (Server,), {"address_family": socket.AF_INET6})
    server = server_class((ledger.cfg.listen, ledger.cfg.port), handler)
    server.socket = tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    return server


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="JSON config, e.g. /etc/hivestack/ledger/cell-a.json")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config)
        Path(cfg.db.password_file).read_bytes()
        cfg.tls.server_context()  # its certificate, key and the gateways' CA load before anything listens
    except (ConfigError, OSError) as exc:
        log(str(exc))
        return 2
    engine = ENGINES[cfg.engine](cfg.db)
    ledger = Ledger(cfg, engine)
    log(
        f"starting: cell={cfg.cell} dc={cfg.dc} host={cfg.host} engine={cfg.engine} "
        f"db={cfg.db.host}:{cfg.db.port}/{cfg.db.database}"
    )
    try:
        server = make_server(ledger, args.verbose)
    except OSError as exc:
        log(f"cannot listen on {cfg.listen}:{cfg.port}: {exc}")
        return 1

    def stop_on_signal(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop_on_signal)
    stop = threading.Event()
    threading.Thread(target=ledger.ensure_schema, args=(stop,), name="schema", daemon=True).start()
    log(f"listening on {cfg.listen}:{cfg.port}")
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()
        log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
