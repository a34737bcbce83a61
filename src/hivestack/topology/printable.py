"""Text from a topology file made safe to print: a name, key or path echoed into a message must not move the
cursor, clear the screen or start a line of its own (a forged `error:` or `valid` line in a CI log).

Every character Python does not call printable (C0/C1 controls, newlines, escape, DEL, bidirectional overrides and
other format characters, unassigned code points) is written as its escape, the way `repr` writes it. Printable text,
backslashes included, is left alone so messages that already quote a value with `repr` read the same.
"""

from __future__ import annotations

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
