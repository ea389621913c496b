"""The edit-propagation metric: curves that fall where an edit fades by construction and stay flat where it holds,
its columns against CLIP_tgt+ / CLIP_src+ on the same backbone, and its records, skips and area (tiny CLIP)."""

import numpy as np
import pytest

from videoshop_bench.datasets.schema import Sample
from videoshop_bench.eval.clip import CLIPSource, CLIPTarget
from videoshop_bench.eval.propagation import EditPropagation, curve_area, last_value

KW = dict(backbone="tiny", device="cpu")
T, H, W = 8, 48, 64


def _scene(seed: int = 0):
    """A textured source video with a grey square at a fixed place, the edited first frame with a saturated
    red/yellow checker pattern in that square, and the square as the per-frame region."""
    rng = np.random.default_rng(seed)
    src = np.repeat(rng.integers(0, 256, (1, H, W, 3), dtype=np.uint8), T, axis=0)
    src = np.clip(src.astype(int) + rng.integers(-6, 7, src.shape), 0, 255).astype(np.uint8)  # a little motion noise
    masks = np.zeros((T, H, W), bool)
    masks[:, 12:36, 16:44] = True
    src[masks] = 128
    patch = np.zeros((24, 28, 3), np.uint8)
    patch[..., 0] = 230
    patch[::4, :, 1] = 220  # stripes: texture the crop keeps
    edited_image = src[0].copy()
    edited_image[12:36, 16:44] = patch
    sample = Sample("p", src, edited_image, edit_mask=masks[0], gt_masks=masks)
    return sample, patch


def _video(sample, patch, alphas):
    """Frame t = source with the patch blended in at weight alphas[t] (1: the edit, 0: the source)."""
    out = sample.source_video.copy()
    for t, a in enumerate(alphas):
        region = out[t, 12:36, 16:44].astype(np.float64)
        out[t, 12:36, 16:44] = np.round(a * patch + (1 - a) * region).astype(np.uint8)
    return out


@pytest.fixture(scope="module")
def metric():
    return EditPropagation(**KW)


@pytest.fixture(scope="module")
def dino():
    return EditPropagation(embedder="dinov2", **KW)


@pytest.mark.parametrize("which", ["metric", "dino"])
def test_an_edit_that_fades_gives_a_falling_inside_curve(which, request):
    metric = request.getfixturevalue(which)
    sample, patch = _scene()
    values, curves = metric.score_curves(sample, _video(sample, patch, np.linspace(1, 0, T)))
    inside = np.array(curves["propagation_in"])
    assert len(inside) == T and np.isfinite(inside).all()
    assert inside[0] == pytest.approx(100.0, abs=1e-3)  # frame 0 is the edited image's region itself
    assert np.all(np.diff(inside) < 0.5) and inside[-1] < inside[0] - 1.0  # falls (never rises by more than noise)
    assert values["propagation_in_last"] == pytest.approx(inside[-1])
    assert values["propagation_in_auc"] < inside[0] and values["propagation_in_auc"] > inside[-1]


@pytest.mark.parametrize("which", ["metric", "dino"])
def test_an_edit_that_holds_gives_a_flat_inside_curve_and_the_untouched_outside_stays_at_100(which, request):
    metric = request.getfixturevalue(which)
    sample, patch = _scene()
    values, curves = metric.score_curves(sample, _video(sample, patch, np.ones(T)))
    inside, outside = np.array(curves["propagation_in"]), np.array(curves["propagation_out"])
    # the region's pixels are the same in every frame: every frame's crop has the same embedding
    assert np.ptp(inside) < 1e-3 and inside[0] == pytest.approx(100.0, abs=1e-3)
    assert np.allclose(outside, 100.0, atol=1e-3)  # outside the region the edit is the source
    assert values["propagation_in_auc"] == pytest.approx(100.0, abs=1e-3)
    assert values["propagation_out_last"] == pytest.approx(100.0, abs=1e-3)


