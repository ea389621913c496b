"""Per-frame edit regions: the first-frame edit mask carried through the video.

The region metrics (CLIP_tgt+, CLIP_src+, Flow+) need the edit region in every frame. The paper tracks it with
CoTracker [29]; no public code turns tracks into a region, so (shared/paper/metric_protocols.md):
  * queries: a regular grid (``grid_size`` x ``grid_size`` over the frame, CoTracker's ``get_points_on_a_grid``
    layout) kept inside the first-frame mask, all queried at frame 0;
  * per-frame region: the convex hull (or bounding box) of the visible tracked points (all points when fewer
    than 3 are visible), dilated by ``dilate`` pixels.
Which video (config ``track_on``): ``source`` (the same region for every method, as the protocol notes propose),
``edited`` (the method's output), or ``auto`` (default): the edited video for add-object edits, whose object the
source does not contain, the source for every other edit type (``video_to_track``).
Trackers (config ``tracker``):
  ``gt_or_flow``  the dataset's ground-truth per-frame masks (``sample.gt_masks``) when it has them, else ``flow``;
  ``gt``          ground truth only (error when missing);
  ``flow``        weight-free: OpenCV Farneback flow between consecutive frames (on luma and on the grey level that
                  best separates the region from its surround, per pixel the better-fitting one), backward flows
                  composed into a frame-t -> frame-0 map and the first-frame mask sampled through it
                  (``flow_track_masks``);
  ``cotracker``   CoTracker through torch.hub from a LOCAL repo dir + checkpoint (offline machines cannot reach GitHub).
Results are cached per (tracked video, first-frame mask, tracker protocol).
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any, Optional

import numpy as np
import torch

from .backbones import MissingWeightsError, SharedBackbone, resolve_device, shared
from .base import OnDevice, canonical_device
from .cache import FeatureCache, fingerprint
from .windows import whole_video

TRACKERS = ("gt_or_flow", "gt", "flow", "cotracker")


# ------------------------------------------------------------------------------ mask <-> tracks conversion
def grid_points(size: tuple[int, int], grid_size: int) -> np.ndarray:
    """(grid_size**2, 2) float (x, y) points on CoTracker's grid layout (margin w/64 on each side)."""
    h, w = size
    margin = w / 64.0
    ys = np.linspace(margin, max(h - margin, margin), grid_size)
    xs = np.linspace(margin, max(w - margin, margin), grid_size)
    gy, gx = np.meshgrid(ys, xs, indexing="ij")
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def mask_to_grid_queries(mask: np.ndarray, grid_size: int = 30, min_points: int = 16) -> np.ndarray:
    """CoTracker queries (N, 3) = (t=0, x, y) for grid points inside ``mask`` (H, W) bool.

    When the mask is too small to hold ``min_points`` grid points, up to ``grid_size**2`` of its own pixels (evenly
    subsampled) are used instead, so small objects are still tracked. An empty mask gives (0, 3).
    """
    h, w = mask.shape
    pts = grid_points((h, w), grid_size)
    xi = np.clip(np.round(pts[:, 0]).astype(int), 0, w - 1)
    yi = np.clip(np.round(pts[:, 1]).astype(int), 0, h - 1)
    inside = pts[mask[yi, xi]]
    if len(inside) < min_points:
        ys, xs = np.nonzero(mask)
        if len(ys) == 0:
            return np.zeros((0, 3), dtype=np.float32)
        idx = np.linspace(0, len(ys) - 1, min(len(ys), grid_size * grid_size)).round().astype(int)
        inside = np.stack([xs[idx], ys[idx]], axis=1).astype(np.float64)
    return np.concatenate([np.zeros((len(inside), 1)), inside], axis=1).astype(np.float32)


