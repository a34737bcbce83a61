#!/usr/bin/python3
"""Idempotent database and users of one cell, run as root over the member's UNIX socket.

    /usr/bin/python3 galera_users.py < {"socket", "app_user", "app_database", "passwords": {"app", "admin", "sst"}}

The passwords arrive as JSON on stdin, never on a command line or in the environment (both readable in /proc).
Prints "changed" when it changed anything.
"""

import json
import sys

import pymysql

spec = json.load(sys.stdin)
passwords = spec["passwords"]
app_user, app_db = spec["app_user"], spec["app_database"]
# (user, host, password or None for UNIX-socket login, TLS required, grants)
USERS = [
    (app_user, "%", passwords["app"], True, [f"SELECT, INSERT, UPDATE, DELETE, CREATE, INDEX, ALTER ON `{app_db}`.*"]),
    # The administrator logs in on the member's own host only, over its socket (hence no TLS), never from the network.
    ("hivestack_admin", "localhost", passwords["admin"], False, ["ALL PRIVILEGES ON *.*"]),
    ("hivestack_sst", "localhost", passwords["sst"], False, ["RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR ON *.*"]),
    ("hivestack-health", "localhost", None, False, []),  # the health endpoint's OS account: status only
]
# Accounts earlier versions made: the administrator reachable from everywhere, the shared service account's login.
RETIRED = [("hivestack_admin", "%"), ("hivestack", "localhost")]

connection = pymysql.connect(unix_socket=spec["socket"], user="root", autocommit=True)
changed = False
with connection.cursor() as cursor:
    cursor.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (app_db,))
    if not cursor.fetchone():
        cursor.execute(f"CREATE DATABASE `{app_db}`")
        changed = True
    for user, host, password, tls, grants in USERS:
        cursor.execute("SELECT ssl_type FROM mysql.user WHERE User = %s AND Host = %s", (user, host))
        row = cursor.fetchone()
        require = "REQUIRE SSL" if tls else "REQUIRE NONE"
        if password is None:
            auth = "IDENTIFIED VIA unix_socket"
            current = row is not None
        else:
            auth = "IDENTIFIED BY %s"
            cursor.execute(
                "SELECT 1 FROM mysql.user WHERE User = %s AND Host = %s AND authentication_string = PASSWORD(%s)",
                (user, host, password),
            )
            current = cursor.fetchone() is not None
        if not current or (row and (row[0] == "ANY") != tls):
            verb = "ALTER" if row else "CREATE"
            args = (user, host, password) if password else (user, host)
            cursor.execute(f"{verb} USER %s@%s {auth} {require}", args)
            changed = True
        for grant in grants:
            cursor.execute(f"GRANT {grant} TO %s@%s", (user, host))
    for user, host in RETIRED:
        cursor.execute("SELECT 1 FROM mysql.user WHERE User = %s AND Host = %s", (user, host))
        if cursor.fetchone():
            cursor.execute("DROP USER %s@%s", (user, host))
            changed = True
print("changed" if changed else "ok")
