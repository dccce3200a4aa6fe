"""The demo's job runner: dependencies, arguments from finished jobs, one torch thread per worker, errors."""

from __future__ import annotations

import operator

import pytest

from medcam_lab.demo_jobs import Job, run_jobs


def _threads(_: object) -> int:
    import torch

    return torch.get_num_threads()


@pytest.mark.parametrize("lanes", [1, 2])
def test_jobs_run_after_what_they_need_with_its_results(lanes):
    jobs = [
        Job("sum", operator.add, after=("a", "b"), prepare=lambda done: (done["a"], done["b"])),
        Job("a", operator.mul, (3, 4)),
        Job("b", operator.sub, (10, 3)),
        Job("threads", _threads, (None,)),
    ]
    results, seconds = run_jobs(jobs, lanes)
    assert results == {"a": 12, "b": 7, "sum": 19, "threads": 1}
    assert set(seconds) == set(results) and all(s >= 0 for s in seconds.values())


def test_bad_graphs_and_failures_are_errors():
    with pytest.raises(ValueError, match="unknown jobs"):
        run_jobs([Job("a", operator.neg, (1,), after=("missing",))], 1)
    with pytest.raises(ValueError, match="unique"):
        run_jobs([Job("a", operator.neg, (1,)), Job("a", operator.neg, (2,))], 1)
    with pytest.raises(ValueError, match="wait on each other"):
        run_jobs([Job("a", operator.neg, (1,), after=("b",)), Job("b", operator.neg, (1,), after=("a",))], 1)
    with pytest.raises(ZeroDivisionError):
        run_jobs([Job("a", operator.truediv, (1, 0))], 2)