def tracks_to_masks(tracks: np.ndarray, visibility: Optional[np.ndarray], size: tuple[int, int],
                    region: str = "hull", dilate: int = 0) -> np.ndarray:
    """Per-frame region masks (T, H, W) bool from tracks (T, N, 2) (x, y pixels) and visibility (T, N) bool.

    ``region``: ``hull`` = filled convex hull of the visible points, ``bbox`` = their bounding box; fewer than 3
    visible points -> all points of that frame are used; ``dilate`` grows the region by that many pixels.
    """
    import cv2

    if region not in ("hull", "bbox"):
        raise ValueError(f"region must be hull or bbox, got {region!r}")
    h, w = size
    t_len = tracks.shape[0]
    out = np.zeros((t_len, h, w), dtype=np.uint8)
    for t in range(t_len):
        pts = tracks[t]
        if visibility is not None and visibility[t].sum() >= 3:
            pts = pts[visibility[t].astype(bool)]
        if len(pts) == 0:
            continue
        if region == "bbox":
            x0, y0 = np.floor(pts.min(0)).astype(int)
            x1, y1 = np.ceil(pts.max(0)).astype(int)
            x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w - 1), min(y1, h - 1)
            if x1 >= x0 and y1 >= y0:
                out[t, y0:y1 + 1, x0:x1 + 1] = 1
        else:
            hull = cv2.convexHull(np.round(pts).astype(np.int32).reshape(-1, 1, 2))
            cv2.fillConvexPoly(out[t], hull, 1)
        if dilate > 0:
            k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate + 1, 2 * dilate + 1))
            out[t] = cv2.dilate(out[t], k)
    return out.astype(bool)


def masks_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame IoU of (T, H, W) bool masks; frames where both are empty count as 1."""
    inter = np.logical_and(a, b).reshape(a.shape[0], -1).sum(1)
    union = np.logical_or(a, b).reshape(a.shape[0], -1).sum(1)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


# ------------------------------------------------------------------------------------ weight-free tracker
FLOW_CHANNELS = ("luma", "contrast")


def check_flow_channels(channels, where: str = "flow tracker channels") -> tuple[str, ...]:
    """``channels`` as a tuple, or a ValueError naming ``where`` unless it is a non-empty subset of FLOW_CHANNELS."""
    channels = tuple(channels)
    if not channels or any(c not in FLOW_CHANNELS for c in channels):
        raise ValueError(f"{where} must be a non-empty subset of {FLOW_CHANNELS}, got {list(channels)}")
    return channels


def contrast_direction(frame: np.ndarray, mask: np.ndarray, ring: int = 6) -> np.ndarray:
    """RGB weights (3,) of the grey level that best separates the masked region from a ring around it.

    Fisher's linear discriminant w = (S_in + S_ring)^-1 (mu_in - mu_ring) over the pixels of ``mask`` and of a
    ``ring``-pixel band outside it, normalised to sum(|w|) = 1. A red object on a mid-grey background has almost no
    contrast in luma; along w it has the most a single channel can give, which is what a flow method needs at
    the region's boundary. Falls back to Rec. 601 luma when either side has fewer than 2 pixels.
    """
    import cv2

    luma = np.array([0.299, 0.587, 0.114])
    m = mask.astype(bool)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * ring + 1, 2 * ring + 1))
    around = cv2.dilate(m.astype(np.uint8), k).astype(bool) & ~m
    x = frame.reshape(-1, 3).astype(np.float64)
    a, b = x[m.ravel()], x[around.ravel()]
    if len(a) < 2 or len(b) < 2:
        return luma
    scatter = np.cov(a.T) + np.cov(b.T) + 0.255 * np.eye(3)  # ridge keeps flat-coloured regions solvable
    w = np.linalg.solve(scatter, a.mean(0) - b.mean(0))
    norm = np.abs(w).sum()
    return w / norm if norm > 1e-12 else luma


def project_to_grey(video: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(T, H, W) uint8: ``video`` (T, H, W, 3) projected on ``weights``, stretched over its 0.5-99.5 percentiles."""
    g = video.astype(np.float32) @ np.asarray(weights, dtype=np.float32)
    lo, hi = np.percentile(g, 0.5), np.percentile(g, 99.5)
    return np.clip((g - lo) * (255.0 / max(float(hi - lo), 1e-6)), 0, 255).astype(np.uint8)


