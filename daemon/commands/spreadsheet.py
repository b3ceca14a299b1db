"""CSV for spreadsheets: every export (``remap check --csv``, ``reconcile --csv``) writes here.

A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a
formula by spreadsheet programs (CSV injection: ``=HYPERLINK(...)`` in an ERP document
number, an order's field). Such a text cell is written with a leading ``'``, which
spreadsheets show as text. Numbers are left alone: ``-5`` is a number, not a formula.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, TextIO

#: What makes a spreadsheet read a cell as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """``value`` as a spreadsheet must see it: text that would run as a formula quoted."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class Writer:
    """``csv.writer`` whose every cell goes through :func:`cell`."""

    def __init__(self, stream: TextIO, *, lineterminator: str = "\r\n") -> None:
        self._out = csv.writer(stream, lineterminator=lineterminator)

    def writerow(self, row: Iterable[Any]) -> None:
        self._out.writerow([cell(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)
