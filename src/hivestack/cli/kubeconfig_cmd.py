"""`hivestack kubeconfig`: the operator kubeconfig of a stack, written where kubectl and the checks read it.

The kubeconfig holds the operator's client key, so it only ever goes to a file made 0600 before anything is written
to it (never to the terminal, never through a world-readable moment), and it replaces the old file in one rename.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.console import Console

from hivestack.cli import project
from hivestack.cli.errors import CannotRun

DEFAULT_STACK = "lab"


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stack", default=DEFAULT_STACK, help=f"stack to read (default: {DEFAULT_STACK})")
    p.add_argument("--output", type=Path, required=True, metavar="FILE", help="file to write (mode 0600)")
    p.set_defaults(run=run)


def write_private(path: Path, text: str) -> None:
    """Write text to path, mode 0600 from the first byte, replacing an existing file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def run(args: argparse.Namespace, out: Console, _err: Console) -> int:
    project.stack_config(args.stack)  # an unknown stack is a usage error, before anything runs
    if "kubeconfig" not in project.stack_outputs(args.stack):
        raise CannotRun(f"stack {args.stack!r} has no Kubernetes control plane (no kubeconfig output); run `up` first")
    write_private(args.output, project.stack_secret_output(args.stack, "kubeconfig"))
    out.print(f"wrote {args.output} (0600)", markup=False, highlight=False)
    return 0
