"""Independent training runs of the demo on worker processes of one torch thread each.

After pretraining, the demo's runs form a small graph: alignment, then every fine-tuning and probe of the
MedCAM arm; the image-only arm needs only the pretrained encoder; a label-efficiency run at 100 % reuses its
arm's main run. :func:`run_jobs` starts each job as soon as the jobs it needs are done, on up to ``lanes``
processes.

**Why one thread per job.** On a 2-core CPU one training step of the demo's encoder takes 33 ms on two
threads and 44 ms on one, and two one-thread runs side by side keep 44 ms each: two lanes do about 1.5x
the work of one two-thread run. A one-thread run also cannot stall on a core taken by another program (an
OpenMP barrier waits for its slowest thread). And its float sums do not depend on the machine's core count,
so the demo's numbers after pretraining are the same on any machine and for any number of lanes.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("medcam_lab")


@dataclass
class Job:
    """One run: ``fn(*args)`` once the jobs named in ``after`` are done.

    ``prepare`` (in the parent) turns the finished jobs' results ``{name: result}`` into the final ``args``
    of ``fn`` when they depend on them (e.g. the adapted weights of alignment); None: ``args`` as given.
    """

    name: str
    fn: Callable[..., Any]
    args: tuple = ()
    after: tuple[str, ...] = ()
    prepare: Callable[[dict[str, Any]], tuple] | None = field(default=None, repr=False)


def _init_worker(level: int, fmt: str) -> None:
    import torch

    torch.set_num_threads(1)
    logging.basicConfig(level=level, format=fmt, datefmt="%H:%M:%S")


def _timed_call(fn: Callable[..., Any], args: tuple) -> tuple[Any, float]:
    t0 = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - t0


def run_jobs(jobs: list[Job], lanes: int) -> tuple[dict[str, Any], dict[str, float]]:
    """Run every job on ``lanes`` one-thread worker processes (``spawn``), in list order among the jobs
    that are ready. Returns ``({name: result}, {name: seconds the job ran})``.

    Raises:
        ValueError: on a duplicate name or a dependency that is not a job.
        Exception: the first failed job's error (jobs still running are waited for, none is started).
    """
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise ValueError(f"job names must be unique, got {names}")
    unknown = {a for j in jobs for a in j.after} - set(names)
    if unknown:
        raise ValueError(f"jobs depend on unknown jobs {sorted(unknown)}")
    if lanes < 1:
        raise ValueError(f"lanes must be >= 1, got {lanes}")
    root = logging.getLogger()
    formatter = root.handlers[0].formatter if root.handlers else None
    fmt = (formatter._fmt if formatter else None) or "%(message)s"
    results: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    pending = list(jobs)
    running: dict[Future, Job] = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=lanes, mp_context=context, initializer=_init_worker,
                             initargs=(log.getEffectiveLevel(), fmt)) as pool:
        while pending or running:
            for job in [j for j in pending if all(a in results for a in j.after)]:
                if len(running) >= lanes:
                    break
                pending.remove(job)
                args = job.prepare(results) if job.prepare is not None else job.args
                log.info("== %s", job.name)
                running[pool.submit(_timed_call, job.fn, args)] = job
            if not running:
                raise ValueError(f"jobs {[j.name for j in pending]} wait on each other")
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                job = running.pop(future)
                results[job.name], took = future.result()
                seconds[job.name] = round(took, 1)
    return results, seconds
