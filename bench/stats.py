"""Statistics that survive a noisy machine: bootstrap intervals of medians, and what else the CPUs were doing.

A median's 95 % interval is the 2.5th-97.5th percentile of the medians of
``RESAMPLES`` resamples (with replacement) of the timed runs (Efron's
percentile bootstrap); a total's is that of the sum of its passes' resampled
medians, and a ratio's that of the ratio of two resampled medians. Seeded, so
a report is reproducible from its runs.
"""

from __future__ import annotations

import os
import time

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95


def resampled_medians(times, rng, resamples: int = RESAMPLES) -> np.ndarray:
    """``resamples`` medians of resamples of ``times``."""
    times = np.asarray(times, dtype=float)
    picks = rng.integers(0, times.size, size=(resamples, times.size))
    return np.median(times[picks], axis=1)


def resampled_total(samples, rng, resamples: int = RESAMPLES) -> np.ndarray:
    """Resampled sums of the medians of each list of ``samples`` (a total over passes)."""
    return sum(resampled_medians(times, rng, resamples) for times in samples)


def interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def total_interval(samples, seed: int = 0) -> tuple[float, float]:
    """95 % interval of the sum of the medians of ``samples`` (one list of times per pass)."""
    return interval(resampled_total(samples, np.random.default_rng(seed)))


def ratio_interval(before, after, control_before=None, control_after=None, seed: int = 0) -> tuple[float, float]:
    """95 % interval of total(after) / total(before), each a list of per-pass time lists; with a control (an
    implementation timed in the same rounds of both runs), divided by the control's own ratio, which takes out
    what the machine did between the runs."""
    rng = np.random.default_rng(seed)
    ratios = resampled_total(after, rng) / resampled_total(before, rng)
    if control_before is not None:
        ratios /= resampled_total(control_after, rng) / resampled_total(control_before, rng)
    return interval(ratios)


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def _cpu_jiffies() -> tuple[int, int, int] | None:
    """(busy, total, stolen) clock ticks of all CPUs since boot, from /proc/stat (Linux); stolen is the time the
    hypervisor gave other machines."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    steal = fields[7] if len(fields) > 7 else 0
    return total - idle - steal, total, steal


def _own_jiffies() -> int | None:
    """User + system clock ticks of this process, all its threads."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return None


class LoadMeter:
    """What the machine did while a measurement ran: the 1-minute load average at its end, and the share of all
    CPUs' time that other processes took (0.5 on 2 cores: one core's worth), and the share the hypervisor stole
    for other machines. None where /proc is missing."""

    def __enter__(self):
        self._cpu, self._own, self._start = _cpu_jiffies(), _own_jiffies(), time.monotonic()
        return self

    def __exit__(self, *exc):
        cpu, own = _cpu_jiffies(), _own_jiffies()
        self.others_cpu = self.steal_cpu = None
        if None not in (cpu, own, self._cpu, self._own) and cpu[1] > self._cpu[1]:
            others = (cpu[0] - self._cpu[0]) - (own - self._own)
            elapsed = cpu[1] - self._cpu[1]
            self.others_cpu = round(max(0.0, others / elapsed), 3)
            self.steal_cpu = round((cpu[2] - self._cpu[2]) / elapsed, 3)
        try:
            self.load1 = round(os.getloadavg()[0], 2)
        except OSError:
            self.load1 = None
