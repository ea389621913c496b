"""The modern metric set (eval/registry.py): modern_tiny instantiates the VLM judge, background preservation and
motion fidelity offline and scores a synthetic sample with the registry's columns; the real set fails at
construction with one line naming the key when weights are missing."""

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from videoshop_bench.eval.backbones import MissingWeightsError
from videoshop_bench.eval.registry import METRICS, set_config

CONF = Path(__file__).resolve().parents[1] / "conf"
MODERN = ("vlm_judge", "background", "motion_fidelity")


def _cfg(name, tmp_path):
    return OmegaConf.create({"device": "cpu", "paths": {"cache": str(tmp_path)},
                             "tracking": OmegaConf.load(CONF / "tracking" / "gt_or_flow.yaml"),
                             "metrics": set_config(name)}).metrics


def test_modern_tiny_scores_with_the_registry_columns(tmp_path):
    from videoshop_bench.datasets.synthetic import SyntheticDataset

    cfg = _cfg("modern_tiny", tmp_path)
    assert set(MODERN) <= set(cfg)
    s = SyntheticDataset(num_samples=1, num_frames=6).load("syn0-0000-add_object")
    for key in MODERN:
        m = instantiate(cfg[key])
        assert tuple(METRICS.get(key).columns) == m.names
        got = m.score(s, s.gt_edited_video)
        assert set(got) == set(m.names) and set(m.protocol()) == set(m.names)
    assert got["mfs"] is not None  # motion fidelity (the last one) always scores the whole frame
    assert "vlm_judge" in set_config("all_tiny") and "background" in set_config("all")


def test_modern_real_missing_weights_fail_at_construction(tmp_path):
    cfg = _cfg("modern", tmp_path)
    assert cfg.vlm_judge.model == "Qwen/Qwen2.5-VL-7B-Instruct" and cfg.motion_fidelity.point_tracker == "auto"
    for key, where in (("vlm_judge", "metrics.vlm_judge.model"), ("background", "metrics.background.lpips_checkpoint")):
        with pytest.raises(Exception) as e:
            instantiate(cfg[key])
        err = e.value if isinstance(e.value, MissingWeightsError) else e.value.__cause__
        assert isinstance(err, MissingWeightsError) and str(err).startswith(where) and "\n" not in str(err)
