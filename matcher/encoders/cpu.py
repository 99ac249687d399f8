"""What the CPU can do natively, read from the OS (no benchmark): used to pick a default precision."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where the file does not exist)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def native_bf16(flags: frozenset[str] | None = None) -> bool:
    """True where the CPU computes in bf16 (AVX512-BF16 or AMX): only there is bf16 autocast faster.

    On an AVX2-only CPU torch emulates bf16 and autocast was 3.5-4x slower than float32
    (shared/notes/measured-facts.md).
    """
    flags = cpu_flags() if flags is None else flags
    return bool({"avx512_bf16", "amx_bf16"} & flags)
