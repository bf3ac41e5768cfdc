"""CSV and TSV tables with a header row, read by one set of rules for pre-training corpora
(`--corpus train.tsv --text-field sentence`) and for fine-tuning data (`--train my.csv`), so a
file that one accepts the other reads the same way.

TSV is read without quoting (GLUE's sentences hold bare `"`), CSV with standard quoting (a quoted
field may hold the delimiter or line breaks; a quote left open is an error at its line, not the
rest of the file read as one cell). Blank rows are skipped; cells may be of any size (one article
per row is a valid corpus). A row with more fields than the header has the delimiter inside
unquoted text and is refused; a row with fewer is the caller's to judge (a corpus reads the missing
cells as empty, fine-tuning data needs its text and label)."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from electra.errors import DataError, first_line

DELIMITERS = {".csv": ",", ".tsv": "\t"}


def table_rows(lines: Iterable[str], path: Path, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(line the row ends on, its cells) for the header and every non-blank row after it, none
    wider than the header. `lines` keep their line ends (a quoted line break needs them)."""
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # rows stream, so a cell's size is no risk
    reader = csv.reader(lines, delimiter=delimiter, quoting=quoting, strict=True)
    header: list[str] | None = None
    last = 0  # the line the previous row ended on: an open quote's error names the next one
    try:
        for row in reader:
            if any(cell.strip() for cell in row):  # blank rows are skipped
                if header is None:
                    header = row
                elif len(row) > len(header):
                    fix = "quote the text that holds a comma" if delimiter == "," else \
                        "remove the tab inside its text (TSV has no quoting)"
                    raise DataError(f"{path}:{reader.line_num} has {len(row)} fields, the header {len(header)}; {fix}")
                yield reader.line_num, row
            last = reader.line_num
    except csv.Error as e:  # a quote left open (strict: reported where its row starts), a NUL byte
        raise DataError(f"{path}:{last + 1} cannot be read as a {'CSV' if delimiter == ',' else 'TSV'} "
                        f"table ({first_line(e)}); fix that row or save the text as JSONL") from None


def column_indices(header: list[str], names: list[str], path: Path, fix: str) -> list[int]:
    """Where each of `names` is in `header`; a missing one is an error that lists the columns there
    are and ends with `fix` (the option that names the column)."""
    for n in names:
        if n not in header:
            raise DataError(f"{path} has no column {n!r} (columns: {shown_columns(header)}); {fix}")
    return [header.index(n) for n in names]


def shown_columns(header: list[str]) -> str:
    """A header for an error message: the first 8 names, each cut at 40 characters (a file of
    another format, JSON say, has its whole first line as one 'column')."""
    return ", ".join(repr(h if len(h) <= 40 else h[:40] + "...") for h in header[:8]) + \
        (", ..." if len(header) > 8 else "")
