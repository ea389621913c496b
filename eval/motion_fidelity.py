"""Motion fidelity: do the edited video's point tracks move like the source's? (Yatim et al. 2024, "Space-Time
Diffusion Features for Zero-Shot Text-Driven Motion Transfer", diffusion-motion-transfer; as FiVE-Bench computes it.)

Protocol (FiVE-Bench evaluation/metrics_calculator.py ``MotionFidelityScore``, commit 98ea719; the paper's
motion_fidelity_score.py):
  * tracks: a 55 x 55 grid queried at frame 0 (CoTracker's ``grid_size=55``), over the whole frame (``mfs``) or only
    inside the bounding box of the edit region's union over all frames (``mfs_edit``: FiVE's ``segm_mask`` box,
    rows/cols ``min:max``), tracked through the edited video and through the source;
  * displacements d_t = p_{t+1} - p_t, normalised to unit length; similarity of edited track i and source track j =
    mean over t of cos(d_t^i, d_t^j);
  * score = mean over edited tracks of the largest similarity to any source track, after subtracting 1 from the
    diagonal (their ``get_score``: ``similarity - eye``); in [-1, 1], higher is better.
A zero displacement (a point that does not move, common in still backgrounds and synthetic clips) has no direction:
the reference divides by its zero norm and the whole score becomes NaN; here it counts as cosine 0.
Trackers (``point_tracker``): ``cotracker`` (the reference; the region tracker's ``tracking.cotracker_repo`` and
``tracking.cotracker_checkpoint``, as eval/tracking.py loads it), ``flow`` (weight-free: each point carried by
OpenCV Farneback forward flow between consecutive frames, bilinearly sampled), ``auto`` (default: CoTracker when both
paths are configured, else ``flow``); ``protocol()`` names the one used. The edit region is the tracked region of
CLIP_src+ / Flow+ (eval/tracking.py); source tracks are cached.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Optional

import numpy as np
import torch

from .backbones import SharedBackbone
from .base import EditMetric, check_same_shape
from .cache import FeatureCache, fingerprint
from .clip import _tracker
from .tracking import farneback_flow, grid_points, load_cotracker

POINT_TRACKERS = ("auto", "cotracker", "flow")


# -------------------------------------------------------------------------------------------- the score
def displacement_similarity(tracks_a: torch.Tensor, tracks_b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(N, M) mean over t of the cosine between the unit displacements of tracks (N, T, 2) and (M, T, 2)."""
    da = tracks_a[:, 1:] - tracks_a[:, :-1]
    db = tracks_b[:, 1:] - tracks_b[:, :-1]
    da = da / da.norm(dim=-1, keepdim=True).clamp_min(eps)
    db = db / db.norm(dim=-1, keepdim=True).clamp_min(eps)
    # = einsum("ntc,mtc->nmt").mean(-1) without the (N, M, T) intermediate (3025^2 x T for a 55 x 55 grid)
    return (da.flatten(1) @ db.flatten(1).T) / da.shape[1]


def motion_fidelity_score(edit_tracks: torch.Tensor, source_tracks: torch.Tensor) -> float:
    """Mean over edited tracks of the best displacement similarity to a source track, diagonal lowered by 1."""
    sim = displacement_similarity(edit_tracks.double(), source_tracks.double())
    n = min(sim.shape)
    sim = sim - torch.eye(sim.shape[0], sim.shape[1], dtype=sim.dtype) if n else sim
    return float(sim.max(dim=1).values.mean())


def union_box_mask(region: np.ndarray) -> Optional[np.ndarray]:
    """(H, W) bool: the bounding box (rows/cols min:max, max exclusive as FiVE) of the region's union over frames;
    None when the region is empty."""
    union = np.asarray(region, dtype=bool).any(0)
    ys, xs = np.nonzero(union)
    if len(ys) == 0:
        return None
    box = np.zeros(union.shape, dtype=bool)
    box[ys.min():ys.max(), xs.min():xs.max()] = True
    return box


# ------------------------------------------------------------------------------------------- trackers
def grid_queries(size: tuple[int, int], grid_size: int, box: Optional[np.ndarray]) -> np.ndarray:
    """(N, 2) (x, y) grid points (CoTracker's layout), kept inside ``box`` (H, W) bool when given."""
    pts = grid_points(size, grid_size)
    if box is None:
        return pts
    h, w = size
    xi = np.clip(np.round(pts[:, 0]).astype(int), 0, w - 1)
    yi = np.clip(np.round(pts[:, 1]).astype(int), 0, h - 1)
    return pts[box[yi, xi]]


