"""A results page whose numbers are generated: a markdown template with ``decalign report``
directives, filled from the runs they name.

A page of results written by hand drifts from the runs it describes (a table pasted from one
version of the code, a number retyped from another). Here the prose is written by hand in a
*template* and every table is a directive, a comment line that is a ``decalign report`` command
line::

    <!-- decalign report --distribution "frozen=frozen" "recipe=recipe_a,recipe_b" -->

Filling the template (``decalign report --page TEMPLATE --page-out PAGE``) copies it to the page
with each directive's output inserted after the directive, up to an end marker. The directive
stays in the page, so a reader sees how each table was made and can rerun it; and
:func:`strip_generated` of the page gives the template back exactly, so a test can check that a
page in the repository was generated from its template and not edited by hand.

Pure text functions: running a directive is the caller's job (the command line parses it with
the report command's own parser), so this module needs neither argparse nor the runs.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass

from decalign.errors import UsageError

__all__ = ["END_MARKER", "MAX_DIRECTIVES", "MAX_TEMPLATE_CHARS", "Directive", "directives", "fill", "strip_generated"]

MAX_TEMPLATE_CHARS = 1_000_000
"""Longest template accepted (a results page is a few tens of KB)."""
MAX_DIRECTIVES = 200
"""Most directives in one template: each reads runs and bootstraps, so the count bounds the work."""
END_MARKER = "<!-- end of generated table -->"
"""The line after a directive's output in a filled page."""

_DIRECTIVE = re.compile(r"^<!-- decalign report (?P<args>.*) -->$")


@dataclass(frozen=True)
class Directive:
    """One ``decalign report`` command line of a template, with its 1-based line number."""

    line: int
    args: tuple[str, ...]


def _check_size(text: str, where: str) -> None:
    if len(text) > MAX_TEMPLATE_CHARS:
        raise UsageError(f"{where}: {len(text)} characters, more than a page template may hold ({MAX_TEMPLATE_CHARS})")


def directives(template: str, where: str = "template") -> list[Directive]:
    """The directives of ``template`` in order; ``where`` names the file in errors.

    Raises:
        UsageError: the template is too long, has too many directives, a directive that shlex
            cannot split (an unclosed quote) or that is empty, or already holds generated text
            (an end marker: a filled page given as a template).
    """
    _check_size(text=template, where=where)
    found: list[Directive] = []
    for number, line in enumerate(template.splitlines(), start=1):
        if line.strip() == END_MARKER:
            raise UsageError(f"{where}:{number}: holds generated text (an end marker): give the template, not the page")
        match = _DIRECTIVE.match(line.strip())
        if match is None:
            continue
        try:
            args = tuple(shlex.split(match["args"]))
        except ValueError as exc:
            raise UsageError(f"{where}:{number}: the directive cannot be split into arguments ({exc})") from None
        if not args:
            raise UsageError(f"{where}:{number}: the directive names no run")
        found.append(Directive(number, args))
        if len(found) > MAX_DIRECTIVES:
            raise UsageError(f"{where}: more than {MAX_DIRECTIVES} directives")
    return found


def fill(template: str, render: Callable[[Directive], str], where: str = "template") -> str:
    """The page: ``template`` with ``render(directive)`` (markdown) and :data:`END_MARKER` after
    each directive line. A blank line separates the output from the directive and the marker, so
    markdown renders the table as a block of its own."""
    todo = {d.line: d for d in directives(template, where)}
    out: list[str] = []
    for number, line in enumerate(template.splitlines(keepends=True), start=1):
        out.append(line)
        if number in todo:
            body = render(todo[number]).strip("\n")
            newline = "" if line.endswith("\n") else "\n"
            out.append(f"{newline}\n{body}\n\n{END_MARKER}\n")
    return "".join(out)


def strip_generated(page: str, where: str = "page") -> str:
    """The template a page was filled from: every directive's output and end marker removed.

    Raises:
        UsageError: a directive without its end marker (the page was cut or edited by hand).
    """
    _check_size(page, where)
    out: list[str] = []
    skipping_from: int | None = None
    for number, line in enumerate(page.splitlines(keepends=True), start=1):
        if skipping_from is not None:
            if _DIRECTIVE.match(line.strip()):
                break  # the next directive before this one's end marker
            if line.strip() == END_MARKER:
                skipping_from = None
            continue
        out.append(line)
        if _DIRECTIVE.match(line.strip()):
            skipping_from = number
    if skipping_from is not None:
        raise UsageError(f"{where}:{skipping_from}: a directive's generated text has no end marker")
    text = "".join(out)
    return text
