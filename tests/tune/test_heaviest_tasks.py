"""Which tasks a partial re-rank or tuning run takes: the unmeasured, then the heaviest, until they cover the asked
share of the estimate."""

from __future__ import annotations

from types import SimpleNamespace

from lncompile.tune.tuner import heaviest_tasks


def _problem_and_rows(times_ms: list[float | None], weights: list[int]) -> tuple[SimpleNamespace, list[dict]]:
    tasks = [f"task{i}" for i in range(len(times_ms))]
    rows = [{"best_ms": t, "weight": w} for t, w in zip(times_ms, weights, strict=True)]
    return SimpleNamespace(tasks=tasks), rows


def test_heaviest_tasks_cover_the_share_counting_weights() -> None:
    # weighted: task0 1.0, task1 4.0 (2 x 2.0), task2 3.0, task3 2.0 -> total 10
    problem, rows = _problem_and_rows([1.0, 2.0, 3.0, 2.0], [1, 2, 1, 1])
    assert heaviest_tasks(problem, rows, 0.5) == ["task1", "task2"]  # 4 < 5, then 7 >= 5
    assert heaviest_tasks(problem, rows, 0.4) == ["task1"]
    assert heaviest_tasks(problem, rows, 1.0) == ["task1", "task2", "task3", "task0"]


def test_unmeasured_tasks_come_first_whatever_the_share() -> None:
    """A kernel without a record (one a new pass made, say) runs its untuned schedule: it is the first to tune."""
    problem, rows = _problem_and_rows([2.0, None, 1.0], [1, 1, 1])
    assert heaviest_tasks(problem, rows, 0.1) == ["task1", "task0"]
    assert heaviest_tasks(problem, rows, 1.0) == ["task1", "task0", "task2"]
