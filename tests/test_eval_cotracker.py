"""CoTracker through torch.hub, with the REAL CoTracker code and random weights (no weights can be downloaded here).

Runs only where a local clone of facebookresearch/co-tracker is named by the environment (CI has none):

    COTRACKER_REPO=/path/to/co-tracker .venv/bin/python -m pytest tests/test_eval_cotracker.py

It builds the hub entry point with ``pretrained=False``, saves that random state dict as the checkpoint file, and
checks that ``MaskTracker(tracker="cotracker")`` loads it through ``load_cotracker`` and turns the predictor's tracks
into per-frame masks of the video's size. Random weights track nothing meaningful: no IoU is asserted.
"""

import os

import numpy as np
import pytest
import torch

REPO = os.environ.get("COTRACKER_REPO")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not REPO or not os.path.exists(os.path.join(REPO or "", "hubconf.py")),
                                 reason="set COTRACKER_REPO to a local clone of facebookresearch/co-tracker")]


@pytest.mark.parametrize("model", ["cotracker3_offline", "cotracker2"])
def test_cotracker_from_local_hub_repo(tmp_path, model):
    from videoshop_bench.datasets.schema import Sample
    from videoshop_bench.datasets.synthetic import make_sample
    from videoshop_bench.eval.tracking import MaskTracker

    torch.manual_seed(0)
    predictor = torch.hub.load(REPO, model, source="local", pretrained=False)
    ckpt = tmp_path / f"{model}.pth"
    torch.save(predictor.model.state_dict(), ckpt)

    s = make_sample(0, 1, num_frames=8)
    s = Sample(s.sample_id, s.source_video, s.edited_image, edit_mask=s.edit_mask, edit_type=s.edit_type)
    tracker = MaskTracker("cotracker", cotracker_repo=REPO, cotracker_checkpoint=str(ckpt), cotracker_model=model,
                          device="cpu", cache_dir=str(tmp_path / "cache"))
    loaded = tracker._predictor.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in predictor.model.state_dict().items())
    masks = tracker.track(s)
    assert masks.shape == s.source_video.shape[:3] and masks.dtype == bool
    assert masks.reshape(len(masks), -1).any(1).all()  # a region in every frame
    assert "cotracker" in tracker.protocol() and model in tracker.protocol()