def farneback_flow(frame_a: np.ndarray, frame_b: np.ndarray, **params: Any) -> np.ndarray:
    """Dense flow (H, W, 2) (dx, dy) from frame_a to frame_b (uint8 RGB or grey) with OpenCV Farneback."""
    import cv2

    ga = cv2.cvtColor(frame_a, cv2.COLOR_RGB2GRAY) if frame_a.ndim == 3 else frame_a
    gb = cv2.cvtColor(frame_b, cv2.COLOR_RGB2GRAY) if frame_b.ndim == 3 else frame_b
    p = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)
    p.update(params)
    return cv2.calcOpticalFlowFarneback(ga, gb, None, p["pyr_scale"], p["levels"], p["winsize"], p["iterations"],
                                        p["poly_n"], p["poly_sigma"], p["flags"])


def warp_error(channels: list[np.ndarray], t: int, flow: np.ndarray, gx: np.ndarray, gy: np.ndarray,
               blur: int = 5) -> np.ndarray:
    """Local photometric error (H, W) of ``flow`` (frame t -> t-1): sum over channels of |I_{t-1}(p + f) - I_t(p)|,
    box-averaged over ``blur`` x ``blur`` pixels; ``gx``, ``gy``: the pixel grid (x and y of every pixel)."""
    import cv2

    sx, sy = gx + flow[..., 0], gy + flow[..., 1]
    err = np.zeros(flow.shape[:2], np.float32)
    for g in channels:
        back = cv2.remap(g[t - 1].astype(np.float32), sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        err += np.abs(back - g[t].astype(np.float32))
    return cv2.blur(err, (blur, blur))


def flow_track_masks(video: np.ndarray, mask: np.ndarray, winsize: int = 9,
                     channels: tuple[str, ...] = FLOW_CHANNELS, **farneback: Any) -> np.ndarray:
    """Carry the first-frame ``mask`` through ``video`` (T, H, W, 3) with Farneback flow (weight-free tracker).

    Backward flows (frame t -> t-1) are composed into a map from frame-t pixels to frame-0 coordinates
    (map_t(p) = map_{t-1}(p + flow_{t->t-1}(p))); mask_t = mask_0 sampled at map_t, thresholded at 0.5. Composing
    coordinates instead of re-binarising the mask at each step avoids the erosion/dilation drift of repeated
    thresholding. Flow is computed on each grey channel of ``channels`` (``luma``: Rec. 601 luma; ``contrast``:
    the projection of ``contrast_direction`` for this mask) and, per pixel, the flow with the smallest local
    warping error summed over those channels is kept. Farneback window 9 px.
    Measured on the synthetic set: ``research/tracker_iou.py``.
    """
    import cv2

    channels = check_flow_channels(channels)
    t_len, h, w = video.shape[:3]
    grey = {"luma": lambda: np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in video]),
            "contrast": lambda: project_to_grey(video, contrast_direction(video[0], mask))}
    planes = [grey[c]() for c in channels]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = gx.copy(), gy.copy()
    m0 = mask.astype(np.float32)
    out = [mask.astype(bool)]
    for t in range(1, t_len):
        flows = [farneback_flow(g[t], g[t - 1], winsize=winsize, **farneback) for g in planes]
        if len(flows) == 1:
            back = flows[0]
        else:
            best = np.argmin(np.stack([warp_error(planes, t, f, gx, gy) for f in flows]), axis=0)
            back = np.take_along_axis(np.stack(flows), best[None, ..., None], axis=0)[0]
        sx, sy = gx + back[..., 0], gy + back[..., 1]
        mx = cv2.remap(mx, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        my = cv2.remap(my, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out.append(cv2.remap(m0, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0) >= 0.5)
    return np.stack(out)


# --------------------------------------------------------------------------------------------- CoTracker
def load_cotracker(repo_dir: Optional[str], checkpoint: Optional[str], model: str = "cotracker3_offline",
                   device: str | torch.device = "cpu", config_key: str = "tracking"):
    """CoTracker via torch.hub from a local clone of facebookresearch/co-tracker plus a local checkpoint."""
    dev = resolve_device(device)
    if not repo_dir or not os.path.isdir(repo_dir) or not os.path.exists(os.path.join(repo_dir, "hubconf.py")):
        raise MissingWeightsError(
            f"{config_key}.cotracker_repo: CoTracker ({model}) is not available offline (torch.hub cannot reach "
            f"GitHub); set {config_key}.cotracker_repo=DIR (a clone of facebookresearch/co-tracker) and "
            f"{config_key}.cotracker_checkpoint=PATH, or use {config_key}.tracker=flow")
    if not checkpoint or not os.path.exists(checkpoint):
        raise MissingWeightsError(f"{config_key}.cotracker_checkpoint: weights for {model} not found offline "
                                  f"({checkpoint}); set {config_key}.cotracker_checkpoint=PATH")

    def build():
        m = torch.hub.load(repo_dir, model, source="local", pretrained=False)
        sd = torch.load(checkpoint, map_location="cpu", weights_only=True)
        target = getattr(m, "model", m)
        target.load_state_dict(sd.get("model", sd) if isinstance(sd, dict) else sd)
        return m.eval().to(dev)

    return shared(("cotracker", repo_dir, checkpoint, model, str(dev)), build)


@torch.no_grad()
def cotracker_track_masks(predictor, video: np.ndarray, mask: np.ndarray, grid_size: int, region: str,
                          dilate: int, device: torch.device) -> np.ndarray:
    queries = mask_to_grid_queries(mask, grid_size)
    if len(queries) == 0:
        return np.zeros(video.shape[:3], dtype=bool)
    v = torch.from_numpy(np.ascontiguousarray(video)).permute(0, 3, 1, 2)[None].float().to(device)
    tracks, vis = predictor(v, queries=torch.from_numpy(queries)[None].to(device))
    return tracks_to_masks(tracks[0].cpu().numpy(), vis[0].cpu().numpy() > 0.5, video.shape[1:3], region, dilate)


# -------------------------------------------------------------------------------------------- the tracker
ADDS_OBJECT = ("add_object",)  # edit types whose region holds an object that only the edited video shows
TRACK_ON = ("auto", "source", "edited")


def video_to_track(track_on: str, edit_type: Optional[str]) -> str:
    """Which video carries the edit region: ``source`` or ``edited``.

    ``auto``: an added object exists only in the edited video, so add-object edits are tracked there; every other
    edit changes something the source already shows (remove / replace / recolour / restyle), tracked on the source,
    which gives the same region for every method.
    """
    if track_on == "auto":
        return "edited" if edit_type in ADDS_OBJECT else "source"
    return track_on


class MaskTracker(OnDevice):
    """``track(sample, edited) -> (T, H, W) bool`` per-frame edit region (cached on disk).

    ``device``: where CoTracker runs (the other trackers use no model); ``to(device)`` (called by the owning
    metric's ``.to()``) switches to the shared CoTracker for that device (``SharedBackbone``).
    """

    def __init__(self, tracker: str = "gt_or_flow", track_on: str = "auto", grid_size: int = 30,
                 region: str = "hull", dilate: int = 0, flow_channels: tuple[str, ...] | list[str] = FLOW_CHANNELS,
                 cotracker_repo: Optional[str] = None, cotracker_checkpoint: Optional[str] = None,
                 cotracker_model: str = "cotracker3_offline", device: str = "auto",
                 cache_dir: Optional[str] = None, config_key: str = "tracking") -> None:
        if tracker not in TRACKERS:
            raise ValueError(f"{config_key}.tracker must be one of {TRACKERS}, got {tracker!r}")
        if track_on not in TRACK_ON:
            raise ValueError(f"{config_key}.track_on must be one of {TRACK_ON}, got {track_on!r}")
        flow_channels = check_flow_channels(flow_channels, f"{config_key}.flow_channels")
        self.tracker, self.track_on, self.grid_size, self.region, self.dilate = (
            tracker, track_on, grid_size, region, dilate)
        self.flow_channels = flow_channels
        self.cotracker_repo, self.cotracker_checkpoint, self.cotracker_model = (
            cotracker_repo, cotracker_checkpoint, cotracker_model)
        self.device, self.config_key = canonical_device(resolve_device(device)), config_key
        self.cache = FeatureCache(cache_dir, "tracked_masks")
        self._cotracker: Optional[SharedBackbone] = None
        if tracker == "cotracker":  # fail at construction, not in the middle of a run
            self._cotracker = SharedBackbone(partial(load_cotracker, cotracker_repo, cotracker_checkpoint,
                                                     cotracker_model, config_key=config_key), self.device)

    @property
    def _predictor(self):
        return self._cotracker.value if self._cotracker is not None else None

    def to(self, device: str | torch.device) -> "MaskTracker":
        dev = canonical_device(resolve_device(device))
        if self._cotracker is not None:
            self._cotracker.to(dev)
        self.device = dev
        return self

    def modules(self) -> list[torch.nn.Module]:
        return self._cotracker.modules() if self._cotracker is not None else []

    def _on(self) -> str:
        return {"auto": "the edited video for add-object edits, else the source",
                "source": "the source", "edited": "the edited video"}[self.track_on]

    def _flow_protocol(self) -> str:
        return (f"Farneback (win 9, {'+'.join(self.flow_channels)} channels) composed-flow warping of the "
                f"first-frame mask on {self._on()}")

    def protocol(self) -> str:
        if self.tracker == "cotracker":
            return (f"{self.cotracker_model} grid{self.grid_size} in first-frame mask, tracked on {self._on()}, "
                    f"{self.region} of visible points, dilate {self.dilate}px")
        if self.tracker == "flow":
            return self._flow_protocol()
        if self.tracker == "gt":
            return "dataset ground-truth per-frame masks"
        return f"dataset ground-truth per-frame masks, else {self._flow_protocol()}"

    def track(self, sample, edited: Optional[np.ndarray] = None) -> np.ndarray:
        """The edit region in every frame; ``edited`` (the method's output) is needed where it is tracked on. A
        sample cut to a frame window (eval/windows.py) gets the whole video's regions, cut to the window."""
        whole = whole_video(sample)
        if whole is not None:
            return self.track(whole.sample, whole.edited)[whole.window.frames]
        t, h, w = sample.source_video.shape[:3]
        if self.tracker in ("gt", "gt_or_flow") and sample.gt_masks is not None:
            return np.asarray(sample.gt_masks, dtype=bool)
        if self.tracker == "gt":
            raise ValueError(f"{sample.sample_id}: {self.config_key}.tracker=gt but the sample has no gt_masks")
        if sample.edit_mask is None or not np.any(sample.edit_mask):
            return np.zeros((t, h, w), dtype=bool)
        on = video_to_track(self.track_on, sample.edit_type)
        if on == "edited" and edited is None:
            raise ValueError(f"{sample.sample_id}: {self.config_key}.track_on={self.track_on} tracks this "
                             f"{sample.edit_type or 'edit'} on the edited video, but none was given")
        video = np.asarray(edited if on == "edited" else sample.source_video)
        mask = np.asarray(sample.edit_mask, dtype=bool)
        key = fingerprint(video, mask, self.protocol())

        def compute():
            if self.tracker == "cotracker":
                return cotracker_track_masks(self._predictor, video, mask, self.grid_size, self.region,
                                             self.dilate, self.device)
            return flow_track_masks(video, mask, channels=self.flow_channels)

        return self.cache.get_or_compute(key, compute)
