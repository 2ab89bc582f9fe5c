"""A time budget must not stop tuning inside MetaSchedule's first-round join loop (it would drop every task not
joined yet): ``FirstRound`` tells when that loop is over from the order the measure callback sees task ids."""

from __future__ import annotations

import pytest

from lncompile.tune.tuner import FirstRound


def joining_after(tasks: int, ids: list[int]) -> bool:
    first_round = FirstRound(tasks)
    for task_id in ids:
        first_round.saw(task_id)
    return first_round.joining


@pytest.mark.parametrize(("ids", "joining"), [
    ([], True),
    ([0, 1, 2], True),  # tasks 3 and 4 still to be joined
    ([0, 1, 2, 3, 4], False),  # the last task joined
    ([0, 1, 2, 1], False),  # task 3 and 4 were at their trial limit: the next join is the gradient's pick
    ([0, 2, 3, 3], False),  # the same task twice: a later round
])
def test_first_round_ends_at_the_last_task_or_the_first_id_that_does_not_increase(ids: list[int],
                                                                                   joining: bool) -> None:
    assert joining_after(5, ids) is joining
