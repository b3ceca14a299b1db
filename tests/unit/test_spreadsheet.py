"""CSV exports: cells a spreadsheet would run as formulas are written as text."""

from __future__ import annotations

import csv
import io

import pytest

from daemon.commands.spreadsheet import Writer, cell


@pytest.mark.parametrize("text", ["=1+2", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_a_formula_start_is_prefixed_with_a_quote(text):
    assert cell(text) == "'" + text


@pytest.mark.parametrize("value", ["INV-9", "", "a=b", " =1", -5, 2.5, None, True])
def test_other_cells_are_left_as_they_are(value):
    assert cell(value) == value


def test_the_writer_quotes_every_cell_of_every_row():
    out = io.StringIO()
    writer = Writer(out, lineterminator="\n")
    writer.writerow(["kind", "detail"])
    writer.writerows([["=cmd|' /C calc'!A0", "@x"], ["ok", -1]])
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows == [["kind", "detail"], ["'=cmd|' /C calc'!A0", "'@x"], ["ok", "-1"]]
