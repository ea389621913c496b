"""The metric interface.

A metric reads a ``Sample`` (datasets/schema.py) and an edited video (T, H, W, 3) uint8 with the source's shape.
``EditMetric`` is a torchmetrics ``Metric``: ``score(sample, edited)`` returns this sample's values as a dict
(several related numbers may come from one metric, e.g. PSNR inside and outside the edit region);
``update(sample, edited)`` accumulates them; ``compute()`` returns their means over updated samples.
NaN scores propagate to the mean (a sample whose latents diverged makes the average NaN, as the paper's Table 5).

Set-level metrics (FVD) set ``per_sample = False``: they accumulate in ``update`` and only ``compute`` is meaningful.
``protocol()`` returns the choices that define the numbers (backbone, scale, masking) for the results table.

One design, two uses. ``score`` (per sample) and ``sample_features`` (a set metric's per-sample contribution) are
the functional form: they read the metric's backbones but never its states. The runner uses only these: each
sample's values and features go into its record, and tables aggregate the records (pandas), because records are what
survive resumption, sharding and merging (experiments/merge.py computes FVD from every shard's stored features with
the same ``fvd_from_features``). The torchmetrics states (``update``/``compute``/``reset``, sums and counts reduced
with "sum", FVD's feature lists with "cat") are the in-process aggregation for library users, and sync across
processes under torch.distributed like any torchmetrics ``Metric``; ``reset()`` clears everything a metric keeps
per run (TIFA's notes included).

Devices: a metric computes with backbones (CLIP, RAFT, I3D, TIFA's models, CoTracker) held by ``OnDevice`` parts
(eval/backbones.py ``SharedBackbone`` and the objects built on it). They start on the constructor's ``device=``;
``metric.to(dev)`` / ``.cuda()`` / ``.cpu()`` moves the torchmetrics states as usual AND every part whose device
``fn`` changes: a part rebinds to the shared backbone instance for ``dev`` (built on first use), so other metrics
that hold the same backbone keep their device and metrics built later still get their own device's instance.
Inputs go to the part's device; per-sample outputs come back to the CPU as Python floats.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
from torchmetrics import Metric


class MetricInputError(ValueError):
    """Edited and source videos that cannot be compared (one line naming the sample)."""


def check_same_shape(sample, edited: np.ndarray) -> None:
    if edited.shape != sample.source_video.shape:
        raise MetricInputError(f"{sample.sample_id}: edited video {tuple(edited.shape)} and source video "
                               f"{tuple(sample.source_video.shape)} differ in length or size")


def canonical_device(device: str | torch.device) -> torch.device:
    """``device`` with the current CUDA index filled in (``cuda`` -> ``cuda:0``), so equal devices compare equal."""
    d = torch.device(device)
    if d.type == "cuda" and d.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return d


def applied_device(fn: Callable[[torch.Tensor], torch.Tensor], device: torch.device) -> torch.device:
    """The device an ``nn.Module._apply`` function (``.to``, ``.cuda``, ``.cpu``, ...) sends a tensor on ``device``
    to; dtype-only functions (``.to(torch.float64)``) keep it."""
    try:
        return canonical_device(fn(torch.zeros(1, device=device)).device)
    except (NotImplementedError, RuntimeError):
        if torch.device(device).type != "meta":
            raise
        return canonical_device(fn(torch.zeros(1)).device)  # fn copies data off meta (which has none): a move


class OnDevice:
    """A part of a metric that computes on one device (a backbone handle, the mask tracker).

    ``EditMetric.to()`` calls ``to(device)`` on every ``OnDevice`` attribute whose device the move changes;
    ``modules()`` lists the torch modules it computes with (for inspection and tests).
    """

    device: torch.device

    def to(self, device: str | torch.device) -> "OnDevice":
        raise NotImplementedError

    def modules(self) -> list[nn.Module]:
        return []


class EditMetric(Metric):
    names: tuple[str, ...] = ()
    curve_names: tuple[str, ...] = ()  # per-frame series ``score_curves`` returns beside the values (records only)
    higher_is_better: bool | None = None
    per_sample: bool = True
    min_frames: int = 1  # the fewest frames a video must have to be scored (a frame window shorter skips it)
    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for n in self.names:
            self.add_state(f"{n}_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{n}_count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    # ------------------------------------------------------------------------------------------ devices
    def device_parts(self) -> list[OnDevice]:
        """The parts this metric computes with (attributes that are ``OnDevice``), in attribute order."""
        return [v for v in vars(self).values() if isinstance(v, OnDevice)]

    def backbone_modules(self) -> list[nn.Module]:
        """Every torch module the metric's backbones consist of (not registered as submodules: they are shared)."""
        seen: dict[int, nn.Module] = {}
        for part in self.device_parts():
            for m in part.modules():
                seen.setdefault(id(m), m)
        return list(seen.values())

    def _apply(self, fn: Callable, exclude_state: Sequence[str] = "") -> nn.Module:
        """Move the torchmetrics states (``Metric._apply``) and every ``OnDevice`` part whose device ``fn`` changes."""
        if self.device.type == "meta" and applied_device(fn, self.device).type != "meta":
            move = fn  # meta states hold no data: materialise them as zeros (every state's default), then move

            def fn(t: torch.Tensor) -> torch.Tensor:
                return move(torch.zeros_like(t, device="cpu") if t.is_meta else t)

        this = super()._apply(fn, exclude_state)
        for part in this.device_parts():
            dev = applied_device(fn, part.device)
            if dev != canonical_device(part.device):
                part.to(dev)
        return this

    # ---------------------------------------------------------------------------------------- scoring
    def score(self, sample, edited: np.ndarray) -> dict[str, float]:
        raise NotImplementedError

    def score_curves(self, sample, edited: np.ndarray) -> tuple[dict[str, Any], dict[str, list[float]]]:
        """This sample's values (``score``) and its per-frame curves (``curve_names`` -> one float per frame, NaN
        where undefined), which the runner keeps in the sample's record (``curves``) for plots; none by default."""
        return self.score(sample, edited), {}

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

    def column_higher_is_better(self, name: str) -> bool | None:
        """Whether a larger value of column ``name`` is better: ``higher_is_better`` unless the metric's columns
        point different ways (e.g. background preservation: PSNR up, LPIPS down), which it then overrides."""
        return self.higher_is_better

    def skip_reason(self, name: str, sample) -> str:
        """Why ``score`` gave no value (None) for ``name`` on ``sample``: named in the results and counted in the
        tables (``skipped``, ``n_skipped``); the mean leaves the sample out for that metric only."""
        if name.endswith("_plus") and getattr(self, "plus", True) is False:
            return "disabled (plus: false)"
        if name.endswith("_plus") or name.endswith("_in") or name.endswith("_out"):
            mask = getattr(sample, "edit_mask", None)
            if mask is None and getattr(sample, "gt_masks", None) is None:
                return "no edit mask"
            return "tracked edit region empty or covering the whole frame"
        return "not applicable to this sample"

    def sample_notes(self, sample) -> list[str]:
        """Notes about how this sample was scored (e.g. a fallback used), kept in its record."""
        return []

    def notes(self) -> dict[str, str]:
        """Warnings about this metric's value (e.g. FVD over too few videos), for a results table's warning column."""
        return {}
