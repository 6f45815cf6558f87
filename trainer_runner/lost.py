"""Why a job process died without reporting: the message of a `lost` attempt.

A process killed by SIGKILL cannot say why. The kernel's OOM killer is the usual culprit, and
the evidence for it is in the cgroup: `memory.events` counts `oom_kill`s, `memory.max` is the
limit. Where that evidence exists the message names the fix ("lower batch or imgsz"); where it
does not, the message says what is known and no more.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
OOM_HINT = "out of memory: lower batch or imgsz"
NEAR_LIMIT = 0.9  # RSS at this share of the memory limit counts as "near the limit"


def own_cgroup_dir(proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = CGROUP_ROOT) -> Path | None:
    """This process's cgroup v2 folder (children inherit it); None without cgroup v2."""
    try:
        for line in proc_cgroup.read_text().splitlines():
            if line.startswith("0::"):
                folder = root / line[3:].lstrip("/")
                return folder if (folder / "memory.events").exists() else None
    except OSError:
        return None
    return None


def oom_kills(cgroup_dir: Path | None) -> int | None:
    """The cgroup's `oom_kill` count; None when it cannot be read."""
    if cgroup_dir is None:
        return None
    try:
        for line in (cgroup_dir / "memory.events").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        return None
    return None


def memory_limit_bytes(cgroup_dir: Path | None, meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """The cgroup's `memory.max`, or the machine's memory when the cgroup has no limit."""
    if cgroup_dir is not None:
        try:
            value = (cgroup_dir / "memory.max").read_text().strip()
            if value != "max":
                return int(value)
        except (OSError, ValueError):
            pass
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_bytes(pid: int) -> int | None:
    """Resident memory of a live process (Linux); None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass
class MemoryWatch:
    """What is needed to tell an OOM kill afterwards: the cgroup's oom_kill count when the job
    started, and the job's largest RSS seen while it ran."""

    cgroup_dir: Path | None
    oom_kills_at_start: int | None
    peak_rss: int = 0

    @classmethod
    def start(cls, cgroup_dir: Path | None) -> MemoryWatch:
        return cls(cgroup_dir, oom_kills(cgroup_dir))

    def sample(self, pid: int) -> None:
        self.peak_rss = max(self.peak_rss, rss_bytes(pid) or 0)

    def oom_evidence(self) -> str | None:
        """A short reason when the evidence points at an OOM kill, else None."""
        now = oom_kills(self.cgroup_dir)
        if now is not None and self.oom_kills_at_start is not None and now > self.oom_kills_at_start:
            return "the cgroup's oom_kill count rose"
        limit = memory_limit_bytes(self.cgroup_dir)
        if limit and self.peak_rss >= NEAR_LIMIT * limit:
            return f"it used {self.peak_rss / 2**30:.1f} of {limit / 2**30:.1f} GiB"
        return None


def describe_exit(returncode: int, oom_evidence: str | None = None) -> str:
    """The `lost` message for a job process that ended without a final state."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        message = f"job process killed by {name} ({returncode})"
        if oom_evidence:
            return f"{message}: {OOM_HINT} ({oom_evidence})"
        if returncode == -signal.SIGKILL:
            return f"{message}: the OOM killer, a crashed driver or an operator; resumed from its checkpoint"
        return message
    return f"job process exited with code {returncode} without reporting a result"
