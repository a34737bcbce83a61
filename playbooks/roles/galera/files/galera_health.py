#!/usr/bin/python3
"""Health endpoint of one Galera member: 200 only when it is safe to send it writes.

Safe means Synced, in the primary component and ready. A plain MySQL handshake is not enough: a member that has
lost quorum still completes it, and writes sent there fail or hang. A drain file (/run/hivestack/drain-CELL) makes
the member refuse (503) so the gateways move the cell's writes to the next member before planned maintenance.

HTTPS only (config "tls": the member's health certificate of the cell's CA, which the gateways' checks verify).
It logs in to the member as its own OS account over the socket (MariaDB's unix_socket authentication).
"""

import argparse
import json
import os
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pymysql

STATUS_KEYS = ("wsrep_local_state_comment", "wsrep_cluster_status", "wsrep_ready", "wsrep_cluster_size")


def member_status(socket_path: str) -> dict[str, str]:
    connection = pymysql.connect(unix_socket=socket_path, user="hivestack-health", connect_timeout=1, read_timeout=1)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SHOW GLOBAL STATUS WHERE Variable_name IN (%s, %s, %s, %s)",
                STATUS_KEYS,
            )
            return {name.lower(): value for name, value in cursor.fetchall()}
    finally:
        connection.close()


def verdict(status: dict[str, str], draining: bool) -> tuple[bool, str]:
    if status.get("wsrep_cluster_status") != "Primary":
        return False, "not in the primary component"
    if status.get("wsrep_local_state_comment") != "Synced":
        return False, f"not synced ({status.get('wsrep_local_state_comment')})"
    if status.get("wsrep_ready") != "ON":
        return False, "not ready"
    if draining:
        return False, "draining"
    return True, "safe to write"


def make_handler(config: dict) -> type[BaseHTTPRequestHandler]:
    drain_file = f"/run/hivestack/drain-{config['cell']}"

    class Handler(BaseHTTPRequestHandler):
        timeout = 5  # a check that stalls (its handshake included) gives up its thread

        def setup(self) -> None:
            super().setup()
            self.connection.do_handshake()  # in this request's thread, never in the accept loop

        def do_GET(self) -> None:
            try:
                status = member_status(config["socket"])
                ok, reason = verdict(status, os.path.exists(drain_file))
            except pymysql.MySQLError as e:
                status, ok, reason = {}, False, f"database unreachable: {e.args[-1] if e.args else e}"
            body = json.dumps({"cell": config["cell"], "safe_to_write": ok, "reason": reason, **status}).encode()
            self.send_response(200 if ok else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass  # probed twice a second by every gateway

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # a refused handshake or a checker gone: one line, no traceback
            print(f"health check from {client_address[0]} failed: {exc}", file=sys.stderr, flush=True)
            return
        super().handle_error(request, client_address)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True)
    with open(parser.parse_args().config) as f:
        config = json.load(f)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.minimum_version = ssl.TLSVersion.TLSv1_2
    tls.load_cert_chain(config["tls"]["cert_file"], config["tls"]["key_file"])
    server = Server((config["address"], int(config["port"])), make_handler(config))
    server.socket = tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    server.serve_forever()


if __name__ == "__main__":
    main()
