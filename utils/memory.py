"""Keep freed memory for reuse instead of handing it back to the OS after every clip.

glibc serves allocations above a threshold (dynamic, starting at 128 KiB) with fresh mmap()
pages and unmaps them on free, so every decoded frame, every clip and every batch buffer
page-faults its way in again: for a 224px, 8-frame clip that is thousands of page faults,
measured at 30-40% of the loading time (benchmarks/loader_bench.py). Raising the mmap and
trim thresholds makes those buffers come from the heap and be reused. No-op where the C
library is not glibc.
"""
import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024     # glibc's upper limit for this setting on 64-bit
TRIM_THRESHOLD = 256 * 1024 * 1024

_done = False


def keep_freed_memory():
    """Set the thresholds once per process; True when they were set."""
    global _done
    if _done:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done
