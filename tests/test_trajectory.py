"""The paper's Fig. 3 experiment: the cosine statistics on trajectories with known geometry, and the preset end to end."""

from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir

from videoshop_bench.research.trajectory import PAPER_STATISTICS, trajectory_cosines, trajectory_statistics

CONF = str(Path(__file__).resolve().parents[1] / "conf")


def test_a_straight_trajectory_has_cosine_one_everywhere():
    x0, d = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    states = [x0 + s * d for s in (80.0, 10.0, 1.0, 0.1)] + [x0]
    c = trajectory_cosines(states)
    assert c.shape == (4, 4) and torch.allclose(c, torch.ones(4, 4, dtype=torch.float64), atol=1e-12)


def test_statistics_of_a_known_bend():
    """x_t - x_0 along e1, e1, then e2 (a right angle): pairs (0,1)=1, (0,2)=(1,2)=0."""
    x0 = torch.zeros(3)
    e1, e2 = torch.tensor([1.0, 0, 0]), torch.tensor([0, 1.0, 0])
    c = trajectory_cosines([x0 + 3 * e1, x0 + 2 * e1, x0 + e2, x0])
    s = trajectory_statistics([c, torch.ones(3, 3, dtype=torch.float64)])
    assert s["mean_all_pairs"] == pytest.approx((1 / 3 + 1) / 2)
    assert s["mean_consecutive"] == pytest.approx((1 + 0 + 1 + 1) / 4)
    assert s["min_consecutive"] == pytest.approx(0.0)


def test_trajectory_preset_runs_on_the_toy_model(tmp_path):
    from videoshop_bench.experiments.tasks import main_task

    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("config", overrides=["experiment=trajectory", f"paths.output={tmp_path}", "device=cpu",
                                           "trajectory.num_videos=2", "trajectory.num_inference_steps=6"])
    table = main_task(cfg)
    assert list(table["statistic"]) == list(PAPER_STATISTICS)
    assert table["ours"].between(-1, 1).all() and (table["paper"] == list(PAPER_STATISTICS.values())).all()
    assert (tmp_path / "trajectory.png").stat().st_size > 0
    assert "0.9282" in (tmp_path / "trajectory.md").read_text()
    assert pd.read_csv(tmp_path / "trajectory.csv").shape == (3, 4)
