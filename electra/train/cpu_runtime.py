"""Process-wide CPU settings that change speed, never results: the allocator.

glibc returns every large freed block (at or above its mmap threshold, 128 KiB at first) to
the kernel, so a training step that allocates the same activations each step page-faults
them in again, zero-filled, every step. Raising the mmap and trim thresholds keeps freed
memory in the process for reuse: measured +13% tokens/s on the `small` step (BENCHMARKS.md).
Memory already held is reused, not grown: peak RSS stays that of one step."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP = 1 << 30  # blocks below 1 GiB come from the heap and stay there when freed


@functools.cache
def keep_freed_memory() -> bool:
    """Tune glibc once per process; False where the C library is not glibc (macOS, musl)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _KEEP)) and bool(mallopt(_M_TRIM_THRESHOLD, 2 * _KEEP - 1))


def setup_allocator(requested: str) -> str:
    """Apply `train.allocator` and say what the process got, for the run's first log line."""
    if requested == "system":
        return "system allocator"
    return "allocator keeps freed memory" if keep_freed_memory() else "system allocator"
