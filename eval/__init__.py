"""Metrics: one module per metric, each a torchmetrics Metric with ``update(sample, edited)`` and ``compute()``."""

from videoshop import _compat  # noqa: F401

from .base import EditMetric  # noqa: F401
