"""Graph passes on lncompile's IR, one per module, and the per-target pipeline that orders them."""

from .base import FunctionPass, Pass, PassStats, graph_pass
from .manager import PipelineResult, run_pipeline

__all__ = ["FunctionPass", "Pass", "PassStats", "PipelineResult", "graph_pass", "run_pipeline"]