def test_a_background_that_degrades_gives_a_falling_outside_curve(metric):
    sample, patch = _scene()
    edited = _video(sample, patch, np.ones(T))
    rng = np.random.default_rng(1)
    for t in range(T):  # noise outside the region that grows with t
        noise = rng.normal(0, 12.0 * t, edited[t].shape)
        noisy = np.clip(edited[t] + noise, 0, 255).astype(np.uint8)
        edited[t][~sample.gt_masks[t]] = noisy[~sample.gt_masks[t]]
    _, curves = metric.score_curves(sample, edited)
    outside = np.array(curves["propagation_out"])
    assert outside[0] == pytest.approx(100.0, abs=1e-3) and outside[-1] < outside[1] < outside[0]


def test_curve_means_equal_clip_tgt_plus_and_clip_src_plus_on_the_same_backbone(metric):
    """Independent reference: the per-frame inside curve averages to CLIP_tgt+ (crop mode) and the outside one to
    CLIP_src+, which compute the same similarities through their own code."""
    sample, patch = _scene(3)
    edited = _video(sample, patch, np.linspace(1, 0.3, T))
    _, curves = metric.score_curves(sample, edited)
    assert np.mean(curves["propagation_in"]) == pytest.approx(CLIPTarget(**KW).score(sample, edited)["clip_tgt_plus"],
                                                              abs=1e-3)
    assert np.mean(curves["propagation_out"]) == pytest.approx(CLIPSource(**KW).score(sample, edited)["clip_src_plus"],
                                                               abs=1e-3)


def test_area_and_last_value_of_hand_made_curves():
    assert curve_area([100, 100, 100]) == pytest.approx(100)
    assert curve_area([100, 50, 0]) == pytest.approx(50)  # a linear fade: the mean of its ends
    assert curve_area([100, 80, 80, 80, 80]) == pytest.approx((90 + 80 * 3) / 4)
    assert curve_area([np.nan, 60, 40]) == pytest.approx(50)  # over the frames that have a value
    assert curve_area([np.nan, np.nan]) is None and last_value([np.nan]) is None
    assert last_value([90, 70, np.nan]) == 70


def test_no_region_skips_the_inside_and_a_full_region_the_outside(metric):
    sample, patch = _scene()
    edited = _video(sample, patch, np.ones(T))
    none = Sample("n", sample.source_video, sample.edited_image, edit_mask=None)
    values, curves = metric.score_curves(none, edited)
    assert values["propagation_in_auc"] is None and np.isnan(curves["propagation_in"]).all()
    assert values["propagation_out_auc"] is not None  # the whole frame is outside the (empty) region
    assert metric.skip_reason("propagation_in_auc", none) == "no edit mask"
    full = Sample("f", sample.source_video, sample.edited_image, edit_mask=np.ones((H, W), bool),
                  gt_masks=np.ones((T, H, W), bool))
    values, _ = metric.score_curves(full, edited)
    assert values["propagation_out_last"] is None and values["propagation_in_last"] is not None
    assert "whole frame" in metric.skip_reason("propagation_out_last", full)


def test_output_first_reference_measures_drift_from_the_methods_own_first_frame():
    sample, patch = _scene()
    m = EditPropagation(reference="output_first", **KW)
    edited = _video(sample, patch, np.full(T, 0.5))  # a half-strength edit that holds
    _, curves = m.score_curves(sample, edited)
    assert np.ptp(curves["propagation_in"]) < 1e-3 and curves["propagation_in"][0] == pytest.approx(100, abs=1e-3)
    with pytest.raises(ValueError, match="metrics.propagation.reference"):
        EditPropagation(reference="nope", **KW)
    with pytest.raises(ValueError, match="metrics.propagation.embedder"):
        EditPropagation(embedder="sift", **KW)
    assert "first output frame" in m.protocol()["propagation_in_auc"]


def test_dinov2_embedder_matches_the_v2vbench_dino_features_and_says_so_in_the_protocol(dino):
    """Independent reference: the DINOv2 features V2VBench's DINO consistency computes (same tiny seeded model)."""
    from videoshop_bench.eval.v2vbench import DINOConsistency

    sample, patch = _scene()
    frames = _video(sample, patch, np.ones(T))[:3]
    ref = DINOConsistency(backbone="tiny", device="cpu").pooled(frames)
    ref = ref / ref.norm(dim=-1, keepdim=True)
    assert np.allclose(dino.embedder.embed(list(frames)).numpy(), ref.numpy(), atol=1e-5)
    assert "DINOv2" in dino.protocol()["propagation_out_auc"]
