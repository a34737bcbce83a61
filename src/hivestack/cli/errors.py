"""Exit codes shared by every verb (see docs/conventions.md)."""

from __future__ import annotations

from hivestack.topology.printable import printable

OK = 0
FOUND_PROBLEM = 1  # the check ran and found something wrong
CANNOT_RUN = 2  # bad usage, missing tool, unreadable input


class CannotRun(Exception):
    """Raised by a verb that could not do its job at all; printed as one line, exit 2.

    Its text often echoes what the user gave (a file name, a host): control characters in it are escaped, so it
    stays one line and cannot drive the terminal."""

    def __str__(self) -> str:
        return printable(super().__str__())
