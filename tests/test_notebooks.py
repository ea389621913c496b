"""The notebooks (percent-format .py files) run top to bottom on the toy model, as a user would run them."""

import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

from videoshop_bench.experiments.runner import Runner

ROOT = Path(__file__).resolve().parents[1]


def _run(script, *args):
    proc = subprocess.run([sys.executable, f"notebooks/{script}", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_quickstart_notebook_edits_a_video_and_writes_a_contact_sheet(tmp_path):
    out = _run("quickstart.py", tmp_path)
    assert "NFE 26" in out and "PSNR vs ground truth" in out
    assert (tmp_path / "contact_sheet.png").stat().st_size > 0


def test_results_notebook_reads_a_toy_run(tmp_path):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"paths.output={tmp_path}", f"paths.cache={tmp_path}/cache", "logger=none",
                                           "dataset.limit=2"])
    Runner(cfg).run()
    out = _run("results.py", tmp_path)
    assert "videoshop" in out and "2 samples, 0 failed" in out
    assert (tmp_path / "notebook_paper_metrics.png").stat().st_size > 0
