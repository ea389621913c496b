"""Background preservation: PSNR, SSIM, LPIPS and MSE between source and edited frames outside the edit region.

FiVE-Bench's "unedit part" metrics (Harvard-AI-and-Robotics-Lab/FiVE-Bench evaluation/evaluate.py and
metrics_calculator.py, commit 98ea719), per frame, then the mean over frames (frames without any outside pixel
left out):
  * ``masking=five`` (default): both frames, in [0, 1], are multiplied by (1 - mask), so the edit region is black
    in both, and the torchmetrics metrics run on the whole frame: PSNR (data_range 1), MSE, SSIM (11x11 Gaussian,
    sigma 1.5, data_range 1), LPIPS (SqueezeNet, inputs in [-1, 1]). The blacked-out region counts as agreement,
    so MSE shrinks and PSNR grows with the region's area, exactly as in FiVE's tables;
  * ``masking=exclude``: the same metrics averaged over the outside pixels only: PSNR / MSE of the outside pixels,
    the mean of torchmetrics' SSIM map and of LPIPS's spatial map (``spatial=True``) outside the region, on the
    unmodified frames.
Scales as FiVE prints them: PSNR dB, SSIM x100, LPIPS x1e3, MSE x1e4 (of [0, 1] intensities).
The region is the tracked edit region of CLIP_src+ and Flow+ (eval/tracking.py, config ``tracking``): FiVE uses its
ground-truth masks, which the ``gt_or_flow`` tracker also uses where a dataset has them. An empty region (nothing
edited) or one covering every frame entirely (nothing outside) skips the sample with that reason.
LPIPS: torchmetrics' LPIPS network (the PerceptualSimilarity v0.1 linear layers shipped with torchmetrics); the
SqueezeNet backbone is torchvision's ImageNet squeezenet1_1 (``backbone=real``; ``lpips_checkpoint=PATH`` for a local
state dict) or seeded random weights (``random`` / ``tiny``, same architecture: SqueezeNet is already small).
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any, Optional

import numpy as np
import torch

from .backbones import BACKBONES, MissingWeightsError, SharedBackbone, _seeded, resolve_device, shared
from .base import EditMetric, check_same_shape
from .clip import _tracker

SCALES = {"bg_psnr": 1.0, "bg_ssim": 100.0, "bg_lpips": 1e3, "bg_mse": 1e4}
MASKINGS = ("five", "exclude")


def squeezenet_slices(lpips_net: torch.nn.Module) -> list[torch.nn.Sequential]:
    """The slices of an LPIPS SqueezeNet: ``slices`` (torchmetrics) or ``slice1..7`` (the lpips package)."""
    if hasattr(lpips_net, "slices"):
        return list(lpips_net.slices)
    return [m for n, m in lpips_net.named_children() if n.startswith("slice")]


def copy_squeezenet_features(lpips_net: torch.nn.Module, features: torch.nn.Module) -> None:
    """Load torchvision squeezenet1_1 ``features`` (a Sequential) into an LPIPS SqueezeNet's slices, whose layers
    keep their ``features`` index as their name (torchmetrics and the lpips package alike)."""
    for slice_ in squeezenet_slices(lpips_net):
        for name, child in slice_.named_children():
            child.load_state_dict(features[int(name)].state_dict())


def load_lpips(backbone: str = "real", checkpoint: Optional[str] = None, device: str | torch.device = "cpu",
               seed: int = 0, config_key: str = "metrics.background"):
    """torchmetrics' LPIPS (SqueezeNet, v0.1 linear layers) with ``spatial=True``, in eval mode on ``device``."""
    from torchmetrics.functional.image.lpips import _LPIPS

    if backbone not in BACKBONES:
        raise ValueError(f"{config_key}.backbone must be one of {BACKBONES}, got {backbone!r}")
    dev = resolve_device(device)

    def build():
        if backbone != "real" or checkpoint:
            net = _seeded(seed, lambda: _LPIPS(pretrained=True, net="squeeze", spatial=True, pnet_rand=True))
            if checkpoint:
                if not os.path.exists(checkpoint):
                    raise MissingWeightsError(f"{config_key}.lpips_checkpoint: {checkpoint} does not exist; set it "
                                              f"to a torchvision squeezenet1_1 state dict (.pth)")
                from torchvision.models import squeezenet1_1

                tv = squeezenet1_1(weights=None)
                tv.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
                copy_squeezenet_features(net.net, tv.features)
        else:
            try:
                net = _LPIPS(pretrained=True, net="squeeze", spatial=True, pnet_rand=False)
            except Exception as e:  # noqa: BLE001  (offline: torchvision cannot download the ImageNet weights)
                raise MissingWeightsError(
                    f"{config_key}.lpips_checkpoint: torchvision squeezenet1_1 ImageNet weights (LPIPS backbone) not "
                    f"found offline; set {config_key}.lpips_checkpoint=PATH ({type(e).__name__})") from None
        return net.eval().to(dev)

    return shared(("lpips_squeeze", backbone, checkpoint, str(dev), seed), build)


def _to_unit(video: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(video)).permute(0, 3, 1, 2).double() / 255.0


