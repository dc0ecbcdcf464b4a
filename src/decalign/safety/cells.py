"""CSV cells that a spreadsheet cannot take for a formula.

decalign writes back text that came from users' files (clip ids, transcripts' media paths, class
names, run names, error details) into CSV files that people open in spreadsheet programs. A cell
that begins with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return, which some programs
strip before looking) is run as a formula there: ``=HYPERLINK(...)`` can leak data, ``=cmd|...``
start programs (CSV or "formula" injection). The usual defence, and what the spreadsheet programs
themselves do when they export text, is a leading single quote: the cell is shown as text.

:func:`escape_cell` is the one place where that is decided; every CSV writer of decalign goes
through :func:`csv_writer` (or calls :func:`escape_row`). Numbers stay numbers: ``-0.5`` (the
float or the text) is a value, not a formula, and is written unchanged, so files stay readable
by :mod:`csv` and pandas without unescaping.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["FORMULA_STARTS", "SafeWriter", "csv_writer", "escape_cell", "escape_row"]

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""First characters with which a spreadsheet program reads a cell as a formula."""


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def escape_cell(value: Any) -> Any:
    """``value`` as it may be written into a CSV cell: text that a spreadsheet would run as a
    formula gets a leading ``'``; numbers (and text that is a number, such as ``-0.5`` or
    ``-inf``) and everything else are returned unchanged."""
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS):
        return value
    if value[0] in "+-" and _is_number(value):
        return value
    return "'" + value


def escape_row(row: Iterable[Any]) -> list[Any]:
    """:func:`escape_cell` of every cell of ``row``."""
    return [escape_cell(cell) for cell in row]


class SafeWriter:
    """A :func:`csv.writer` whose rows go through :func:`escape_row` (``writerow``/``writerows``)."""

    def __init__(self, stream: Any, **options: Any) -> None:
        self._writer = csv.writer(stream, **options)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow(escape_row(row))

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)

    def write_dict(self, fieldnames: Iterable[str], row: Mapping[str, Any], restval: Any = "") -> Any:
        """One row of a mapping, in ``fieldnames`` order (what :class:`csv.DictWriter` does)."""
        return self.writerow([row.get(k, restval) for k in fieldnames])


def csv_writer(stream: Any, **options: Any) -> SafeWriter:
    """:func:`csv.writer` (same options) that escapes every cell with :func:`escape_cell`."""
    return SafeWriter(stream, **options)
