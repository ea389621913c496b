"""The paper_tiny metric set (eval/registry.py) instantiates all ten metrics offline and scores a synthetic sample;
the paper set names the same metrics with real backbones and fails with one line when weights are missing."""

from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from videoshop_bench.eval.backbones import MissingWeightsError
from videoshop_bench.eval.fidelity import GroundTruthFidelity
from videoshop_bench.eval.registry import set_config

CONF = Path(__file__).resolve().parents[1] / "conf"
TEN = {"clip_tgt", "clip_tgt_plus", "tifa", "clip_src", "clip_src_plus", "flow", "flow_plus", "fvd", "ssim", "clip_tc"}


def _metrics_cfg(name, tmp_path):
    cfg = OmegaConf.create({"device": "cpu", "paths": {"cache": str(tmp_path)},
                            "tracking": OmegaConf.load(CONF / "tracking" / "gt_or_flow.yaml"),
                            "metrics": set_config(name)})
    return cfg.metrics


def test_paper_tiny_all_ten(tmp_path):
    from videoshop_bench.datasets.synthetic import SyntheticDataset

    ds = SyntheticDataset(num_samples=2)
    metrics = {k: instantiate(node) for k, node in _metrics_cfg("paper_tiny", tmp_path).items()}
    names = set()
    for m in metrics.values():
        names |= set(m.names)
        for sid in ds.sample_ids():
            s = ds.load(sid)
            if m.per_sample:
                rec = m.score(s, s.gt_edited_video)
                # scoring the ground truth against itself: PSNR vs ground truth is +inf by definition
                assert all(v is None or np.isfinite(v) or (k.startswith("psnr_gt") and v == np.inf)
                           for k, v in rec.items())
            else:
                m.update(s, s.gt_edited_video)
        if not m.per_sample:
            assert np.isfinite(float(m.compute()["fvd"])) and "fvd" in m.notes()
        assert m.protocol()
    assert names - set(GroundTruthFidelity.names) == TEN


def test_paper_config_real_backbones(tmp_path):
    cfg = _metrics_cfg("paper", tmp_path)
    assert {n.get("backbone", "real") for n in cfg.values()} == {"real"}
    assert cfg.clip_tgt.model == "ViT-B-32" and cfg.flow.model == "raft_large"
    with pytest.raises(Exception) as e:  # hydra wraps the constructor's error; the one line is its __cause__
        instantiate(cfg.clip_tgt)
    cause = e.value if isinstance(e.value, MissingWeightsError) else e.value.__cause__
    assert isinstance(cause, MissingWeightsError)
    assert "\n" not in str(cause) and "metrics.clip_tgt.checkpoint=PATH" in str(cause)