def masked_mse(a: torch.Tensor, b: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Per-frame mean squared error of (N, 3, H, W) images over the pixels where (N, H, W) ``keep`` (all channels)."""
    d = ((a - b) ** 2).mean(1)
    k = keep.to(d.dtype)
    return (d * k).sum((1, 2)) / k.sum((1, 2))


def psnr_from_mse(mse: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    return 10.0 * torch.log10(data_range ** 2 / mse)


class BackgroundFidelity(EditMetric):
    """PSNR_bg (dB, higher better), SSIM_bg (x100, higher), LPIPS_bg (x1e3, lower), MSE_bg (x1e4, lower)."""

    names = ("bg_psnr", "bg_ssim", "bg_lpips", "bg_mse")
    higher_is_better = None  # mixed: see directions()
    config_key = "metrics.background"

    def __init__(self, masking: str = "five", backbone: str = "real", lpips_checkpoint: Optional[str] = None,
                 frame_stride: int = 1, lpips_batch: int = 8, tracking: Optional[dict] = None, device: str = "auto",
                 seed: int = 0, cache_dir: Optional[str] = None, **kwargs: Any) -> None:
        if masking not in MASKINGS:
            raise ValueError(f"{self.config_key}.masking must be one of {MASKINGS}, got {masking!r}")
        super().__init__(**kwargs)
        self.masking, self.backbone, self.frame_stride = masking, backbone, max(1, int(frame_stride))
        self.lpips_checkpoint, self.lpips_batch = lpips_checkpoint, max(1, int(lpips_batch))
        self.lpips = SharedBackbone(partial(load_lpips, backbone, lpips_checkpoint, seed=seed,
                                            config_key=self.config_key), device)
        self.tracker = _tracker(tracking, device, cache_dir)
        self._why: dict[str, str] = {}

    @staticmethod
    def directions() -> dict[str, bool]:
        """Column -> higher is better."""
        return {"bg_psnr": True, "bg_ssim": True, "bg_lpips": False, "bg_mse": False}

    def column_higher_is_better(self, name: str) -> bool | None:
        return self.directions().get(name)

    @torch.no_grad()
    def _lpips_map(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) LPIPS spatial map of (N, 3, H, W) images in [0, 1] (the network reads [-1, 1])."""
        out = []
        for i in range(0, len(a), self.lpips_batch):
            x = (a[i:i + self.lpips_batch] * 2 - 1).float().to(self.lpips.device)
            y = (b[i:i + self.lpips_batch] * 2 - 1).float().to(self.lpips.device)
            out.append(self.lpips.value(x, y).double().cpu())
        return torch.cat(out)

    def frame_values(self, src: np.ndarray, edited: np.ndarray, region: np.ndarray) -> dict[str, torch.Tensor]:
        """Per-frame PSNR, SSIM, LPIPS, MSE (unscaled) outside ``region`` (T, H, W) bool, per ``masking``."""
        from torchmetrics.functional.image import structural_similarity_index_measure as ssim

        a, b = _to_unit(src), _to_unit(edited)
        keep = torch.from_numpy(~region)
        if self.masking == "five":
            k = keep[:, None].double()
            a, b = a * k, b * k
            mse = ((a - b) ** 2).mean((1, 2, 3))
            s = ssim(a.float(), b.float(), data_range=1.0, reduction="none")  # float32 as FiVE (float64: 30x slower)
            lp = self._lpips_map(a, b).mean((1, 2, 3))
        else:
            mse = masked_mse(a, b, keep)
            _, full = ssim(a.float(), b.float(), data_range=1.0, reduction="none", return_full_image=True)
            s = (full.mean(1) * keep).sum((1, 2)) / keep.sum((1, 2))
            lp = (self._lpips_map(a, b)[:, 0] * keep).sum((1, 2)) / keep.sum((1, 2))
        return {"bg_psnr": psnr_from_mse(mse), "bg_ssim": s.double(), "bg_lpips": lp, "bg_mse": mse}

    def score(self, sample, edited):
        check_same_shape(sample, edited)
        region = self.tracker.track(sample, edited)
        idx = np.arange(0, len(edited), self.frame_stride)
        region = region[idx]
        usable = ~region.reshape(len(idx), -1).all(1)  # frames with at least one pixel outside the region
        if not region.any() or not usable.any():
            self._why[sample.sample_id] = ("tracked edit region empty (nothing edited to exclude)" if not region.any()
                                           else "tracked edit region covers every frame entirely (nothing outside)")
            return {n: None for n in self.names}
        idx, region = idx[usable], region[usable]
        vals = self.frame_values(sample.source_video[idx], edited[idx], region)
        return {n: SCALES[n] * float(v.mean()) for n, v in vals.items()}

    def skip_reason(self, name, sample):
        if sample.edit_mask is None and sample.gt_masks is None:
            return "no edit mask"
        return self._why.get(sample.sample_id, "tracked edit region empty or covering the whole frame")

    def protocol(self):
        how = ("edit region set to 0 in both frames, metric over the whole frame (FiVE-Bench)" if self.masking == "five"
               else "metric averaged over the pixels outside the edit region only")
        lp = ("SqueezeNet " + ("torchvision ImageNet" if self.backbone == "real" and not self.lpips_checkpoint else
                               self.lpips_checkpoint or f"RANDOM ({self.backbone})") + " + LPIPS v0.1 linear layers")
        common = f"source vs edited, every {self.frame_stride} frame(s), {how}; region: {self.tracker.protocol()}"
        return {"bg_psnr": f"PSNR dB on [0,1] (higher better); {common}",
                "bg_ssim": f"torchmetrics SSIM 11x11 Gaussian sigma 1.5, data_range 1, x100 (higher better); {common}",
                "bg_lpips": f"LPIPS {lp}, inputs [-1,1], x1e3 (lower better); {common}",
                "bg_mse": f"MSE on [0,1], x1e4 (lower better); {common}"}
