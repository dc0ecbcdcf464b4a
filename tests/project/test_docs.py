"""Docs that hold: every Python snippet and ``decalign`` command line of README.md and docs/*.md
runs on the built-in data, every relative link resolves, every dotted ``decalign.*`` name exists.

How the snippets are run (so that the whole file stays within CI time):

* The fenced ``bash`` and ``python`` blocks of each document run in order, in one temporary
  working directory per document (a later line may use an earlier one's output).
* A block right after an HTML comment ``<!-- doc-test: parse-only (REASON) -->`` needs what CI
  does not have (benchmark files, several machines, a database): its command lines are only parsed
  by the real argument parser (unknown flags and bad choices fail) and its Python is only compiled.
  ``<!-- doc-test: parse-only-all (REASON) -->`` anywhere in a document does that for all its
  blocks (docs/scaling.md: every example needs several processes or machines).
* In a bash block, each line (``\\`` continuations joined, comments dropped) that calls ``decalign``
  (also as ``python -m decalign`` or under ``torchrun ... -m decalign``) is run in-process with
  :func:`decalign.cli.main` and must exit 0; other lines (``pip install``, ``python -m pytest``)
  are not run here (CI runs the install and the test command itself).
* ``train``, ``bench`` and ``sweep`` get :data:`SMALL` injected as the first ``--set`` values (the
  line's own settings and flags still win), and Python snippets get it through
  ``decalign.resolve_config``: tiny model and data, one epoch.
"""

from __future__ import annotations

import importlib
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

import decalign
from decalign.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PARSE_ONLY = re.compile(r"<!--\s*doc-test:\s*parse-only\s.*?-->")
PARSE_ONLY_ALL = re.compile(r"<!--\s*doc-test:\s*parse-only-all\s.*?-->")
SMALL = [
    "model.d_model=16", "model.fusion.num_heads=2", "model.fusion.num_layers=1", "model.homogeneity.pde_dim=8",
    "train.batch_size=16", "train.num_threads=1", "train.num_epochs=1",
    "data.synthetic.n_train=48", "data.synthetic.n_valid=24", "data.synthetic.n_test=24",
    "data.synthetic.seq_len=8",
]
SEPARATORS = {"&", "&&", ";", "|", "||", "done", "wait"}


@dataclass
class Block:
    document: Path
    line: int
    lang: str
    body: str
    parse_only: bool

    def __str__(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def _blocks(document: Path) -> list[Block]:
    text = document.read_text(encoding="utf-8")
    everything = bool(PARSE_ONLY_ALL.search(text))
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\w+)\s*$", lines[i])
        if not m:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        parse_only = everything or bool(PARSE_ONLY.search(before))
        blocks.append(Block(document, i + 1, m.group(1), "\n".join(lines[i + 1:end]), parse_only))
        i = end + 1
    return blocks


def _commands(body: str) -> list[list[str]]:
    """The ``decalign`` argument lists of a bash block, one per command (optional flags written
    as ``[--flag VALUE]`` left out)."""
    out = []
    for line in body.replace("\\\n", " ").splitlines():
        tokens = shlex.split(re.sub(r"\s\[-[^\]]*\]", "", line), comments=True)
        if "decalign" not in tokens:
            continue
        start = tokens.index("decalign") + 1
        argv = []
        for tok in tokens[start:]:
            if tok in SEPARATORS or tok.rstrip(";&") != tok:
                break
            argv.append(tok)
        out.append(argv)
    return out


def _small(argv: list[str]) -> list[str]:
    if not argv or argv[0] not in ("train", "bench", "sweep") or "--report" in argv:
        return argv
    if "--set" in argv:
        i = argv.index("--set") + 1
        return [*argv[:i], *SMALL, *argv[i:]]
    return [*argv, "--set", *SMALL]


def _all_blocks() -> list[Block]:
    return [b for d in DOCUMENTS for b in _blocks(d) if b.lang in ("bash", "sh", "python")]


def test_the_docs_have_runnable_snippets() -> None:
    runnable = [b for b in _all_blocks() if not b.parse_only]
    assert any(b.lang == "python" for b in runnable) and any(_commands(b.body) for b in runnable if b.lang == "bash")


@pytest.mark.parametrize("block", [b for b in _all_blocks() if b.parse_only], ids=str)
def test_parse_only_snippets_parse(block: Block) -> None:
    if block.lang == "python":
        compile(block.body, str(block), "exec")
        return
    parser = build_parser()
    for argv in _commands(block.body):
        try:
            parser.parse_args(argv)
        except SystemExit as exit_:
            pytest.fail(f"{block}: `decalign {' '.join(argv)}` does not parse (exit {exit_.code})")


@pytest.mark.slow
@pytest.mark.parametrize("document", [d for d in DOCUMENTS if any(not b.parse_only for b in _blocks(d)
                                                                    if b.lang in ("bash", "sh", "python"))],
                         ids=lambda d: str(d.relative_to(ROOT)))
def test_snippets_run_on_the_built_in_data(document: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    resolve = decalign.resolve_config

    def small_resolve(data, preset=None, overrides=(), path=None):  # type: ignore[no-untyped-def]
        return resolve(data, preset, [*SMALL, *overrides], path=path)

    monkeypatch.setattr(decalign, "resolve_config", small_resolve)
    for block in _blocks(document):
        if block.parse_only or block.lang not in ("bash", "sh", "python"):
            continue
        if block.lang == "python":
            exec(compile(block.body, str(block), "exec"), {"__name__": "__doc_snippet__"})
            continue
        for argv in _commands(block.body):
            assert main(_small(argv)) == 0, (
                f"{block}: `decalign {' '.join(argv)}` failed on the built-in data; if the block needs files CI "
                "does not have, put `<!-- doc-test: parse-only (REASON) -->` on the line before it")


def _prose(text: str) -> str:
    """The document without its fenced code blocks (links there are examples, not links)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: str(d.relative_to(ROOT)))
def test_relative_links_resolve(document: Path) -> None:
    text = _prose(document.read_text(encoding="utf-8"))
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL or an anchor in the same page
        if not (document.parent / target.split("#", 1)[0]).exists():
            broken.append(target)
    assert not broken, f"{document.relative_to(ROOT)} links to missing files: {broken}"


def _resolve(dotted: str) -> object:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: str(d.relative_to(ROOT)))
def test_dotted_decalign_names_exist(document: Path) -> None:
    files = ("json", "yaml", "yml", "csv", "pkl", "npz", "png", "md", "py", "pt", "pt2", "ts", "onnx", "safetensors")
    names = {n for n in re.findall(r"`(decalign(?:\.[A-Za-z_]\w*)+)`", document.read_text(encoding="utf-8"))
             if n.rsplit(".", 1)[-1] not in files}  # `decalign.json` is a file name, not a Python name
    missing = []
    for name in sorted(names):
        try:
            _resolve(name)
        except (ImportError, AttributeError):
            missing.append(name)
    assert not missing, f"{document.relative_to(ROOT)} names what does not exist: {missing}"
