#!/usr/bin/python3
"""Put each cell's range into etcd unless an entry for that range start exists (a range moved since is kept).

    /usr/bin/python3 gns_seed.py < {"endpoints", "ca_file", "cert_file", "key_file", "user", "password", "prefix",
                                    "cells": [{"name", "range_start", "range_end"}]}

The password arrives as JSON on stdin and goes on to etcdctl on its stdin: never on a command line or in an
environment (both readable in /proc). etcdctl 3.4, given `--user NAME` without a password, reads it as the first
line of stdin (printing a "Password: " prompt on stdout); `txn` then reads the transaction from the rest.
Prints "changed" when it wrote.
"""

import json
import os
import subprocess
import sys

PROMPT = "Password: \n"

spec = json.load(sys.stdin)
env = {
    **{k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")},
    "ETCDCTL_API": "3",
    "ETCDCTL_ENDPOINTS": ",".join(spec["endpoints"]),
    "ETCDCTL_CACERT": spec["ca_file"],
    "ETCDCTL_CERT": spec["cert_file"],
    "ETCDCTL_KEY": spec["key_file"],
}
changed = False
for cell in spec["cells"]:
    key = f"{spec['prefix']}{cell['range_start']:010d}"
    value = json.dumps(
        {"start": cell["range_start"], "end": cell["range_end"], "cell": cell["name"]}, separators=(",", ":")
    )
    # A transaction: create the key only if it has never been created (create revision 0).
    txn = f'create("{key}") = "0"\n\nput {key} {value}\n\n\n'
    proc = subprocess.run(
        ["etcdctl", f"--user={spec['user']}", "txn"],
        env=env,
        input=f"{spec['password']}\n{txn}",
        capture_output=True,
        text=True,
        timeout=30,
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        sys.exit(f"etcdctl txn for {key} exited {proc.returncode}: {last}")
    if proc.stdout.removeprefix(PROMPT).startswith("SUCCESS"):
        changed = True
print("changed" if changed else "ok")