def sample_bilinear(field: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """``field`` (H, W, C) at float points (N, 2) (x, y), bilinear, clamped at the border."""
    h, w = field.shape[:2]
    x = np.clip(pts[:, 0], 0, w - 1)
    y = np.clip(pts[:, 1], 0, h - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    top = field[y0, x0] * (1 - fx) + field[y0, x1] * fx
    bottom = field[y1, x0] * (1 - fx) + field[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def flow_point_tracks(video: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """(N, T, 2) tracks of frame-0 ``queries`` (N, 2) carried by Farneback forward flow, frame to frame."""
    pts = queries.astype(np.float64)
    out = [pts]
    for t in range(len(video) - 1):
        flow = farneback_flow(video[t], video[t + 1])
        pts = pts + sample_bilinear(flow, pts)
        out.append(pts)
    return np.stack(out, axis=1)


@torch.no_grad()
def cotracker_point_tracks(predictor, video: np.ndarray, grid_size: int, box: Optional[np.ndarray],
                           device: torch.device) -> np.ndarray:
    """(N, T, 2) CoTracker tracks as FiVE asks for them: ``predictor(video, grid_size=55, segm_mask=box)``."""
    v = torch.from_numpy(np.ascontiguousarray(video)).permute(0, 3, 1, 2)[None].float().to(device)
    mask = None if box is None else torch.from_numpy(box).float()[None, None].to(device)
    tracks, _ = predictor(v, grid_size=grid_size, segm_mask=mask)
    return tracks[0].permute(1, 0, 2).cpu().numpy()


class MotionFidelity(EditMetric):
    """MFS (whole frame) and MFS_edit (edit-region box): motion fidelity score, in [-1, 1], higher is better."""

    names = ("mfs", "mfs_edit")
    higher_is_better = True
    config_key = "metrics.motion_fidelity"

    def __init__(self, point_tracker: str = "auto", grid_size: int = 55, edit_part: bool = True,
                 tracking: Optional[dict] = None, device: str = "auto", cache_dir: Optional[str] = None,
                 **kwargs: Any) -> None:
        if point_tracker not in POINT_TRACKERS:
            raise ValueError(f"{self.config_key}.point_tracker must be one of {POINT_TRACKERS}, got {point_tracker!r}")
        super().__init__(**kwargs)
        cfg = dict(tracking or {})
        repo, ckpt = cfg.get("cotracker_repo"), cfg.get("cotracker_checkpoint")
        self.point_tracker = ("cotracker" if repo and ckpt else "flow") if point_tracker == "auto" else point_tracker
        self.requested, self.grid_size, self.edit_part = point_tracker, int(grid_size), edit_part
        self.cotracker_model = cfg.get("cotracker_model", "cotracker3_offline")
        self.cotracker: Optional[SharedBackbone] = None
        if self.point_tracker == "cotracker":  # a missing clone or checkpoint fails here, before any editing
            self.cotracker = SharedBackbone(partial(load_cotracker, repo, ckpt, self.cotracker_model,
                                                    config_key="tracking"), device)
        self.tracker = _tracker(tracking, device, cache_dir) if edit_part else None
        self.cache = FeatureCache(cache_dir, "point_tracks")

    def tracks(self, video: np.ndarray, box: Optional[np.ndarray]) -> np.ndarray:
        if self.point_tracker == "cotracker":
            return cotracker_point_tracks(self.cotracker.value, video, self.grid_size, box, self.cotracker.device)
        return flow_point_tracks(video, grid_queries(video.shape[1:3], self.grid_size, box))

    def _pair_score(self, source: np.ndarray, edited: np.ndarray, box: Optional[np.ndarray]) -> Optional[float]:
        key = fingerprint(source, box, self.describe())
        src = self.cache.get_or_compute(key, lambda: self.tracks(source, box))
        ed = self.tracks(edited, box)
        if len(src) == 0 or len(ed) == 0:
            return None
        return motion_fidelity_score(torch.as_tensor(ed), torch.as_tensor(src))

    def score(self, sample, edited):
        check_same_shape(sample, edited)
        out: dict[str, Optional[float]] = {"mfs": self._pair_score(sample.source_video, edited, None),
                                           "mfs_edit": None}
        if self.edit_part:
            box = union_box_mask(self.tracker.track(sample, edited))
            if box is not None and box.any():
                out["mfs_edit"] = self._pair_score(sample.source_video, edited, box)
        return out

    def skip_reason(self, name, sample):
        if name == "mfs_edit" and not self.edit_part:
            return "disabled (edit_part: false)"
        if name == "mfs_edit":
            return "no edit mask" if sample.edit_mask is None and sample.gt_masks is None else \
                "tracked edit region empty (no box to track in)"
        return "no grid point to track"

    def describe(self) -> str:
        if self.point_tracker == "cotracker":
            return f"CoTracker {self.cotracker_model} grid {self.grid_size}"
        why = " (CoTracker not configured: tracking.cotracker_repo / cotracker_checkpoint)" \
            if self.requested == "auto" else ""
        return f"weight-free Farneback forward-flow point tracker{why}, grid {self.grid_size}"

    def protocol(self):
        core = (f"{self.describe()}; unit displacements, mean cosine over time, best source track per edited track "
                f"after similarity - eye (FiVE / DMT), zero displacement = cosine 0")
        p = {"mfs": f"{core}; whole frame"}
        if self.edit_part:
            p["mfs_edit"] = f"{core}; grid inside the bounding box of the edit region's union over frames; region: " \
                            f"{self.tracker.protocol()}"
        return p
