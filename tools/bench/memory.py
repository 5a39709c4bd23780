"""Resident memory of a process, in MB: the one reader the benches and the chaos run share.

The current size comes from psutil (Linux and macOS alike); the peak (VmHWM, the high-water mark
psutil does not report) from Linux's /proc, where the benches that quote it run.
"""

from __future__ import annotations

from pathlib import Path

import psutil


def rss_mb(pid: int | str = "self", *, peak: bool = False) -> float:
    """Resident set now, or at its peak so far; `pid` "self" is this process."""
    if not peak:
        return psutil.Process(None if pid == "self" else int(pid)).memory_info().rss / 2**20
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")
