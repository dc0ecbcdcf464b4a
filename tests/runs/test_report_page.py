"""Results pages generated from templates (decalign.runs.page): filling, the round trip back to
the template, and the errors a hand-edited page or a bad template gives."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from decalign.errors import UsageError
from decalign.runs.page import END_MARKER, MAX_DIRECTIVES, Directive, directives, fill, strip_generated

TEMPLATE = """# Results

Some prose.

<!-- decalign report --split test "frozen=a,b" recipe -->

More prose, then a second table:
<!-- decalign report --distribution x -->
The end.
"""


def _render(d: Directive) -> str:
    return f"| table | {' '.join(d.args)} |\n|---|---|\n| line {d.line} | x |"


def test_directives_are_split_like_a_shell_and_numbered() -> None:
    found = directives(TEMPLATE)
    assert found == [Directive(5, ("--split", "test", "frozen=a,b", "recipe")), Directive(8, ("--distribution", "x"))]


def test_fill_puts_each_output_after_its_directive_and_strip_gives_the_template_back() -> None:
    page = fill(TEMPLATE, _render)
    lines = page.splitlines()
    d = lines.index('<!-- decalign report --split test "frozen=a,b" recipe -->')
    assert lines[d + 1] == ""
    assert lines[d + 2] == "| table | --split test frozen=a,b recipe |"
    assert lines[d + 4] == "| line 5 | x |"
    assert lines[d + 5: d + 7] == ["", END_MARKER]
    assert page.count(END_MARKER) == 2
    assert strip_generated(page) == TEMPLATE
    # filling the stripped page again gives the same page: regeneration is idempotent
    assert fill(strip_generated(page), _render) == page


def test_a_page_given_as_a_template_is_refused() -> None:
    with pytest.raises(UsageError, match=r"results.md:11: holds generated text"):
        directives(fill(TEMPLATE, _render), "results.md")


def test_a_page_with_a_cut_generated_block_names_the_directive_line() -> None:
    page = fill(TEMPLATE, _render)
    cut = page.replace(END_MARKER + "\n", "", 1)
    with pytest.raises(UsageError, match=r"page.md:5: a directive's generated text has no end marker"):
        strip_generated(cut, "page.md")


@pytest.mark.parametrize(("line", "message"), [
    ('<!-- decalign report "unclosed -->', "cannot be split"),
    ("<!-- decalign report  -->", "names no run"),
])
def test_bad_directives_name_their_line(line: str, message: str) -> None:
    with pytest.raises(UsageError, match=rf"t.md:2: .*{message}"):
        directives(f"# x\n{line}\n", "t.md")


def test_bounds_are_checked_before_any_directive_runs() -> None:
    calls: list[Directive] = []
    many = "".join(f"<!-- decalign report r{i} -->\n" for i in range(MAX_DIRECTIVES + 1))
    with pytest.raises(UsageError, match=f"more than {MAX_DIRECTIVES} directives"):
        fill(many, lambda d: calls.append(d) or "")
    assert calls == []
    with pytest.raises(UsageError, match="more than a page template may hold"):
        directives("x" * 1_000_001)


# -- decalign report --page: the command line over real run directories ---------------------------

def _runs(root: Path) -> Path:
    from test_report import make_run, noisy

    runs = root / "runs"
    make_run(runs, "a", {1: noisy(1), 2: noisy(2)})
    make_run(runs, "b", {1: noisy(3, 0.3), 2: noisy(4, 0.3)})
    return runs


PAGE_TEMPLATE = """# Results

Both settings, paired on the same samples:

<!-- decalign report --bootstrap 200 "first=runs/a" "second=runs/b" -->

Over seeds:
<!-- decalign report --distribution "first=runs/a" -->
"""


def test_report_page_fills_every_directive_with_what_the_command_prints(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from decalign.cli import main
    from decalign.runs import parse_groups, report, seed_distribution

    _runs(tmp_path)
    template = tmp_path / "page.template.md"
    template.write_text(PAGE_TEMPLATE)
    out = tmp_path / "page.md"
    assert main(["report", "--page", str(template), "--page-out", str(out), "--runs-root", str(tmp_path)]) == 0
    assert "(2 tables from" in capsys.readouterr().out
    page = out.read_text()
    assert strip_generated(page) == PAGE_TEMPLATE  # the prose is the template's, untouched
    groups = {k: [tmp_path / p for p in v] for k, v in parse_groups(["first=runs/a", "second=runs/b"]).items()}
    # the command's own tables, two heading levels down and with paths relative to --runs-root
    expected = report(groups, n_boot=200).to_markdown().replace(f"{tmp_path.resolve()}/", "")
    expected = expected.replace("\n## ", "\n#### ").replace("\n### ", "\n##### ").replace("# Runs", "### Runs")
    assert expected.strip("\n") in page
    assert "| mae | second |" in page and "| path | runs/b |" in page
    assert str(tmp_path) not in page
    dist = seed_distribution({"first": [tmp_path / "runs/a"]}).to_markdown()
    assert "\n".join(line for line in dist.splitlines() if line.startswith("|")) in page
    # the page exists now: filling again needs --overwrite, and the template is never the output
    assert main(["report", "--page", str(template), "--page-out", str(out), "--runs-root", str(tmp_path)]) != 0
    assert "--page-out" in capsys.readouterr().err
    assert main(["report", "--page", str(template), "--page-out", str(template), "--runs-root", str(tmp_path),
                 "--overwrite"]) != 0
    assert "--page-out" in capsys.readouterr().err
    assert template.read_text() == PAGE_TEMPLATE


@pytest.mark.parametrize(("directive", "message"), [
    ('"x=../outside"', r"page.template.md:3: .*run directory '../outside'"),
    ('"x=/etc"', r"^decalign: error: [^:]*page.template.md:3: run directory '/etc' is an absolute path"),
    ("--out somewhere runs/a", r"page.template.md:3: a directive prints one table and writes nothing: drop --out"),
    ("--no-such-flag runs/a", r"page.template.md:3: unrecognized arguments: --no-such-flag"),
    ("runs/missing", r"page.template.md:3: .*missing"),
])
def test_a_bad_directive_is_one_line_naming_its_line_and_nothing_is_written(
        tmp_path: Path, directive: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from decalign.cli import main

    _runs(tmp_path)
    template = tmp_path / "page.template.md"
    template.write_text(f"# R\n\n<!-- decalign report {directive} -->\n")
    out = tmp_path / "page.md"
    assert main(["report", "--page", str(template), "--page-out", str(out), "--runs-root", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_the_results_page_is_its_template_plus_generated_tables() -> None:
    """docs/results-real.md is made by `decalign report --page docs/templates/results-real.md`: its
    prose is the template's, and every directive of the template has its table (none edited away)."""
    docs = Path(__file__).resolve().parents[2] / "docs"
    template = (docs / "templates" / "results-real.md").read_text()
    page = (docs / "results-real.md").read_text()
    assert strip_generated(page, "docs/results-real.md") == template
    assert page.count(END_MARKER) == len(directives(template)) > 0
