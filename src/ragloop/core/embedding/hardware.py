"""What the CPU offers the embedders: native bf16, a key for cached decisions, usable cores.

Read from ``/proc/cpuinfo`` and the process's CPU affinity, once per process. Only the
standard library: every runtime module may import this one.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path


@functools.cache
def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no flags, so no bf16 fast path
        return ""


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when the CPU multiplies bf16 matrices natively (AMX or AVX512-BF16)."""
    flags = _cpuinfo()
    return "amx_bf16" in flags or "avx512_bf16" in flags


@functools.cache
def cpu_key() -> str:
    """A short hash of the CPU model and flags and the usable core count."""
    lines = [ln for ln in _cpuinfo().splitlines() if ln.startswith(("flags", "model name"))][:2]
    text = "\n".join(lines) + f"\ncores={usable_cores()}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]
