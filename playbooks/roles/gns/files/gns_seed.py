#!/usr/bin/python3
"""Put each cell's range into etcd unless an entry for that range start exists (a range moved since is kept).

etcdctl takes its endpoint, TLS files and credentials from the environment. Prints "changed" when it wrote.
"""

import json
import os
import subprocess

prefix = os.environ["GNS_PREFIX"]
cells = json.loads(os.environ["GNS_CELLS"])
changed = False
for cell in cells:
    key = f"{prefix}{cell['range_start']:010d}"
    value = json.dumps(
        {"start": cell["range_start"], "end": cell["range_end"], "cell": cell["name"]}, separators=(",", ":")
    )
    # A transaction: create the key only if it has never been created (create revision 0).
    txn = f'create("{key}") = "0"\n\nput {key} {value}\n\n\n'
    out = subprocess.run(["etcdctl", "txn"], input=txn, capture_output=True, text=True, check=True).stdout
    if out.startswith("SUCCESS"):
        changed = True
print("changed" if changed else "ok")
