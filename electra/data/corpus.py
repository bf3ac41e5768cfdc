"""Raw pre-training text -> documents (lists of lines), streamed file by file.

Reads plain text (blank lines separate documents), JSON lines (`--text-field` holds the text),
CSV/TSV tables with a header (`--text-field` names the column or columns: a task's own training
text), WikiExtractor `<doc>` files, gzip of any of these, directories and glob patterns. Formats are
sniffed per file so a mixed corpus works; files are never read whole, so corpus size is unbounded.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import logging
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain
from pathlib import Path

from electra.data.shards import MANIFEST
from electra.data.tables import DELIMITERS, column_indices, table_rows
from electra.errors import DataError

log = logging.getLogger(__name__)

_GLOB_CHARS = frozenset("*?[")
_JSON_EXTS = (".jsonl", ".json", ".ndjson")


def expand_paths(paths: Sequence[str | Path] | str | Path) -> list[Path]:
    """Files named directly, found under directories (recursive, sorted, no hidden entries) or
    matched by glob patterns; empty files are dropped. Order is deterministic."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    found: list[Path] = []
    seen: set[Path] = set()  # directories walked, resolved: a symlink back up is walked once
    for raw in paths:
        p = Path(raw)
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            if (p / MANIFEST).is_file() and any(p.glob("*.bin")):
                raise DataError(f"{p} holds shards written by electra preprocess, not text; pass it as --data {p}")
            found.extend(_walk(p, seen))
        elif _GLOB_CHARS & set(str(raw)):
            matches = sorted(glob.glob(str(raw), recursive=True))
            if not matches:
                raise DataError(f"corpus pattern {raw} matched no files; check --corpus")
            for m in matches:
                mp = Path(m)
                found.extend(_walk(mp, seen) if mp.is_dir() else [mp])
        else:
            raise DataError(f"corpus path {raw} does not exist; check --corpus")
    seen_files: set[Path] = set()  # a file named twice (or by another spelling or link) is read once,
    unique = [f for f in found if not (f.resolve() in seen_files or seen_files.add(f.resolve()))]  # where first named
    files = [f for f in unique if f.stat().st_size > 0]
    if not files:
        where = ", ".join(str(p) for p in paths) or "(nothing)"
        raise DataError(f"no non-empty files found in {where}; check --corpus")
    return files


def _walk(root: Path, seen: set[Path]) -> list[Path]:
    if root.resolve() in seen:
        return []
    seen.add(root.resolve())
    out: list[Path] = []
    for child in sorted(root.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            out.extend(_walk(child, seen))
        elif child.is_file():
            out.append(child)
    return out


def iter_documents(
    paths: Sequence[str | Path] | str | Path,
    text_field: str = "text",
    *,
    progress: Callable[[int], None] | None = None,
) -> Iterator[list[str]]:
    """Yield each document as its non-empty, stripped lines, in file order.

    `progress`, if given, is called with the number of on-disk bytes consumed since its last
    call (compressed bytes for .gz), so a caller can drive a byte progress bar."""
    for path in expand_paths(paths):
        yield from iter_file_documents(path, text_field, progress=progress)


def iter_file_documents(
    path: Path, text_field: str = "text", *, progress: Callable[[int], None] | None = None
) -> Iterator[list[str]]:
    """Documents of one file; the format is sniffed from its name and first non-empty line."""
    path = Path(path)
    gz = path.name.lower().endswith(".gz")
    inner = path.name[:-3] if gz else path.name
    with open(path, "rb") as raw:
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw
        # utf-8-sig: a leading byte-order mark (Excel's "CSV UTF-8", Notepad) is not text
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="strict", newline=None)
        reported = 0
        try:
            lines = enumerate(text, start=1)  # numbers only for file:line in errors
            head: list[tuple[int, str]] = []
            for item in lines:
                head.append(item)
                if item[1].strip():
                    break
            first = head[-1][1].lstrip() if head else ""
            if "\x00" in first:
                raise DataError(_binary(path))
            all_lines = chain(head, lines)
            table = DELIMITERS.get(Path(inner).suffix.lower())
            if inner.lower().endswith(_JSON_EXTS):
                parse = _jsonl_docs(all_lines, path, text_field)
            elif table is not None:
                parse = _table_docs(all_lines, path, text_field, table)
            elif first.startswith("<doc"):
                parse = _wiki_docs(all_lines)
            elif not inner.lower().endswith(".txt") and first.startswith("{") and _is_json_object(first):
                parse = _jsonl_docs(all_lines, path, text_field)
            else:
                parse = _text_docs(all_lines)
            for doc in parse:
                if progress is not None:
                    pos = raw.tell()
                    progress(pos - reported)
                    reported = pos
                yield doc
        except UnicodeDecodeError as e:
            raise DataError(_not_utf8(path, gz)) from e
        except (gzip.BadGzipFile, EOFError, zlib.error) as e:
            raise DataError(_bad_gzip(path, e)) from e
        if progress is not None:
            progress(path.stat().st_size - reported)


