"""The repository explains itself: no file points outside it, and every citation of
``docs/method.md §N`` in code and docs names a section that exists.

The method reference used to live in a file that is not part of the repository; these tests keep
it that way (``.ci/run`` alone may name the shared checkout it runs next to).
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
METHOD = ROOT / "docs" / "method.md"
ALLOWED_OUTSIDE = {".ci/run"}
"""Files that may name paths outside the repository."""

OUTSIDE = [
    (re.compile(r"(?<![\w./-])spec/"), "a path under spec/"),
    (re.compile(r"\.\./shared"), "../shared"),
    (re.compile(r"(?<![\w.])/work/"), "an absolute /work/ path"),
    (re.compile(r"\bspec\W{1,3}(?:section\s+)?\d", re.IGNORECASE), "a 'spec N' section citation"),
    (
        re.compile(r"\bspec\W{1,4}method\.md|\bmethod spec\b", re.IGNORECASE),
        "the outside method spec",
    ),
    (re.compile(r"\b(?:official_state_dict|metrics)\.md\b"), "a spec file name"),
]
BARE_DOC_NAME = re.compile(r"(?<![\w/.'\"-])(?:data|method)\.md\b")
"""Outside docs/, ``data.md`` or ``method.md`` without ``docs/`` is ambiguous: it was the name of
the outside spec files."""
TEXT_SUFFIXES = {".py", ".md", ".toml", ".yaml", ".yml", ".json", ".txt", ".cfg", ".ini", ".sh", ""}
CITATION = re.compile(r"docs/method\.md\W{0,4}((?:§\d+(?:\.\d+)?(?:\s*(?:-|–|and|,)\s*)?)+)")


@cache
def tracked_files() -> tuple[Path, ...]:
    """Files under version control (or, outside a git checkout, the usual source folders)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30).stdout
        names = [n for n in out.decode().split("\0") if n]
    except (OSError, subprocess.SubprocessError):
        names = [
            str(p.relative_to(ROOT))
            for d in ("src", "tests", "docs", "benchmarks")
            for p in (ROOT / d).rglob("*")
            if p.is_file()
        ]
        names += [n for n in ("README.md", "pyproject.toml") if (ROOT / n).is_file()]
    return tuple(ROOT / n for n in names if (ROOT / n).is_file())


def _text(path: Path) -> str | None:
    if path.suffix not in TEXT_SUFFIXES:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


@cache
def method_sections() -> frozenset[str]:
    """Section numbers of docs/method.md: ``## 4. Title`` -> "4", ``### 4.2 Title`` -> "4.2"."""
    text = METHOD.read_text(encoding="utf-8")
    top = re.findall(r"^## (\d+)\. \S", text, re.MULTILINE)
    sub = re.findall(r"^### (\d+\.\d+) \S", text, re.MULTILINE)
    return frozenset(top + sub)


def test_no_file_refers_outside_the_repository() -> None:
    found = []
    for path in tracked_files():
        rel = str(path.relative_to(ROOT))
        if rel in ALLOWED_OUTSIDE or rel == "tests/project/test_repo_selfcontained.py":
            continue
        text = _text(path)
        if text is None:
            continue
        patterns = OUTSIDE if rel.startswith("docs/") else [*OUTSIDE, (BARE_DOC_NAME, "a bare doc name")]
        for pattern, what in patterns:
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{rel}:{line}: {what}: {match.group(0)!r}")
    assert not found, "references to files outside the repository (cite docs/method.md §N):\n" + "\n".join(found)


def test_the_checks_catch_each_kind_of_outside_reference() -> None:
    """The patterns above fire on the forms that used to be in the code, and not on ours."""
    bad = [
        "see spec/method.md",
        "(spec 1.5)",
        "spec section 2",
        "Spec 1.2:",
        "spec ``method.md`` 1.5",
        "method spec, section 2",
        "../shared/data",
        "/work/main/src",
        "``spec/official_state_dict.md``",
        "the layout of metrics.md",
    ]
    good = [
        "docs/method.md §4.4",
        "BenchmarkSpec",
        "for spec in space",
        "ParamSpec(name)",
        "inspect/x",
    ]
    for text in bad:
        assert any(p.search(text) for p, _ in OUTSIDE), text
    assert BARE_DOC_NAME.search("the layout (``data.md``)") and not BARE_DOC_NAME.search("docs/data.md")
    for text in good:
        assert not any(p.search(text) for p, _ in OUTSIDE), text


def test_method_sections_are_numbered_in_order() -> None:
    text = METHOD.read_text(encoding="utf-8")
    top = [int(n) for n in re.findall(r"^## (\d+)\. ", text, re.MULTILINE)]
    assert top == list(range(1, len(top) + 1)), top
    for major, minor in re.findall(r"^### (\d+)\.(\d+) ", text, re.MULTILINE):
        assert major in method_sections(), f"subsection {major}.{minor} has no section {major}"


def _citations() -> list[tuple[str, int, str]]:
    out = []
    for path in tracked_files():
        text = _text(path)
        if text is None:
            continue
        rel = str(path.relative_to(ROOT))
        for match in CITATION.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            out.extend((rel, line, n) for n in re.findall(r"§(\d+(?:\.\d+)?)", match.group(1)))
    return out


def test_every_method_citation_names_an_existing_section() -> None:
    citations = _citations()
    assert len(citations) >= 30, "the code cites docs/method.md throughout; the citation pattern found too few"
    missing = [f"{rel}:{line}: docs/method.md §{n}" for rel, line, n in citations if n not in method_sections()]
    assert not missing, (
        f"citations of sections that docs/method.md does not have {sorted(method_sections())}:\n" + "\n".join(missing)
    )


def test_method_internal_section_references_exist() -> None:
    text = METHOD.read_text(encoding="utf-8")
    refs = set(re.findall(r"§(\d+(?:\.\d+)?)", text))
    assert refs <= method_sections(), sorted(refs - method_sections())


@pytest.mark.parametrize("doc", ["README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))])
def test_markdown_links_resolve(doc: str) -> None:
    """Relative links in README.md and docs/*.md lead to files of the repository."""
    path = ROOT / doc
    text = path.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        assert (path.parent / target).exists(), f"{doc}: link to missing {target}"


FILE_MENTION = re.compile(
    r"`((?:src|tests|docs|benchmarks|data|model|train|ops|extract|spaces)/[\w./-]+\.(?:py|md|yaml|json|csv))`"
)
"""A repository file named in backticks: from the root (``src/``, ``tests/``, ``docs/``,
``benchmarks/``) or from the package (``data/detect.py`` is ``src/decalign/data/detect.py``)."""
CHECKED_DOCS = ("README.md", "docs/method.md", "docs/contributing.md", "docs/data.md", "docs/ablations.md")


@pytest.mark.parametrize("doc", CHECKED_DOCS)
def test_files_named_in_the_docs_exist(doc: str) -> None:
    """The docs name real files: a move or rename in the code shows up here."""
    text = (ROOT / doc).read_text(encoding="utf-8")
    missing = [
        name
        for name in FILE_MENTION.findall(text)
        if not any((base / name).exists() for base in (ROOT, ROOT / "src" / "decalign"))
    ]
    assert not missing, f"{doc} names files that do not exist: {missing}"
