"""Results pages generated from templates (decalign.runs.page): filling, the round trip back to
the template, and the errors a hand-edited page or a bad template gives."""

from __future__ import annotations

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
