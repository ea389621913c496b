"""The metric interface.

A metric reads a ``Sample`` (datasets/schema.py) and an edited video (T, H, W, 3) uint8 with the source's shape.
``EditMetric`` is a torchmetrics ``Metric``: ``score(sample, edited)`` returns this sample's values as a dict
(several related numbers may come from one metric, e.g. PSNR inside and outside the edit region);
``update(sample, edited)`` accumulates them; ``compute()`` returns their means over updated samples.
NaN scores propagate to the mean (a sample whose latents diverged makes the average NaN, as the paper's Table 5).

Set-level metrics (FVD) set ``per_sample = False``: they accumulate in ``update`` and only ``compute`` is meaningful.
``protocol()`` returns the choices that define the numbers (backbone, scale, masking) for the results table.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchmetrics import Metric


class MetricInputError(ValueError):
    """Edited and source videos that cannot be compared (one line naming the sample)."""


def check_same_shape(sample, edited: np.ndarray) -> None:
    if edited.shape != sample.source_video.shape:
        raise MetricInputError(f"{sample.sample_id}: edited video {tuple(edited.shape)} and source video "
                               f"{tuple(sample.source_video.shape)} differ in length or size")


class EditMetric(Metric):
    names: tuple[str, ...] = ()
    higher_is_better: bool | None = None
    per_sample: bool = True
    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for n in self.names:
            self.add_state(f"{n}_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{n}_count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def score(self, sample, edited: np.ndarray) -> dict[str, float]:
        raise NotImplementedError

    def update(self, sample, edited: np.ndarray) -> None:  # type: ignore[override]
        for name, value in self.score(sample, edited).items():
            if value is None:  # not applicable to this sample (e.g. no ground truth)
                continue
            setattr(self, f"{name}_sum", getattr(self, f"{name}_sum") + float(value))
            setattr(self, f"{name}_count", getattr(self, f"{name}_count") + 1)

    def compute(self) -> dict[str, torch.Tensor]:  # type: ignore[override]
        out = {}
        for n in self.names:
            count = getattr(self, f"{n}_count")
            out[n] = getattr(self, f"{n}_sum") / count if count > 0 else torch.tensor(float("nan"), dtype=torch.float64)
        return out

    def protocol(self) -> dict[str, Any]:
        return {}

    def notes(self) -> dict[str, str]:
        """Warnings about this metric's value (e.g. FVD over too few videos), for a results table's warning column."""
        return {}
