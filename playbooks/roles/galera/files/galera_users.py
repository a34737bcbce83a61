#!/usr/bin/python3
"""Idempotent database and users of one cell, run as root over the member's UNIX socket.

Passwords arrive in the environment, never on a command line. Prints "changed" when it changed anything.
"""

import json
import os

import pymysql

spec = json.loads(os.environ["GALERA_USERS"])
passwords = spec["passwords"]
app_user, app_db = spec["app_user"], spec["app_database"]
# (user, host, password or None for UNIX-socket login, TLS required, grants)
USERS = [
    (app_user, "%", passwords["app"], True, [f"SELECT, INSERT, UPDATE, DELETE, CREATE, INDEX, ALTER ON `{app_db}`.*"]),
    ("hivestack_admin", "%", passwords["admin"], True, ["ALL PRIVILEGES ON *.*"]),
    ("hivestack_sst", "localhost", passwords["sst"], False, ["RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR ON *.*"]),
    ("hivestack", "localhost", None, False, []),  # the health endpoint's OS account: status only
]

connection = pymysql.connect(unix_socket=os.environ["GALERA_SOCKET"], user="root", autocommit=True)
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
print("changed" if changed else "ok")
