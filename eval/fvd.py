"""FVD: Frechet Video Distance between the set of source videos and the set of edited videos (I3D features).

Protocol (StyleGAN-V, src/metrics/frechet_video_distance.py, the one VideoGPT-derived FVD implementations share):
the TorchScript I3D detector ``i3d_torchscript.pt`` is called as ``detector(videos, rescale=True, resize=True,
return_features=True)`` on (B, 3, T, H, W) float videos in [0, 255] (the detector maps to [-1, 1] and resizes the
full frame to 224x224, no crop), giving 400-d pre-softmax features; mean and covariance (np.cov, unbiased) per
set; FD = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2)) with scipy.linalg.sqrtm, real part.
Differences from StyleGAN-V's ``fvd2048_16f`` that this project makes explicit: all T frames of each video are
used (14 for SVD; StyleGAN-V samples 16-frame clips and discards shorter videos), and the sets are the dataset's
source and edited videos (not 2048 samples). A full-rank 400-d covariance needs at least 400 videos (StyleGAN-V
uses 2048); below that the value is reported with a warning in ``notes()``.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Optional

import warnings

import numpy as np
import scipy.linalg
import torch
from torchmetrics.utilities import dim_zero_cat

from .backbones import STYLEGAN_V_I3D_URL, SharedBackbone, load_i3d
from .base import EditMetric, check_same_shape
from .cache import FeatureCache, fingerprint

FEATURE_DIM = 400
# I3D halves time three times (Conv3d_1a, MaxPool3d_4a, MaxPool3d_5a) before a temporal pool of 2: shorter videos
# leave nothing to pool; common_metrics_on_video_quality documents 10 frames as the minimum, which we require too.
I3D_MIN_FRAMES = 10
STYLEGAN_V_NUM_VIDEOS = 2048


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of (N, D) features as StyleGAN-V computes them (np.cov, rowvar=False)."""
    f = np.asarray(features, dtype=np.float64)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) (StyleGAN-V's compute_fvd; real part of scipy's sqrtm)."""
    m = float(np.square(mu1 - mu2).sum())
    with warnings.catch_warnings():  # singular products (fewer videos than dimensions) are expected; see notes()
        warnings.simplefilter("ignore")
        s, _ = scipy.linalg.sqrtm(np.dot(sigma1, sigma2), disp=False)
    return float(np.real(m + np.trace(sigma1 + sigma2 - s * 2)))


def fvd_from_features(source: np.ndarray, edited: np.ndarray) -> float:
    """FVD between two (N, D) feature sets: Frechet distance of their Gaussian fits (edited first, as StyleGAN-V
    passes fake then real)."""
    return frechet_distance(*feature_stats(edited), *feature_stats(source))


def fvd_notes(n: int) -> dict[str, str]:
    """The warning that goes with an FVD over ``n`` videos (empty from StyleGAN-V's 2048 on)."""
    if n >= STYLEGAN_V_NUM_VIDEOS:
        return {}
    if n < 2:
        return {"fvd": f"FVD needs at least 2 videos, got {n}"}
    if n < FEATURE_DIM:
        return {"fvd": f"FVD over {n} videos: fewer than the {FEATURE_DIM} needed for a full-rank covariance of "
                       f"the {FEATURE_DIM}-d I3D features (StyleGAN-V uses {STYLEGAN_V_NUM_VIDEOS}); biased, "
                       f"compare only at equal set size"}
    return {"fvd": f"FVD over {n} videos (StyleGAN-V's protocol uses {STYLEGAN_V_NUM_VIDEOS})"}


class FVD(EditMetric):
    """Set metric: ``update(sample, edited)`` per sample, then ``compute()`` -> {'fvd'} and ``notes()``."""

    names = ("fvd",)
    higher_is_better = False
    per_sample = False
    config_key = "metrics.fvd"

    def __init__(self, detector: str = STYLEGAN_V_I3D_URL, backbone: str = "real", batch_size: int = 8,
                 device: str = "auto", seed: int = 0, cache_dir: Optional[str] = None,
                 detector_sha256: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.detector_path, self.backbone, self.batch_size = detector, backbone, batch_size
        self.min_frames = 1 if backbone == "tiny" else I3D_MIN_FRAMES
        # a handle, not a submodule: nn.Module._apply must never move (or cast) the shared detector in place
        self.i3d = SharedBackbone(partial(load_i3d, detector, backbone, seed=seed, cache_dir=cache_dir, sha256=detector_sha256,
                                          config_key=self.config_key), device)
        self.cache = FeatureCache(cache_dir, "i3d")
        self.add_state("source_features", default=[], dist_reduce_fx="cat")
        self.add_state("edited_features", default=[], dist_reduce_fx="cat")

    @property
    def detector(self):
        """The I3D TorchScript module on ``device_`` (shared with every FVD of the same detector and device)."""
        return self.i3d.value

    @property
    def device_(self) -> torch.device:
        """The device I3D computes on: the constructor's ``device=``, then wherever ``.to()`` moved the metric."""
        return self.i3d.device

    def describe(self) -> str:
        if self.backbone == "tiny":
            return "tiny random TorchScript I3D stand-in (resize 112), StyleGAN-V calling convention, all frames"
        return (f"I3D TorchScript {self.detector_path}; StyleGAN-V protocol (rescale, resize 224 full frame, 400-d "
                f"logits), all frames of each video")

    @torch.no_grad()
    def features(self, videos: list[np.ndarray]) -> torch.Tensor:
        """(N, 400) float64 I3D features of uint8 (T, H, W, 3) videos of one shape."""
        out = []
        for i in range(0, len(videos), self.batch_size):
            x = torch.from_numpy(np.stack(videos[i:i + self.batch_size])).permute(0, 4, 1, 2, 3).float()
            f = self.detector(x.to(self.device_), rescale=True, resize=True, return_features=True)
            out.append(f.double().cpu())
        return torch.cat(out)

    def sample_features(self, sample, edited) -> dict[str, np.ndarray]:
        """This sample's contribution to the sets: {'source': (400,), 'edited': (400,)} float64 I3D features.

        Stored with the sample's record, so FVD over the union of shards or workers is computed from every
        sample's features (``from_features``), never averaged over parts."""
        check_same_shape(sample, edited)
        key = fingerprint(sample.source_video, self.describe())
        src = self.cache.get_or_compute(key, lambda: self.features([sample.source_video]))
        return {"source": src[0].double().cpu().numpy(), "edited": self.features([edited])[0].cpu().numpy()}

    def update_features(self, features: dict[str, np.ndarray]) -> None:
        """Add one sample's ``sample_features`` to the sets."""
        # states live on the metric's state device (torchmetrics moves them with .to())
        self.source_features.append(torch.as_tensor(features["source"], dtype=torch.float64).reshape(1, -1).to(self.device))
        self.edited_features.append(torch.as_tensor(features["edited"], dtype=torch.float64).reshape(1, -1).to(self.device))

    def update(self, sample, edited) -> None:  # type: ignore[override]
        self.update_features(self.sample_features(sample, edited))

    def score(self, sample, edited):
        raise TypeError("FVD is a set metric: call update() per sample and compute() once")

    def num_videos(self) -> int:
        return len(self.edited_features)

    def compute(self):  # type: ignore[override]
        if self.num_videos() < 2:
            return {"fvd": torch.tensor(float("nan"), dtype=torch.float64)}
        src = dim_zero_cat(self.source_features).cpu().numpy()
        ed = dim_zero_cat(self.edited_features).cpu().numpy()
        return {"fvd": torch.tensor(fvd_from_features(src, ed), dtype=torch.float64)}

    @staticmethod
    def from_features(features: dict[str, np.ndarray]) -> tuple[dict[str, float], dict[str, str]]:
        """(values, notes) from stacked ``sample_features``: {'source': (N, 400), 'edited': (N, 400)}; no model
        needed (``python -m videoshop_bench.experiments.merge`` computes FVD over all shards' samples this way)."""
        src, ed = np.asarray(features["source"]), np.asarray(features["edited"])
        n = len(ed)
        return {"fvd": fvd_from_features(src, ed) if n >= 2 else float("nan")}, fvd_notes(n)

    def notes(self) -> dict[str, str]:
        return fvd_notes(self.num_videos())

    def protocol(self):
        return {"fvd": self.describe()}
