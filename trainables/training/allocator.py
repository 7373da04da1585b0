"""glibc's allocator, told to keep freed memory: a training step then stops page-faulting its working set in.

By default glibc serves large blocks (activations, gradients, the word embedding's 47 MB dense gradient that
``zero_grad(set_to_none=True)`` frees every step) with mmap and unmaps them when freed, so every step faults
them in again (50k+ minor faults per dense MiniLM step at 32 x 64; each fault zeroes a 4 KiB page). The cost
scales with bytes allocated, not with FLOPs, so it does not shrink with a ticket. Serving everything from the
heap (M_MMAP_MAX=0) and not trimming it (M_TRIM_THRESHOLD=1 GiB) brings it to 0 faults per step after
warm-up. Process-wide; the same as the MALLOC_MMAP_MAX_ / MALLOC_TRIM_THRESHOLD_ environment variables set
before start, or jemalloc / tcmalloc preloaded. bench/ticket_speed.py always did this; the training loop now does
on CPU (TrainConfig.tune_malloc). Measured (bench_fast_path --gap, MiniLM, real SST-2 batches, fp32, one
thread, process CPU time; noisy, shared machine): dense 819 -> 607 ms/step, ticket 533 -> 409.
"""

from __future__ import annotations

import ctypes
import functools
import os

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4
OFF_ENV = "TICKETTUNE_NO_MALLOC_TUNE"  # set (to anything but "" / "0"): leave glibc as it is


@functools.lru_cache(maxsize=1)
def tune_malloc() -> bool:
    """Keep freed memory in glibc's heap (once per process); False where glibc's mallopt is not there or
    $TICKETTUNE_NO_MALLOC_TUNE is set."""
    if os.environ.get(OFF_ENV, "") not in ("", "0"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    settings = ((_M_MMAP_THRESHOLD, 32 << 20), (_M_TRIM_THRESHOLD, 1 << 30), (_M_MMAP_MAX, 0))
    return all(libc.mallopt(k, v) for k, v in settings)
