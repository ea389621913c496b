"""The experiment runner (the Hydra edge) for the edit and reconstruct tasks, in three parts:
``components.build_components`` (dataset, ids, pipeline, method, metrics, hashes), ``sample_loop.SampleLoop``
(claims, prefetch, edit, score, records, resumption) and ``finish.finish_run`` (set metrics, tables, reports,
loggers). Errors live in experiments/errors.py."""

from __future__ import annotations

from typing import Optional

import pandas as pd
from omegaconf import DictConfig

from videoshop.method import sample_seed  # noqa: F401  (re-exported: videoshop_bench.experiments.runner.sample_seed)

from .components import build_components
from .errors import ANTICIPATED, ConfigError, ConfigErrors  # noqa: F401  (re-exported for callers of the runner)
from .finish import finish_run
from .sample_loop import SampleLoop, claim_book


class Runner(SampleLoop):
    """One run: its components built from ``cfg`` (claims first, then ``build_components``), ``run()`` processes
    every selected sample and finishes the run. ``parts`` holds the components; ``dataset``, ``ids``, ``method``
    and ``pipeline`` read them."""

    def __init__(self, cfg: DictConfig, label: Optional[str] = None):
        claims = claim_book(cfg)  # a bad claim.* setting fails before any model is loaded
        super().__init__(cfg, build_components(cfg, label), claims)

    dataset = property(lambda self: self.parts.dataset)
    ids = property(lambda self: self.parts.ids)
    method = property(lambda self: self.parts.method)
    pipeline = property(lambda self: self.parts.pipeline)

    def run(self) -> dict[str, pd.DataFrame]:
        return finish_run(self, self.run_samples())


def run_edit(cfg: DictConfig, label: Optional[str] = None) -> dict[str, pd.DataFrame]:
    """The edit and reconstruct tasks: every selected sample through the method, scored and stored."""
    return Runner(cfg, label).run()
