"""Flow / Flow+: EPE against the formula on hand-made flows; RAFT resizing; identical videos give 0."""

import numpy as np
import pytest
import torch

from videoshop_bench.datasets.schema import Sample
from videoshop_bench.eval.backbones import MissingWeightsError, load_raft
from videoshop_bench.eval.flow import FlowEPE, RaftFlow, end_point_error, working_size


def test_epe_formula_on_hand_made_flows():
    a = torch.zeros(2, 2, 4, 5)
    b = torch.zeros(2, 2, 4, 5)
    b[:, 0], b[:, 1] = 3.0, 4.0  # |(3, 4)| = 5 everywhere
    assert end_point_error(a, b) == pytest.approx(5.0)
    b[1, :, :2] = 0.0  # half of the rows of the second pair agree
    valid = torch.zeros(2, 4, 5, dtype=torch.bool)
    valid[1, :2] = True
    assert end_point_error(a, b, valid) == pytest.approx(0.0)
    rng = np.random.default_rng(0)
    fa, fb = rng.normal(size=(3, 2, 6, 7)), rng.normal(size=(3, 2, 6, 7))
    ref = np.sqrt(((fa - fb) ** 2).sum(1)).mean()
    assert end_point_error(torch.from_numpy(fa), torch.from_numpy(fb)) == pytest.approx(ref, rel=1e-12)
    assert np.isnan(end_point_error(a, b, torch.zeros(2, 4, 5, dtype=torch.bool)))


def test_flow_resized_back_to_source_pixels():
    assert working_size(64, 112, 128) == (128, 224)
    assert working_size(576, 1024, 128) == (576, 1024)
    raft = RaftFlow(backbone="tiny", num_flow_updates=1, min_size=128, device="cpu")

    class Const(torch.nn.Module):  # 8 px right, 4 px down at the working (2x) resolution
        def forward(self, a, b, num_flow_updates=12):
            f = torch.zeros(a.shape[0], 2, *a.shape[-2:])
            f[:, 0], f[:, 1] = 8.0, 4.0
            return [f]

    raft.model = Const()
    f = raft(np.zeros((3, 64, 112, 3), np.uint8))
    assert f.shape == (2, 2, 64, 112)
    assert torch.allclose(f[:, 0], torch.full_like(f[:, 0], 4.0)) and torch.allclose(f[:, 1], torch.full_like(f[:, 1], 2.0))


def test_identical_videos_give_zero_and_plus_region(tmp_path):
    rng = np.random.default_rng(0)
    src = rng.integers(0, 256, (4, 64, 112, 3), dtype=np.uint8)
    masks = np.zeros(src.shape[:3], bool)
    masks[:, 10:30, 20:50] = True
    s = Sample("s", src, src[0], edit_mask=masks[0], gt_masks=masks)
    m = FlowEPE(backbone="tiny", num_flow_updates=2, min_size=64, device="cpu", cache_dir=str(tmp_path))
    out = m.score(s, src.copy())
    assert out == {"flow": 0.0, "flow_plus": 0.0}
    edited = src.copy()
    edited[:, 10:30, 20:50] = rng.integers(0, 256, (4, 20, 30, 3), dtype=np.uint8)
    out = m.score(s, edited)
    src_f, ed_f = m.raft(src), m.raft(edited)
    valid = ~torch.from_numpy(masks[:-1] | masks[1:])
    assert out["flow"] == pytest.approx(end_point_error(src_f, ed_f), rel=1e-6)
    assert out["flow_plus"] == pytest.approx(end_point_error(src_f, ed_f, valid), rel=1e-6)
    assert list(tmp_path.glob("flow/*.safetensors"))  # cached without pickles


def test_missing_raft_weights_one_line():
    with pytest.raises(MissingWeightsError) as e:
        load_raft("raft_large", checkpoint="/nonexistent/raft.pth", backbone="real")
    assert "\n" not in str(e.value) and "metrics.flow.checkpoint=PATH" in str(e.value)
