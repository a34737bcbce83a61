"""The documentation is self-contained: nothing in the repository points at documents a clone does not have, and
every relative link in README.md and docs/*.md leads to a file of the repository (and to a heading, when it names
one).

"The repository" is what git would commit: tracked files plus new ones that are not ignored, so a link to
something git-ignored (.hivestack/, reports/) fails as it would in a fresh clone.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.unit

# A relative path that climbs out of its own directory (`../name`), and any absolute path under the checkout's
# parent: what a file names there is not in a clone made elsewhere. A clone made straight in a system directory
# (`/tmp/clone`) has no such neighbours of its own: there `/tmp/...` is an ordinary system path.
_CLIMBING_PATH = re.compile(rb"(?:\.\./)+[\w.-]+(?:/[\w.-]+)*")
_SYSTEM_DIRS = {Path("/"), Path("/tmp"), Path("/var/tmp"), Path(tempfile.gettempdir())}
_BESIDE_THE_CHECKOUT = (
    None
    if ROOT.parent in _SYSTEM_DIRS
    else re.compile(re.escape(f"{ROOT.parent}/").encode() + rb"(?!" + re.escape(ROOT.name).encode() + rb"/)")
)
DOC_PAGES = ("README.md", "architecture.md", "flows.md", "conventions.md", "machine-facts.md")

_FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)", re.DOTALL)
_INLINE_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


@dataclass(frozen=True)
class Link:
    source: Path  # the Markdown file, absolute
    target: str  # as written

    def __str__(self) -> str:
        return f"{self.source.relative_to(ROOT)}: ({self.target})"


def repository_files() -> set[str]:
    proc = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if proc.returncode != 0:
        pytest.fail(f"git ls-files failed in {ROOT} (the docs checks need a git checkout): {proc.stderr.strip()}")
    return {line for line in proc.stdout.splitlines() if (ROOT / line).is_file()}


def without_code(markdown: str) -> str:
    """Markdown with fenced blocks and code spans blanked: a link written inside code is an example, not a link."""
    return _CODE_SPAN.sub("", _FENCE.sub("", markdown))


def links(source: Path, markdown: str) -> list[Link]:
    text = without_code(markdown)
    targets = _INLINE_LINK.findall(text) + _REFERENCE_DEF.findall(text)
    return [Link(source, t) for t in targets if t and not _SCHEME.match(t)]


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: markup dropped, lower case, punctuation removed, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"[`*_~]|<[^>]+>", "", text).strip().lower()
    return re.sub(r"\s", "-", re.sub(r"[^\w\- ]", "", text))


def anchors(markdown: str) -> set[str]:
    """Every heading's anchor; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for heading in _HEADING.findall(_FENCE.sub("", markdown)):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def problem(link: Link, files: set[str]) -> str | None:
    """Why the link does not resolve inside the repository, or None when it does."""
    path, _, fragment = link.target.partition("#")
    target = (link.source.parent / path).resolve() if path else link.source
    try:
        relative = target.relative_to(ROOT).as_posix()
    except ValueError:
        return "leads outside the repository"
    is_dir = relative == "." or any(f.startswith(f"{relative}/") for f in files)
    if relative not in files and not is_dir:
        return "no such file in the repository"
    if fragment:
        if relative not in files or target.suffix != ".md":
            return f"#{fragment} on something that is not a Markdown file"
        if fragment not in anchors(target.read_text()):
            return f"no heading with the anchor #{fragment} in {relative}"
    return None


def markdown_sources() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


# ---------------------------------------------------------------- the repository


def test_docs_pages_exist():
    missing = [page for page in DOC_PAGES if not (ROOT / "docs" / page).is_file()]
    assert not missing, f"docs/ lacks {missing}"


def outside_references(name: str, content: bytes) -> list[str]:
    """Where a repository file points at something outside the checkout: `line: what`."""
    found = []
    base = (ROOT / name).parent
    for match in _CLIMBING_PATH.finditer(content):
        target = (base / match.group().decode()).resolve()
        if not target.is_relative_to(ROOT):
            found.append((match.start(), match.group().decode()))
    if _BESIDE_THE_CHECKOUT is not None:
        found += [(m.start(), m.group().decode()) for m in _BESIDE_THE_CHECKOUT.finditer(content)]
    newline = b"\n"
    return [f"{content[:at].count(newline) + 1}: {what}" for at, what in sorted(found)]


def test_no_file_refers_to_anything_outside_the_repository():
    offenders = [
        f"{name}:{where}"
        for name in sorted(repository_files())
        for where in outside_references(name, (ROOT / name).read_bytes())
    ]
    assert not offenders, "keep what the project relies on in docs/ and point there:\n" + "\n".join(offenders)


def test_outside_references_are_found() -> None:
    beside = f"{ROOT.parent}/elsewhere/notes.md".encode()
    inside = f"{ROOT}/docs/README.md".encode()
    content = b"ok: docs/flows.md\nout: ../../notes/x.md\n" + beside + b"\n" + inside + b"\n"
    beside_found = [] if _BESIDE_THE_CHECKOUT is None else [f"3: {ROOT.parent}/"]
    assert outside_references("README.md", content) == ["2: ../../notes/x.md", *beside_found]
    assert outside_references("docs/flows.md", b"see ../README.md") == []


def test_every_relative_link_resolves():
    files = repository_files()
    found = [link for source in markdown_sources() for link in links(source, source.read_text())]
    assert found, "no relative link found at all: is the link parser broken?"
    broken = [f"{link}: {why}" for link in found if (why := problem(link, files))]
    assert not broken, "\n".join(broken)


def test_readme_points_to_the_docs():
    readme = ROOT / "README.md"
    assert any(link.target.startswith("docs/") for link in links(readme, readme.read_text()))


def test_docs_index_lists_every_page():
    index = ROOT / "docs" / "README.md"
    listed = {link.target.partition("#")[0] for link in links(index, index.read_text())}
    pages = {p.name for p in (ROOT / "docs").glob("*.md")} - {"README.md"}
    assert pages <= listed, f"docs/README.md does not list {sorted(pages - listed)}"


# ---------------------------------------------------------------- the checker itself


def test_links_skip_code_and_absolute_urls():
    source = ROOT / "docs" / "example.md"
    text = (
        "[a](a.md) and ![img](img/x.png) and [web](https://example.org/x) and [mail](mailto:x@example.org)\n"
        '`[inline](not-a-link.md)`\n```\n[fenced](not-a-link-either.md)\n```\n[ref]: ref.md "title"\n'
    )
    assert [link.target for link in links(source, text)] == ["a.md", "img/x.png", "ref.md"]


def test_slugs_and_repeated_headings():
    text = "# Files and state\n## `hivestack drift`: why?\n## Tests\n## Tests\n```\n# not a heading\n```\n"
    assert anchors(text) == {"files-and-state", "hivestack-drift-why", "tests", "tests-1"}


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("architecture.md", None),
        ("architecture.md#components", None),
        ("../README.md#the-lab", None),
        ("../src/hivestack", None),
        ("missing.md", "no such file in the repository"),
        ("architecture.md#no-such-heading", "no heading with the anchor #no-such-heading in docs/architecture.md"),
        ("../../outside.md", "leads outside the repository"),
        ("../.hivestack/passphrase", "no such file in the repository"),  # git-ignored: absent from a clone
    ],
)
def test_problem_of_a_link(target, why):
    source = ROOT / "docs" / "flows.md"
    assert problem(Link(source, target), repository_files()) == why
