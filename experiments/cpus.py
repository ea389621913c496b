"""How many CPU threads a run takes: the CPUs it was given, shared with the other local jobs of its sweep and with
whatever else keeps the machine busy, said in the log.

Torch defaults to one thread per core it sees. On a shared machine that oversubscribes: the audit measured
`python run.py` at about 40 s with one thread on two idle cores and 6 minutes with torch's two threads while one
other process ran (OpenMP threads spin-wait on barriers that a descheduled sibling holds up), and a two-job local
sweep (two threads each, on two cores) at about 30 s per sample instead of 2-3 s. So:

1. the CPUs given: ``SLURM_CPUS_PER_TASK`` when SLURM set it, else this process's CPU affinity
   (``os.sched_getaffinity``: taskset, cgroup cpusets, submitit), capped by a cgroup v2 CPU quota (``cpu.max``);
2. divided by the number of jobs a local sweep runs at once (``VIDEOSHOP_LOCAL_JOBS``, which ``run.py`` sets for
   ``-m hydra/launcher=local``);
3. less the CPUs other processes keep busy right now (the median of ``procs_running`` in /proc/stat over 0.1 s,
   this process excluded), never below one thread;
4. ``threads=N`` on the command line overrides all of this, and so does ``OMP_NUM_THREADS`` set in the environment
   (the usual way to cap a program's threads: a user, a test or a scheduler that sets it gets exactly that); a
   launcher's ``cpus_per_task`` (``hydra.launcher.
   cpus_per_task``, SLURM's ``-c``) is one job's share already.

OpenMP's idle threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE`` unless set), so a thread that waits
for a descheduled sibling gives its core back.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional

LOCAL_JOBS_ENV = "VIDEOSHOP_LOCAL_JOBS"


def cgroup_cpu_quota(path: str = "/sys/fs/cgroup/cpu.max") -> Optional[int]:
    """CPUs a cgroup v2 quota allows (``"200000 100000"`` -> 2), None when unlimited or unknown."""
    try:
        quota, period = Path(path).read_text().split()[:2]
        return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        return None


def cpus_given(environ=os.environ) -> tuple[int, str]:
    """(CPUs this process may use, where that number came from)."""
    slurm = environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        return int(slurm), "SLURM_CPUS_PER_TASK"
    n, why = len(os.sched_getaffinity(0)), "CPU affinity"
    quota = cgroup_cpu_quota()
    if quota is not None and quota < n:
        n, why = quota, "cgroup cpu.max"
    return n, why


def busy_cpus(samples: int = 5, interval_s: float = 0.02) -> float:
    """Runnable processes other than this one, now: the median of /proc/stat's ``procs_running`` over a few samples
    (the 1-minute load average elsewhere, which lags)."""
    import statistics
    import time

    counts = []
    for _ in range(samples):
        try:
            for line in Path("/proc/stat").read_text().splitlines():
                if line.startswith("procs_running"):
                    counts.append(int(line.split()[1]) - 1)
        except (OSError, ValueError):
            return os.getloadavg()[0]
        time.sleep(interval_s)
    return float(statistics.median(counts)) if counts else os.getloadavg()[0]


def choose_threads(requested: Optional[int] = None, environ=os.environ, load: Optional[float] = None,
                   launcher_cpus: Optional[int] = None) -> tuple[int, str]:
    """(torch threads for this job, a sentence saying why). ``launcher_cpus``: the launcher's ``cpus_per_task``
    (already one job's share)."""
    if requested:
        return int(requested), f"threads={requested} (set)"
    omp = environ.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) > 0:
        return int(omp), f"OMP_NUM_THREADS={omp} (set in the environment)"
    given, source = cpus_given(environ)
    jobs = environ.get(LOCAL_JOBS_ENV, "")
    jobs = int(jobs) if jobs.isdigit() and int(jobs) > 0 else 1
    if launcher_cpus and launcher_cpus < given * jobs:
        given, source, jobs = int(launcher_cpus), "hydra.launcher.cpus_per_task", 1
    share = max(1, given // jobs)
    busy = busy_cpus() if load is None else load
    others = int(round(busy)) if jobs == 1 else 0  # a local sweep's own jobs are the load; split, do not subtract
    threads = max(1, min(share, given - others))
    parts = [f"{given} CPU(s) given ({source})"]
    if jobs > 1:
        parts.append(f"shared by {jobs} local jobs")
    if others and threads < share:
        parts.append(f"{busy:g} busy with other processes")
    return threads, ", ".join(parts) + f" -> {threads} torch thread(s)"


def configure_threads(requested: Optional[int] = None, launcher_cpus: Optional[int] = None) -> str:
    """Apply ``choose_threads`` to torch (intra-op), OpenCV and child processes; returns the log sentence."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    threads, why = choose_threads(requested, launcher_cpus=launcher_cpus)
    torch.set_num_threads(threads)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    try:
        import cv2

        cv2.setNumThreads(threads)
    except ImportError:  # pragma: no cover
        pass
    return why
