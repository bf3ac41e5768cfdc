"""Atomic directory writes and file checksums.

Shards, tokenizers, exports and checkpoints are all written into a directory beside their
target and renamed into place, so an interrupted or failed write never leaves a half-written
directory under the name a later command reads; sha256 checksums catch what a rename cannot
(bytes changed or lost later)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_MARK = ".tmp-"  # in the names of atomic_dir's and write_text_atomic's half-written outputs


def is_atomic_tmp(name: str) -> bool:
    """A leftover of an interrupted atomic write: a directory's own, never the user's."""
    return name.startswith(".") and TMP_MARK in name


@contextmanager
def atomic_dir(out: str | Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield an empty temporary directory next to `out`; when the block succeeds it becomes
    `out`, when it raises (or is interrupted) it is deleted and `out` is left as it was.

    `out` may be missing or an empty directory; with `replace`, an existing `out` is removed
    just before the rename (the caller has checked it may be)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}{TMP_MARK}", dir=out.parent))
    try:
        yield tmp
        if out.is_dir() and (replace or not any(out.iterdir())):
            shutil.rmtree(out)  # rename cannot replace a directory on every OS
        os.rename(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text_atomic(path: Path, text: str) -> Path:
    """Replace one file in place: write a temporary sibling, then rename it over `path`."""
    tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def sha256_file(path: Path, block: int = 1 << 24) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def tree_checksums(root: Path) -> dict[str, str]:
    """sha256 of every file under `root` (relative path -> hex), each flushed to disk first."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            with open(p, "rb+") as f:
                os.fsync(f.fileno())
            out[p.relative_to(root).as_posix()] = sha256_file(p)
    return out
