"""Motion fidelity score against an independent computation on synthetic tracks, the weight-free point tracker on a
translating texture, FiVE's box mask, and the metric's skips and protocol."""

import numpy as np
import pytest
import torch

from videoshop_bench.datasets.schema import Sample
from videoshop_bench.eval.backbones import MissingWeightsError
from videoshop_bench.eval.motion_fidelity import (MotionFidelity, displacement_similarity, flow_point_tracks, motion_fidelity_score,
                                  union_box_mask)


def reference_mfs(edit: np.ndarray, source: np.ndarray) -> float:
    """FiVE-Bench / DMT's score written out with loops: unit displacements, per-pair mean cosine over time,
    diagonal lowered by 1, best source track per edited track, mean."""
    def unit(tr):
        d = tr[:, 1:] - tr[:, :-1]
        return d / np.linalg.norm(d, axis=-1, keepdims=True)

    a, b = unit(edit), unit(source)
    sim = np.zeros((len(a), len(b)))
    for i in range(len(a)):
        for j in range(len(b)):
            sim[i, j] = np.mean([a[i, t] @ b[j, t] for t in range(a.shape[1])])
    sim -= np.eye(len(a), len(b))
    return float(sim.max(axis=1).mean())


def test_score_matches_independent_computation_on_synthetic_tracks():
    rng = np.random.default_rng(0)
    source = np.cumsum(rng.normal(0, 2, (30, 9, 2)), axis=1)
    edit = source + rng.normal(0, 0.5, source.shape)
    got = motion_fidelity_score(torch.tensor(edit), torch.tensor(source))
    assert got == pytest.approx(reference_mfs(edit, source), abs=1e-12)
    # the literal reference with its (N, M, T) intermediate, as FiVE writes it
    da = torch.tensor(edit[:, 1:] - edit[:, :-1])
    db = torch.tensor(source[:, 1:] - source[:, :-1])
    da, db = da / da.norm(dim=-1, keepdim=True), db / db.norm(dim=-1, keepdim=True)
    literal = torch.einsum("ntc, mtc -> nmt", da, db).mean(dim=-1)
    assert torch.allclose(displacement_similarity(torch.tensor(edit), torch.tensor(source)), literal)
    # coherent motion (every point follows one camera path): the same path scores near 1, a reversed one below 0
    path = np.cumsum(rng.normal(0, 2, (1, 9, 2)), axis=1) + rng.normal(0, 0.05, (30, 9, 2))
    assert motion_fidelity_score(torch.tensor(path + 0.01), torch.tensor(path)) > 0.95
    assert motion_fidelity_score(torch.tensor(path[:, ::-1].copy()), torch.tensor(path)) < 0


def test_zero_displacement_is_cosine_zero_not_nan():
    still = np.zeros((4, 5, 2))
    assert motion_fidelity_score(torch.tensor(still), torch.tensor(still)) == pytest.approx(0.0)
    assert np.isfinite(motion_fidelity_score(torch.tensor(still), torch.tensor(np.cumsum(np.ones((4, 5, 2)), 1))))


def _translating(t=6, h=64, w=80, dx=2, dy=1, seed=0):
    import cv2

    rng = np.random.default_rng(seed)
    big = cv2.GaussianBlur(rng.integers(0, 256, (h + 40, w + 40, 3)).astype(np.uint8), (5, 5), 1.5)
    return np.stack([big[20 - i * dy:20 - i * dy + h, 20 - i * dx:20 - i * dx + w] for i in range(t)])


def test_flow_point_tracker_follows_a_translation():
    video = _translating()
    pts = np.array([[30.0, 30.0], [50.0, 25.0], [40.0, 40.0]])
    tracks = flow_point_tracks(video, pts)
    assert tracks.shape == (3, 6, 2)
    steps = np.diff(tracks, axis=1)
    assert np.allclose(steps.mean((0, 1)), [2, 1], atol=0.3)


def test_union_box_follows_five_bench():
    region = np.zeros((3, 10, 12), dtype=bool)
    region[0, 2:4, 3:5] = True
    region[2, 6:8, 8:10] = True
    box = union_box_mask(region)
    assert box.sum() == (7 - 2) * (9 - 3) and box[2, 3] and not box[7, 9]  # rows 2:7, cols 3:9 (max exclusive)
    assert union_box_mask(np.zeros((2, 4, 4), bool)) is None


def _sample(video, masks=None):
    return Sample("s", video, video[0], edit_mask=None if masks is None else masks[0], gt_masks=masks,
                  instruction="x")


def test_metric_scores_skips_and_protocol():
    video = _translating(t=6)
    masks = np.zeros(video.shape[:3], dtype=bool)
    masks[:, 20:40, 20:50] = True
    m = MotionFidelity(grid_size=10, device="cpu")
    same = m.score(_sample(video, masks), video.copy())
    backwards = m.score(_sample(video, masks), np.ascontiguousarray(video[::-1]))
    assert same["mfs"] > 0.9 and backwards["mfs"] < 0 and same["mfs_edit"] > 0.9
    empty = m.score(_sample(video, np.zeros_like(masks)), video.copy())
    assert empty["mfs_edit"] is None and "empty" in m.skip_reason("mfs_edit", _sample(video, masks))
    assert "weight-free" in m.protocol()["mfs"] and "CoTracker not configured" in m.protocol()["mfs"]


def test_cotracker_requested_without_weights_names_the_key():
    with pytest.raises(MissingWeightsError, match=r"^tracking\.cotracker_repo"):
        MotionFidelity(point_tracker="cotracker", device="cpu")
    with pytest.raises(ValueError, match="point_tracker"):
        MotionFidelity(point_tracker="raft", device="cpu")


COTRACKER_REPO = __import__("os").environ.get("COTRACKER_REPO")


@pytest.mark.slow
@pytest.mark.skipif(not COTRACKER_REPO, reason="set COTRACKER_REPO to a local clone of facebookresearch/co-tracker")
def test_cotracker_point_tracks_with_real_cotracker_code(tmp_path):
    """The REAL CoTracker code with random weights, called as FiVE calls it (grid_size, segm_mask box): tracks of
    the right shape through the metric; random weights track nothing meaningful, so no value is asserted."""
    predictor = torch.hub.load(COTRACKER_REPO, "cotracker3_offline", source="local", pretrained=False)
    ckpt = tmp_path / "random.pth"
    torch.save(predictor.model.state_dict(), ckpt)
    tracking = {"cotracker_repo": COTRACKER_REPO, "cotracker_checkpoint": str(ckpt), "tracker": "gt_or_flow"}
    m = MotionFidelity(grid_size=6, tracking=tracking, device="cpu", cache_dir=str(tmp_path / "c"))
    assert m.point_tracker == "cotracker" and "CoTracker cotracker3_offline" in m.protocol()["mfs"]
    video = _translating(t=8)
    masks = np.zeros(video.shape[:3], dtype=bool)
    masks[:, 20:40, 20:50] = True
    assert m.tracks(video, None).shape == (36, 8, 2)
    boxed = m.tracks(video, union_box_mask(masks))
    assert 0 < len(boxed) < 36 and boxed.shape[1:] == (8, 2)
    got = m.score(_sample(video, masks), video.copy())
    assert -1 <= got["mfs"] <= 1 and -1 <= got["mfs_edit"] <= 1
