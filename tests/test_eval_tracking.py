"""Mask tracking: mask <-> CoTracker tracks conversion, the weight-free flow tracker, the tracker choice."""

import numpy as np
import pytest

from videoshop_bench.datasets.schema import Sample
from videoshop_bench.eval.backbones import MissingWeightsError
from videoshop_bench.eval.cache import FeatureCache
from videoshop_bench.eval.tracking import MaskTracker, flow_track_masks, mask_to_grid_queries, masks_iou, tracks_to_masks


def _moving_square(t=10, h=64, w=96, step=2):
    """A bright textured square moving right over a static darker texture; returns (video, masks)."""
    import cv2

    rng = np.random.default_rng(0)
    bg = cv2.GaussianBlur((rng.random((h, w, 3)) * 255).astype(np.float32), (0, 0), 2.0)
    patch = cv2.GaussianBlur((rng.random((20, 20, 3)) * 255).astype(np.float32), (0, 0), 1.5)
    bg = cv2.normalize(bg, None, 0, 120, cv2.NORM_MINMAX)  # darker background, a brighter object
    patch = cv2.normalize(patch, None, 150, 255, cv2.NORM_MINMAX)
    video, masks = [], []
    for i in range(t):
        f, m = bg.copy(), np.zeros((h, w), bool)
        m[20:40, 10 + step * i:30 + step * i] = True
        f[m] = patch.reshape(-1, 3)
        video.append(f.astype(np.uint8))
        masks.append(m)
    return np.stack(video), np.stack(masks)


def test_grid_queries_and_tracks_to_masks():
    mask = np.zeros((64, 96), bool)
    mask[16:48, 24:72] = True
    q = mask_to_grid_queries(mask, grid_size=20)
    assert q.shape[1] == 3 and (q[:, 0] == 0).all() and len(q) > 16
    assert mask[q[:, 2].round().astype(int), q[:, 1].round().astype(int)].all()
    # synthetic tracks: the query points translated by (5, 3) px per frame
    tracks = np.stack([q[:, 1:] + np.array([5.0 * t, 3.0 * t]) for t in range(4)])
    vis = np.ones(tracks.shape[:2], bool)
    bbox = tracks_to_masks(tracks, vis, (64, 96), region="bbox")
    hull = tracks_to_masks(tracks, vis, (64, 96), region="hull")
    for t in range(4):
        xs, ys = tracks[t, :, 0], tracks[t, :, 1]
        ref = np.zeros((64, 96), bool)
        ref[int(np.floor(ys.min())):int(np.ceil(ys.max())) + 1, int(np.floor(xs.min())):int(np.ceil(xs.max())) + 1] = True
        assert (bbox[t] == ref).all()
        assert masks_iou(hull[t:t + 1], ref[None])[0] > 0.85  # hull of rounded points vs floor/ceil box: <= 1 px per side
    # invisible points are ignored when at least 3 are visible; tiny masks fall back to their own pixels
    vis[:, : len(q) // 2] = False
    assert tracks_to_masks(tracks, vis, (64, 96), region="bbox")[0].sum() < bbox[0].sum()
    small = np.zeros((64, 96), bool)
    small[30:32, 40:42] = True
    assert len(mask_to_grid_queries(small, 20)) == 4
    assert mask_to_grid_queries(np.zeros((8, 8), bool)).shape == (0, 3)
    assert tracks_to_masks(tracks, None, (64, 96), dilate=2)[0].sum() > hull[0].sum()


def test_flow_tracker_on_moving_square():
    video, masks = _moving_square()
    tracked = flow_track_masks(video, masks[0])
    assert masks_iou(tracked, masks).mean() >= 0.9


def test_flow_tracker_on_synthetic_dataset():
    """The weight-free tracker reaches a mean IoU >= 0.8 against the ground-truth masks on the synthetic dataset.

    Every edit type counts. Tracked as the default ``track_on=auto`` does: added objects on the edited video (here the
    ground-truth edited video, i.e. a perfect method's output), everything else on the source video.
    (Measured on seed 0: 0.945 overall; ``python -m videoshop_bench.research.tracker_iou`` prints every variant.)
    """
    from videoshop_bench.datasets.synthetic import EDIT_TYPES, SyntheticDataset

    ds = SyntheticDataset(num_samples=30, seed=0)
    tracker = MaskTracker("flow", track_on="auto", device="cpu")
    ious = {}
    for sid in ds.sample_ids():
        s = ds.load(sid)
        no_gt = Sample(s.sample_id, s.source_video, s.edited_image, edit_mask=s.edit_mask, edit_type=s.edit_type)
        ious.setdefault(s.edit_type, []).append(masks_iou(tracker.track(no_gt, s.gt_edited_video), s.gt_masks).mean())
    assert set(ious) == set(EDIT_TYPES) and sum(map(len, ious.values())) == 30
    assert np.mean([v for vs in ious.values() for v in vs]) >= 0.8
    assert all(np.mean(v) >= 0.75 for v in ious.values()), {k: np.mean(v) for k, v in ious.items()}


def test_contrast_channel_sees_an_isoluminant_object():
    """A red square on a grey background of the same luma: invisible to luma flow, tracked on the contrast channel."""
    from videoshop_bench.eval.tracking import contrast_direction, project_to_grey

    t, h, w = 8, 48, 64
    grey = np.array([0.299 * 200 + 0.587 * 60 + 0.114 * 60] * 3)  # the square's luma, so luma contrast is ~0
    video, masks = np.empty((t, h, w, 3), np.uint8), np.zeros((t, h, w), bool)
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 3, (h, w, 3))
    for i in range(t):
        video[i] = np.clip(grey + noise, 0, 255).astype(np.uint8)
        masks[i, 14:30, 10 + 2 * i:26 + 2 * i] = True
        video[i][masks[i]] = (200, 60, 60)
    wts = contrast_direction(video[0], masks[0])
    g = project_to_grey(video[:1], wts)[0].astype(float)
    assert abs(g[masks[0]].mean() - g[~masks[0]].mean()) > 100  # the projection separates region and surround
    luma = masks_iou(flow_track_masks(video, masks[0], channels=("luma",)), masks).mean()
    both = masks_iou(flow_track_masks(video, masks[0]), masks).mean()
    assert both >= 0.9 and both > luma + 0.1
    with pytest.raises(ValueError, match="channels"):
        flow_track_masks(video, masks[0], channels=("hue",))


