"""Frame windows (eval/windows.py, config ``frame_windows``): the run's own metric objects scored on frames
start..stop-1, against direct computations on the trimmed videos; regions tracked on the whole video; windows too
short for a metric skipped with the reason; a set metric (FVD) over a window from stored features."""

import numpy as np
import pandas as pd
import pytest

from videoshop_bench.datasets.synthetic import SyntheticDataset
from videoshop_bench.eval.clip import CLIPSource
from videoshop_bench.eval.fidelity import GroundTruthFidelity, SourceSSIM, psnr, ssim_mean
from videoshop_bench.eval.flow import FlowEPE
from videoshop_bench.eval.fvd import FVD, fvd_from_features
from videoshop_bench.eval.windows import FrameWindow, display_name, parse_windows, split_window
from videoshop_bench.experiments.merge import set_metric_frame
from videoshop_bench.experiments.scoring import score_sample, set_metric_features
from videoshop_bench.experiments.tables import metric_columns

LATER = FrameWindow(start=1)


@pytest.fixture(scope="module")
def sample():
    ds = SyntheticDataset(num_samples=1, num_frames=5, height=64, width=64)
    return ds.load(ds.sample_ids()[0])


def _edited(sample):
    rng = np.random.default_rng(0)
    noise = rng.integers(-20, 21, size=sample.gt_edited_video.shape)
    return np.clip(sample.gt_edited_video.astype(int) + noise, 0, 255).astype(np.uint8)


def test_window_scores_equal_the_metrics_on_the_trimmed_videos(sample, one_thread):
    edited = _edited(sample)
    metrics = {"ssim": SourceSSIM(), "gt_fidelity": GroundTruthFidelity(),
               "clip_src": CLIPSource(backbone="tiny", device="cpu", tracking={"tracker": "flow"})}
    s = score_sample(metrics, sample, edited, True, [LATER])
    assert s.values["ssim[1:]"] == pytest.approx(100 * ssim_mean(sample.source_video[1:], edited[1:]))
    assert s.values["ssim"] == pytest.approx(100 * ssim_mean(sample.source_video, edited))  # the whole video too
    assert s.values["ssim[1:]"] != pytest.approx(s.values["ssim"])
    # ground truth and its masks are cut the same way
    assert s.values["psnr_gt[1:]"] == pytest.approx(psnr(edited[1:], sample.gt_edited_video[1:]))
    m = sample.gt_masks[1:]
    assert s.values["psnr_gt_in[1:]"] == pytest.approx(psnr(edited[1:], sample.gt_edited_video[1:], m))
    clip = metrics["clip_src"]
    e, src = clip.clip.embed(list(edited[1:])), clip.clip.embed(list(sample.source_video[1:]))
    assert s.values["clip_src[1:]"] == pytest.approx(100 * float((e * src).sum(-1).mean()), abs=1e-4)
    assert not any(k.endswith("[1:]") for k in s.curves)


def test_regions_are_tracked_on_the_whole_video_then_cut(sample, one_thread):
    from dataclasses import replace

    no_gt = replace(sample, gt_masks=None)  # the flow tracker, from the frame-0 mask
    edited = _edited(sample)
    metric = CLIPSource(backbone="tiny", device="cpu", tracking={"tracker": "flow"})
    part, part_edited = LATER.trim(no_gt, edited)
    whole = metric.tracker.track(no_gt, edited)
    assert np.array_equal(metric.tracker.track(part, part_edited), whole[1:])
    assert part.edit_mask is no_gt.edit_mask and part.edited_image is no_gt.edited_image  # frame-0 references kept
    assert part.num_frames == 4 and part_edited.shape[0] == 4


def test_a_window_too_short_for_a_metric_is_skipped_with_the_reason(sample, one_thread):
    edited = _edited(sample)
    last = FrameWindow(start=4)  # one frame: no consecutive pair for Flow
    s = score_sample({"flow": FlowEPE(backbone="tiny", device="cpu", plus=False), "ssim": SourceSSIM()},
                     sample, edited, True, [last])
    assert "flow[4:]" not in s.values and "needs at least 2" in s.skipped["flow[4:]"]
    assert "ssim[4:]" in s.values and not s.errors
    fvd = FVD(backbone="tiny", device="cpu")
    fvd.min_frames = 10  # the real I3D's minimum (eval/fvd.py I3D_MIN_FRAMES)
    out = set_metric_features({"fvd": fvd}, sample, edited, [LATER])
    assert "fvd[1:]" not in out["features_meta"] and "fvd/source" in out["features"]
    assert "frames 1..T-1 are 4 frame(s)" in out["skipped"]["fvd[1:]"]


def test_window_fvd_from_stored_features(sample, one_thread):
    fvd = FVD(backbone="tiny", device="cpu")
    store, records = {}, []
    for i in range(3):
        edited = np.roll(_edited(sample), i, axis=2)
        out = set_metric_features({"fvd": fvd}, sample, edited, [LATER])
        store[f"s{i}"] = (out["features"], out["features_meta"])
        records.append({"sample_id": f"s{i}", "label": "m", "status": "ok", "finite": True})
    frame, _ = set_metric_frame(records, lambda sid: store[sid])
    feats = [store[f"s{i}"][0] for i in range(3)]
    want = fvd_from_features(np.stack([f["fvd[1:]/source"] for f in feats]), np.stack([f["fvd[1:]/edited"] for f in feats]))
    assert frame.loc["m", "fvd[1:]"] == pytest.approx(want)
    assert frame.loc["m", "fvd[1:]"] != pytest.approx(frame.loc["m", "fvd"])
    # a record that skipped the window: its reason is the warning, not "rerun to add them"
    store["s3"] = ({k: v for k, v in feats[0].items() if "[" not in k}, {"fvd": store["s0"][1]["fvd"]})
    records.append({"sample_id": "s3", "label": "m", "status": "ok", "finite": True,
                    "set_skipped": {"fvd[1:]": "frames 1..T-1 are 4 frame(s), this metric needs at least 10"}})
    frame, _ = set_metric_frame(records, lambda sid: store[sid])
    assert "1 sample(s) skipped: frames 1..T-1 are 4" in frame.loc["m", "fvd[1:]_warning"]


def test_window_config_columns_and_names():
    (w,) = parse_windows([{"start": 1, "stop": None, "metrics": ["ssim"]}])
    assert w == FrameWindow(1, None, ("ssim",)) and w.applies("ssim") and not w.applies("clip_tgt")
    assert w.describe() == "frames 1..T-1" and FrameWindow(2, 5).describe() == "frames 2..4"
    for bad in ([{"start": -1}], [{"start": 3, "stop": 2}], [{"begin": 1}], [{"start": 1}, {"start": 1}]):
        with pytest.raises(ValueError, match="frame_windows"):
            parse_windows(bad)
    assert split_window("clip_tgt_plus[1:]") == ("clip_tgt_plus", "[1:]") and split_window("ssim") == ("ssim", "")
    assert display_name("clip_tgt_plus[1:]", {"clip_tgt_plus": "CLIP_tgt+"}) == "CLIP_tgt+ [1:]"
    df = pd.DataFrame(columns=["label", "status", "ssim[1:]", "mine", "clip_tgt[1:]", "ssim", "clip_tgt"])
    assert metric_columns(df) == ["clip_tgt", "ssim", "clip_tgt[1:]", "ssim[1:]", "mine"]
