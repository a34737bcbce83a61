#!/usr/bin/env python3
"""Dynamic Ansible inventory of a lab stack: `ansible-inventory -i inventories/lab --graph`.

The stack defaults to this directory's name; HIVESTACK_STACK names another (e.g. the test suite's).
"""

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "src"))

from hivestack.ansible.inventory import build  # noqa: E402
from hivestack.topology import load_topology  # noqa: E402


def main() -> None:
    import os

    stack = os.environ.get("HIVESTACK_STACK", HERE.name)
    if "--host" in sys.argv:
        print("{}")  # everything is in _meta
        return
    proc = subprocess.run(
        [str(ROOT / "scripts" / "pulumi"), "stack", "output", "--json", "--stack", stack],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.exit(f"inventory: cannot read outputs of stack {stack!r} (is it up?): {proc.stderr.strip()}")
    print(json.dumps(build(load_topology(HERE / "topology.yaml"), json.loads(proc.stdout)), indent=1))


if __name__ == "__main__":
    main()