def test_track_on_chooses_the_video():
    from videoshop_bench.eval.tracking import video_to_track

    assert video_to_track("auto", "add_object") == "edited"
    assert all(video_to_track("auto", e) == "source" for e in ("remove_object", "replace_object", "change_color", None))
    assert video_to_track("source", "add_object") == "source" and video_to_track("edited", None) == "edited"
    video, masks = _moving_square()
    still = np.repeat(video[:1], len(video), axis=0)  # an "edited" video in which nothing moves
    s = Sample("a", video, video[0], edit_mask=masks[0], edit_type="add_object")
    tr = MaskTracker("flow", track_on="auto", device="cpu")
    on_edited = tr.track(s, still)
    assert (on_edited == masks[0]).all()  # followed the edited video: the region stays put
    assert masks_iou(MaskTracker("flow", track_on="source").track(s, still), masks).mean() >= 0.9
    with pytest.raises(ValueError, match="track_on=auto"):
        tr.track(s)
    with pytest.raises(ValueError, match="tracking.track_on"):
        MaskTracker("flow", track_on="both")


def test_tracker_choice_and_cache(tmp_path):
    video, masks = _moving_square()
    with_gt = Sample("a", video, video[0], edit_mask=masks[0], gt_masks=masks)
    no_gt = Sample("b", video, video[0], edit_mask=masks[0])
    tr = MaskTracker("gt_or_flow", cache_dir=str(tmp_path), device="cpu")
    assert (tr.track(with_gt) == masks).all()
    got = tr.track(no_gt)
    assert list(tmp_path.glob("tracked_masks/*.safetensors"))  # cached without pickles
    again = MaskTracker("flow", cache_dir=str(tmp_path), device="cpu")
    assert (again.track(no_gt) == flow_track_masks(video, masks[0])).all()
    assert (got == again.track(no_gt)).all()
    with pytest.raises(ValueError, match="no gt_masks"):
        MaskTracker("gt").track(no_gt)
    with pytest.raises(MissingWeightsError) as e:
        MaskTracker("cotracker", cotracker_repo=None)
    assert "\n" not in str(e.value) and "cotracker_repo=DIR" in str(e.value)


def test_feature_cache_disk_roundtrip(tmp_path):
    calls = []
    c1 = FeatureCache(str(tmp_path), "x")
    c1.get_or_compute("k", lambda: calls.append(1) or np.arange(3))
    c2 = FeatureCache(str(tmp_path), "x")
    assert (c2.get_or_compute("k", lambda: calls.append(1) or None) == np.arange(3)).all() and calls == [1]
