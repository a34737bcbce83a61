"""The file a verb reads, checked before anything opens it.

A path that is not a regular file is a usage error (exit 2, "could not run"), not a topology with problems (exit 1):
the message says what the path is instead, so `hivestack plan inventories/lab` reads "is a directory" rather than
a misleading "no such file". Nothing here opens the path: opening a FIFO would block until a writer comes.
"""

from __future__ import annotations

import stat
from pathlib import Path

from hivestack.cli.errors import CannotRun

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def regular_file(path: Path) -> Path:
    """`path` when it names a regular file (through symbolic links); CannotRun saying what it is otherwise."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        missing = "a symbolic link to a missing file" if path.is_symlink() else "no such file"
        raise CannotRun(f"{path}: {missing}") from None
    except OSError as e:
        raise CannotRun(f"{path}: cannot read it: {e.strerror or e}") from None
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        raise CannotRun(f"{path}: {kind}, not a regular file")
    return path
