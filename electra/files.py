"""Atomic directory writes: build a directory beside its target, then rename it into place.

Shards, tokenizers, exports and checkpoints are all written this way, so an interrupted or
failed write never leaves a half-written directory under the name a later command reads."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_dir(out: str | Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield an empty temporary directory next to `out`; when the block succeeds it becomes
    `out`, when it raises (or is interrupted) it is deleted and `out` is left as it was.

    `out` may be missing or an empty directory; with `replace`, an existing `out` is removed
    just before the rename (the caller has checked it may be)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        if out.is_dir() and (replace or not any(out.iterdir())):
            shutil.rmtree(out)  # rename cannot replace a directory on every OS
        os.rename(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
