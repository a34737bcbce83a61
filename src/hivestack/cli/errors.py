"""Exit codes shared by every verb (see docs/conventions.md)."""

from __future__ import annotations

OK = 0
FOUND_PROBLEM = 1  # the check ran and found something wrong
CANNOT_RUN = 2  # bad usage, missing tool, unreadable input


class CannotRun(Exception):
    """Raised by a verb that could not do its job at all; printed as one line, exit 2 (escaped by `cli.main`, which
    prints every error)."""