def _not_utf8(path: Path, gz: bool) -> str:
    """Where the first byte that is not UTF-8 is (the decoder reads ahead in blocks, so the line
    it had reached says little): the file is read again, line by line, to find it."""
    offset = 0
    try:
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
            for number, line in enumerate(f, start=1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as e:
                    if b"\x00" in line:
                        return _binary(path)
                    return (f"{path}:{number} is not UTF-8 (byte {offset + e.start}: 0x{line[e.start]:02x}); fix "
                            "that line, convert the file (iconv -f ITS_ENCODING -t utf-8), or drop such bytes "
                            "(iconv -c -f utf-8 -t utf-8)")
                offset += len(line)
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:  # a torn archive, past the bad bytes read so far
        return _bad_gzip(path, e)
    return f"{path} is not UTF-8 text; convert it to UTF-8 or remove it from --corpus"


def _binary(path: Path) -> str:
    return f"{path} is not UTF-8 text (binary file?); remove it from --corpus"


def _bad_gzip(path: Path, e: BaseException) -> str:
    return f"{path} is not a valid gzip file ({e}); re-create or remove it"


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _text_docs(lines: Iterable[tuple[int, str]]) -> Iterator[list[str]]:
    doc: list[str] = []
    for _, line in lines:
        line = line.strip()
        if line:
            doc.append(line)
        elif doc:
            yield doc
            doc = []
    if doc:
        yield doc


def _wiki_docs(lines: Iterable[tuple[int, str]]) -> Iterator[list[str]]:
    # <doc ...> / title line / paragraphs / </doc>; text outside <doc> is ignored
    doc: list[str] | None = None
    need_title = False
    for _, line in lines:
        line = line.strip()
        if not line:
            continue
        if line.startswith("<doc") and line.endswith(">"):
            doc, need_title = [], True
        elif line == "</doc>":
            if doc:
                yield doc
            doc = None
        elif doc is not None:
            if need_title:
                need_title = False  # the title repeats the <doc title=...>; not body text
            else:
                doc.append(line)
    if doc:  # file cut before </doc>: keep what was there
        yield doc


def _jsonl_docs(lines: Iterable[tuple[int, str]], path: Path, field: str) -> Iterator[list[str]]:
    for lineno, line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise DataError(f"{path}:{lineno} is not valid JSON ({e.__class__.__name__}: {e}); "
                            "fix or remove that line") from e
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{lineno} is a JSON {type(obj).__name__}, not an object; "
                            "each line must be an object holding the text field")
        if field not in obj:
            keys = ", ".join(map(repr, list(obj)[:5]))  # repr: a key may hold a newline
            raise DataError(f"{path}:{lineno} has no field {field!r} (fields: {keys}); "
                            "set --text-field to the field holding the text")
        value = obj[field]
        if value is None:  # exported datasets write null for a missing text: an empty document
            continue
        if not isinstance(value, str):
            raise DataError(f"{path}:{lineno} field {field!r} is a {type(value).__name__}, not "
                            "a string; set --text-field to the field holding the text")
        doc = _lines(value)
        if doc:
            yield doc


def _lines(*texts: str) -> list[str]:
    """A field's text as document lines: split at newlines, stripped, empty ones dropped."""
    return [s for s in (part.strip() for text in texts for part in text.split("\n")) if s]


def _table_docs(lines: Iterable[tuple[int, str]], path: Path, fields: str, delimiter: str) -> Iterator[list[str]]:
    """One document per row: the lines of the column `fields` names or, where no column is called
    that, of several joined by commas."""
    rows = table_rows((line for _, line in lines), path, delimiter)
    first = next(rows, None)
    if first is None:
        return
    header = first[1]
    names = [fields] if fields in header else [f.strip() for f in fields.split(",")]
    columns = column_indices(header, names, path, "set --text-field to the column holding the text, "
                                                  "or several joined by commas")
    for _, row in rows:
        doc = _lines(*(row[i] for i in columns if i < len(row)))  # a short row's missing cells: empty
        if doc:
            yield doc
