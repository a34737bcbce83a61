#!/usr/bin/python
"""Install a role's TLS identities in one module run.

Each identity is a directory, `<root>/<domain>/<purpose>/`, holding the domain's CA (`ca.pem`) and, for an identity
of this host, its certificate (`host.pem`) and key (`host-key.pem`, or both in `host-bundle.pem` for HAProxy); only
the identity's group may enter it and read the key. Written as a task per file, a host with twenty identities ran
about eighty module runs per stage, each an SSH round trip and a Python start on the host: minutes per stage on the
lab's two cores. Here one run compares every file and directory (content, owner, group, mode), rewrites only what
differs (atomically, in the same directory), and names each one in the diff, so check mode and `hivestack drift`
still say which file drifted. Keys never appear in its output: `material` is a no_log option.
"""

from __future__ import annotations

import contextlib
import grp
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: hivestack_tls_files
short_description: Install TLS identities (CA, certificate, key), one directory each, in one step
description:
  - Writes I(root)/<domain>/<purpose>/ for every entry, with the files its kind calls for, owned by root and
    readable by the entry's group only where they hold a key.
  - Writes only what differs; in check mode writes nothing and reports what would change.
options:
  root:
    description: Root of the TLS identities.
    type: path
    required: true
  entries:
    description: The identities, each with C(domain), C(purpose), C(group) and C(kind) (pair, bundle or trust).
    type: list
    elements: dict
    required: true
  material:
    description: Per C(<domain>/<purpose>), the domain's CA (C(ca)) and this host's C(cert) and C(key) ("" for trust).
    type: dict
    required: true
    no_log: true
"""

RETURN = r"""
changed_domains:
  description: The domains at least one of whose files changed (their services must load them again).
  type: list
  elements: str
  returned: always
"""

KINDS = ("pair", "bundle", "trust")


@dataclass(frozen=True)
class Wanted:
    path: str
    gid: int
    mode: int
    domain: str
    content: bytes | None = None  # None: a directory


def wanted(
    root: str, entries: list[dict], material: dict[str, dict[str, str]], gid_of: Callable[[str], int]
) -> list[Wanted]:
    """Every directory and file the entries call for, parents before children."""
    out: list[Wanted] = []
    for domain in dict.fromkeys(e["domain"] for e in entries):
        out.append(Wanted(os.path.join(root, domain), 0, 0o755, domain))
    for e in entries:
        missing = [k for k in ("domain", "purpose", "group", "kind") if not e.get(k)]
        if missing:
            raise ValueError(f"an entry lacks {', '.join(missing)}: {sorted(e)}")
        if e["kind"] not in KINDS:
            raise ValueError(f"{e['domain']}/{e['purpose']}: kind {e['kind']!r} is not one of {', '.join(KINDS)}")
        ident = f"{e['domain']}/{e['purpose']}"
        if ident not in material:
            raise ValueError(f"{ident}: no material given")
        m, gid, d = material[ident], gid_of(e["group"]), os.path.join(root, e["domain"], e["purpose"])
        if not m.get("ca"):
            raise ValueError(f"{ident}: no CA certificate given")
        out.append(Wanted(d, gid, 0o755 if e["kind"] == "trust" else 0o750, e["domain"]))
        out.append(Wanted(os.path.join(d, "ca.pem"), gid, 0o644, e["domain"], m["ca"].encode()))
        if e["kind"] == "trust":
            continue
        if not m.get("cert") or not m.get("key"):
            raise ValueError(f"{ident}: this host has no certificate or key in it")
        out.append(Wanted(os.path.join(d, "host.pem"), gid, 0o644, e["domain"], m["cert"].encode()))
        name, content = ("host-key.pem", m["key"]) if e["kind"] == "pair" else ("host-bundle.pem", m["cert"] + m["key"])
        out.append(Wanted(os.path.join(d, name), gid, 0o640, e["domain"], content.encode()))
    return out


def differs(w: Wanted) -> bool:
    try:
        st = os.lstat(w.path)
    except FileNotFoundError:
        return True
    if (st.st_uid, st.st_gid, st.st_mode & 0o7777) != (0, w.gid, w.mode):
        return True
    if w.content is None:
        return not os.path.isdir(w.path) or os.path.islink(w.path)
    if not os.path.isfile(w.path) or os.path.islink(w.path):
        return True
    with open(w.path, "rb") as f:
        return f.read() != w.content


def apply(w: Wanted) -> None:
    if w.content is None:
        if os.path.islink(w.path) or (os.path.lexists(w.path) and not os.path.isdir(w.path)):
            os.unlink(w.path)  # a link or a file where the directory belongs: replaced, never followed
        os.makedirs(w.path, exist_ok=True)
        os.chown(w.path, 0, w.gid, follow_symlinks=False)
        os.chmod(w.path, w.mode)
        return
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(w.path), prefix=".hivestack-")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)  # nothing else reads it before it has its owner and mode
            os.fchown(f.fileno(), 0, w.gid)
            f.write(w.content)
            f.flush()
            os.fchmod(f.fileno(), w.mode)
            os.fsync(f.fileno())
        os.replace(tmp, w.path)  # a link in its place is replaced, not followed
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def converge(every: list[Wanted], check: bool) -> list[Wanted]:
    """What differs, written unless `check`. Parents come before their children and each is compared when its turn
    comes: a directory that replaced a link or a file is empty, so what belongs in it is found missing."""
    done = []
    for w in every:
        if differs(w):
            done.append(w)
            if not check:
                apply(w)
    return done


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "path", "required": True},
            "entries": {"type": "list", "elements": "dict", "required": True},
            "material": {"type": "dict", "required": True, "no_log": True},
        },
        supports_check_mode=True,
    )
    p = module.params

    def gid_of(group: str) -> int:
        try:
            return grp.getgrnam(group).gr_gid
        except KeyError:
            module.fail_json(msg=f"group {group!r} does not exist on this host (its service account is made first)")
            raise  # fail_json exits

    try:
        every = wanted(p["root"], p["entries"], p["material"], gid_of)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    plan = converge(every, check=module.check_mode)
    module.exit_json(
        changed=bool(plan),
        changed_domains=list(dict.fromkeys(w.domain for w in plan if w.content is not None)),
        diff=[{"before_header": w.path, "after_header": w.path} for w in plan],
    )


if __name__ == "__main__":
    main()
