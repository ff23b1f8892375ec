"""What this container's CPU offers: its quota of cores, and native bfloat16."""

from __future__ import annotations

import math
import os
from pathlib import Path


def cpu_quota() -> int:
    """CPUs this container may use: the cgroup quota (cpu.max), else the CPUs it is pinned to."""
    available = len(os.sched_getaffinity(0))
    for path, parse in (("/sys/fs/cgroup/cpu.max", _cgroup2_quota), ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", None)):
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        quota = parse(text) if parse else _cgroup1_quota(text, Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us"))
        if quota:
            return max(1, min(available, math.ceil(quota)))
    return available


def _cgroup2_quota(text: str) -> float | None:
    """cgroup v2 cpu.max reads "max 100000" or "<quota> <period>"."""
    quota, _, period = text.strip().partition(" ")
    return None if quota == "max" else int(quota) / int(period or 100000)


def _cgroup1_quota(text: str, period_path: Path) -> float | None:
    """cgroup v1: cfs_quota_us is -1 when unlimited."""
    quota = int(text.strip())
    return None if quota <= 0 else quota / int(period_path.read_text().strip())


def bf16_supported() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX); emulated bf16 is slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def use_bf16(setting: str) -> bool:
    """TRAIN_BF16: "1", "0", or "auto" for where the CPU supports it."""
    return bf16_supported() if setting == "auto" else setting == "1"


def set_torch_threads(setting: int) -> int:
    """Cap torch's threads to ``setting``, or to the container's CPU quota when it is 0."""
    import torch  # only callers that already use torch get here

    threads = setting or cpu_quota()
    torch.set_num_threads(threads)
    return threads
