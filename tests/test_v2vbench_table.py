"""V2VBench's leaderboard as data, and our numbers beside it."""

import pandas as pd
import pytest

from videoshop_bench.experiments.v2vbench_table import V2VBENCH_NAMES, beside_v2vbench, main, to_markdown, v2vbench_leaderboard


def test_leaderboard_values_and_scales():
    board = v2vbench_leaderboard()
    assert len(board) == 16 and list(board.columns[2:]) == list(V2VBENCH_NAMES)
    row = board.set_index("method").loc["Fate-Zero"]
    assert row["dino_consistency"] == 0.952 and row["gmflow_motion"] == -1.439  # the board's best of both
    # the corrected header (commit 385976a) fits V2VBench's code's scales
    assert board["pickscore"].between(19, 22).all() and board["viclip_text"].between(0, 1).all()
    assert board["dover"].between(0, 1).all() and board["clip_text"].between(20, 35).all()
    assert (board["gmflow_motion"] < 0).all()


def test_ours_beside_the_board(tmp_path, capsys):
    summary = pd.DataFrame({"label": ["videoshop", "rave"], "aesthetic": [5.2, 5.0], "gmflow_motion": [-1.0, -2.5]})
    t = beside_v2vbench(summary)
    assert len(t) == 18 and list(t["source"][-2:]) == ["ours", "ours"]
    assert t.iloc[-2]["aesthetic"] == 5.2 and pd.isna(t.iloc[-1]["dover"])
    md = to_markdown(t)
    assert "| ours | videoshop | 5.200 | - |" in md and "Motion Alignment" in md.splitlines()[0]
    with pytest.raises(ValueError, match="aesthetic"):
        beside_v2vbench(summary, protocols={"aesthetic": "V2VBench ...: tiny random LaionAestheticPredictor"})
    path = tmp_path / "summary.csv"
    summary.to_csv(path, index=False)
    main([str(path)])
    assert "| ours | rave | 5.000 |" in capsys.readouterr().out


def test_v2vbench_sets_through_the_registry(tmp_path):
    """v2vbench_tiny builds all eight offline and scores a synthetic sample (columns = the registry's); v2vbench
    names the real models and each fails with one line naming its own key when the weights are missing."""
    import numpy as np
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from videoshop_bench.datasets.synthetic import SyntheticDataset
    from videoshop_bench.eval.backbones import MissingWeightsError
    from videoshop_bench.eval.registry import METRICS, set_config

    wiring = {"device": "cpu", "paths": {"cache": str(tmp_path)}}
    tiny = OmegaConf.create({**wiring, "metrics": set_config("v2vbench_tiny")}).metrics
    assert list(tiny) == list(V2VBENCH_NAMES)
    s = SyntheticDataset(num_samples=1).load("syn0-0000-add_object")
    for key, node in tiny.items():
        m = instantiate(node)
        values = m.score(s, s.gt_edited_video)
        assert list(values) == list(METRICS.get(key).columns) and np.isfinite(values[key])
        assert "tiny" in m.protocol()[key]
    real = OmegaConf.create({**wiring, "metrics": set_config("v2vbench")}).metrics
    assert real.clip_consistency.model == "openai/clip-vit-large-patch14" and real.dover.checkpoint is None
    for key, node in real.items():
        with pytest.raises(Exception) as e:
            instantiate(node)
        cause = e.value if isinstance(e.value, MissingWeightsError) else e.value.__cause__
        assert isinstance(cause, MissingWeightsError) and str(cause).startswith(f"metrics.{key}.")
        assert "\n" not in str(cause)
