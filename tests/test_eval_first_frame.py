"""eval/first_frame.py against direct computations on the same CLIP (tiny stand-in): frame-0 metrics from the
editor's image alone, propagation metrics over frames 1..T-1 only."""

import numpy as np
import pytest
import torch

from videoshop_bench.datasets.synthetic import SyntheticDataset
from videoshop_bench.eval.first_frame import FirstFrameEdit, LaterFrames


@pytest.fixture(scope="module")
def sample():
    ds = SyntheticDataset(num_samples=1, num_frames=4, height=64, width=64)
    return ds.load(ds.sample_ids()[0])


def _cos(a, b):
    return 100.0 * float(torch.nn.functional.cosine_similarity(a, b, dim=-1).mean())


def test_first_frame_metrics_equal_direct_clip(sample):
    m = FirstFrameEdit(backbone="tiny", device="cpu")
    s = m.score(sample, sample.gt_edited_video)
    e = m.clip.embed([sample.edited_image, sample.source_video[0]])
    assert s["ff_clip_src"] == pytest.approx(_cos(e[0], e[1]), abs=1e-4)
    text = sample.target_prompt or sample.instruction
    assert s["ff_clip_text"] == pytest.approx(_cos(e[0], m.embed_text([text])[0]), abs=1e-4)
    assert s["ff_area"] == pytest.approx(100 * sample.edit_mask.mean())
    # the video is not read: any edited video gives the same frame-0 numbers
    assert m.score(sample, sample.source_video) == s
    both = sample.__class__(**{**sample.__dict__, "source_prompt": "a red ball", "target_prompt": "a blue ball"})
    d = m.score(both, both.source_video)["ff_clip_dir"]
    t = m.embed_text(["a blue ball", "a red ball"])
    assert d == pytest.approx(_cos(e[0] - e[1], t[0] - t[1]), abs=1e-3)


def test_propagation_metrics_leave_frame_zero_out(sample):
    m = LaterFrames(backbone="tiny", device="cpu")
    video = sample.gt_edited_video.copy()
    base, curves = m.score_curves(sample, video)
    video[0] = 255 - video[0]  # frame 0 changes: only frame0_kept (and the curve's first point) may move
    moved = m.score(sample, video)
    for k in ("later_clip_text", "last_clip_tgt"):
        assert moved[k] == pytest.approx(base[k], abs=1e-5), k
    assert moved["frame0_kept"] < base["frame0_kept"]
    frames = m.clip.embed(list(sample.gt_edited_video))
    tgt = m.clip.embed([sample.edited_image])[0]
    text = m.embed_text([sample.target_prompt or sample.instruction])[0]
    assert base["last_clip_tgt"] == pytest.approx(_cos(frames[-1], tgt), abs=1e-4)
    assert base["later_clip_text"] == pytest.approx(_cos(frames[1:], text[None]), abs=1e-4)
    assert curves["clip_text"] == pytest.approx([_cos(f, text) for f in frames], abs=1e-4)  # one per frame
    still = np.repeat(sample.edited_image[None], 4, 0)  # a video that keeps the edited frame exactly
    assert m.score(sample, still)["last_clip_tgt"] == pytest.approx(100.0, abs=1e-3)
