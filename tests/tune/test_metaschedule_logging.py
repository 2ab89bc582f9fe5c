"""MetaSchedule's logging inside lncompile's tuner: a foreign handler without a name on MetaSchedule's logger
(pytest's log capture attaches one to every non-propagating logger) does not stop tuning, and stays."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from lncompile.frontend import import_model
from lncompile.targets import get as get_target
from lncompile.tune.tasks import prepare
from lncompile.tune.tuner import tune
from tests.tune.models import ConvAndClassifier

pytestmark = pytest.mark.slow


def test_tuning_survives_an_unnamed_handler_on_metaschedules_logger(tmp_path: Path) -> None:
    torch.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((1, 8, 16, 16)).astype(np.float32)
    problem = prepare("convfc", import_model(ConvAndClassifier().eval(), x).graph, get_target("x86"))
    one_task = replace(problem, tasks=problem.tasks[:1])
    logger = logging.getLogger("tvm.s_tir.meta_schedule")
    foreign = logging.NullHandler()
    logger.addHandler(foreign)
    try:
        outcome = tune(one_task, tmp_path / "log", trials=1, trials_per_task=1, trials_per_iter=1, quick_search=True,
                       show_progress=False)
        assert outcome.stopped is None and outcome.records >= 1, outcome
        assert foreign in logger.handlers
    finally:
        logger.removeHandler(foreign)
