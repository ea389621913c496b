"""SSIM between source and edited frames, and PSNR / SSIM against a ground-truth edited video.

SSIM follows scikit-image's defaults on uint8 RGB (7x7 uniform window, sample covariance, data range 255,
channels averaged), per frame, averaged over frames; x100 as the paper prints it. Region-restricted values
average the SSIM map / squared error inside or outside the per-frame edit masks.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as nnf

from .base import EditMetric, check_same_shape

_K1, _K2 = 0.01, 0.03


def ssim_map(a: np.ndarray, b: np.ndarray, win_size: int = 7, data_range: float = 255.0) -> torch.Tensor:
    """Per-pixel SSIM of (T, H, W, 3) uint8 videos, averaged over channels -> (T, H, W) float64.

    Matches skimage.metrics.structural_similarity(..., channel_axis=-1) (uniform window, sample covariance); the
    border of width win_size // 2 is excluded from means by ``ssim_mean``, as skimage does.
    """
    x = torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).double()
    y = torch.from_numpy(np.ascontiguousarray(b)).permute(0, 3, 1, 2).double()
    n = win_size**2
    pool = lambda t: nnf.avg_pool2d(t, win_size, stride=1, padding=win_size // 2, count_include_pad=False)  # noqa: E731
    ux, uy = pool(x), pool(y)
    cov = n / (n - 1)
    vx, vy, vxy = cov * (pool(x * x) - ux * ux), cov * (pool(y * y) - uy * uy), cov * (pool(x * y) - ux * uy)
    c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return s.mean(dim=1)


def ssim_mean(a: np.ndarray, b: np.ndarray, region: Optional[np.ndarray] = None, win_size: int = 7) -> float:
    """Mean SSIM per frame (excluding the window border, as skimage), then over frames; optional (T, H, W) region."""
    s = ssim_map(a, b, win_size)
    p = win_size // 2
    s = s[:, p:-p, p:-p]
    if region is None:
        return float(s.mean(dim=(1, 2)).mean())
    r = torch.from_numpy(np.ascontiguousarray(region))[:, p:-p, p:-p]
    per_frame = [(s[t][r[t]]).mean() for t in range(s.shape[0]) if r[t].any()]
    return float(torch.stack(per_frame).mean()) if per_frame else float("nan")


def psnr(a: np.ndarray, b: np.ndarray, region: Optional[np.ndarray] = None, data_range: float = 255.0) -> float:
    """PSNR (dB) over all pixels of the videos, or only inside a (T, H, W) bool region."""
    d = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    if region is not None:
        if not region.any():
            return float("nan")
        d = d[region]
    mse = float(d.mean())
    return float("inf") if mse == 0 else 10.0 * np.log10(data_range**2 / mse)


class SourceSSIM(EditMetric):
    """SSIM between corresponding source and edited frames (paper's SSIM column, x100)."""

    names = ("ssim",)
    higher_is_better = True

    def score(self, sample, edited):
        check_same_shape(sample, edited)
        return {"ssim": 100.0 * ssim_mean(sample.source_video, edited)}

    def protocol(self):
        return {"ssim": "skimage defaults (7x7 uniform), uint8 RGB at source resolution, x100"}


class GroundTruthFidelity(EditMetric):
    """PSNR and SSIM (x100) against the ground-truth edited video, overall and inside/outside the edit masks."""

    names = ("psnr_gt", "ssim_gt", "psnr_gt_in", "psnr_gt_out", "ssim_gt_in", "ssim_gt_out")
    higher_is_better = True

    def score(self, sample, edited):
        gt = sample.gt_edited_video
        if gt is None:
            return {n: None for n in self.names}
        check_same_shape(sample, edited)
        out = {"psnr_gt": psnr(edited, gt), "ssim_gt": 100.0 * ssim_mean(edited, gt)}
        masks = sample.gt_masks
        for n in ("psnr_gt_in", "psnr_gt_out", "ssim_gt_in", "ssim_gt_out"):
            out[n] = None
        if masks is not None and masks.any() and not masks.all():
            out["psnr_gt_in"], out["psnr_gt_out"] = psnr(edited, gt, masks), psnr(edited, gt, ~masks)
            out["ssim_gt_in"] = 100.0 * ssim_mean(edited, gt, masks)
            out["ssim_gt_out"] = 100.0 * ssim_mean(edited, gt, ~masks)
        return out

    def protocol(self):
        return {"psnr_gt": "dB over all pixels vs ground truth", "ssim_gt": "skimage defaults, x100"}

    def skip_reason(self, name, sample):
        dropped = (getattr(sample, "meta", None) or {}).get("ground_truth_dropped")
        if dropped:  # another first-frame editor's edit (experiments/first_frame.py ground_truth_for)
            return dropped
        if sample.gt_edited_video is None:
            return "no ground-truth edited video"
        if sample.gt_masks is None:
            return "no ground-truth masks"
        return "ground-truth masks empty or covering every pixel"
