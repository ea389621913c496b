"""The one-video command line (like the authors' script) on the tiny model."""

import subprocess
import sys
from pathlib import Path

import numpy as np

from videoshop_bench.datasets.synthetic import make_sample
from videoshop.video_io import read_video, write_image, write_video

ROOT = Path(__file__).resolve().parents[1]


def test_cli_edits_one_video_and_refuses_wrong_frame_count(tmp_path):
    s = make_sample(0, 0, num_frames=14, height=64, width=112)
    write_video(tmp_path / "in.mp4", s.source_video)
    write_image(tmp_path / "edit.png", s.edited_image)
    base = [sys.executable, "-m", "videoshop.cli", "--video", str(tmp_path / "in.mp4"), "--image",
            str(tmp_path / "edit.png"), "--model", "tiny", "--num-inference-steps", "4"]
    ok = subprocess.run(base + ["--output", str(tmp_path / "out.mp4")], cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr[-2000:]
    frames, _ = read_video(tmp_path / "out_frames")
    assert frames.shape == (14, 64, 112, 3) and (tmp_path / "out.mp4").stat().st_size > 0
    write_video(tmp_path / "short.mp4", s.source_video[:9])
    bad = subprocess.run(base[:4] + [str(tmp_path / "short.mp4")] + base[5:] + ["--output", str(tmp_path / "o2.mp4")],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "has 9 frames" in bad.stderr and "--resample" in bad.stderr


def test_cli_missing_weights_fail_fast_with_one_line(tmp_path):
    s = make_sample(0, 1, num_frames=14, height=64, width=112)
    write_video(tmp_path / "in.mp4", s.source_video)
    write_image(tmp_path / "edit.png", s.edited_image)
    proc = subprocess.run([sys.executable, "-m", "videoshop.cli", "--video", str(tmp_path / "in.mp4"), "--image",
                           str(tmp_path / "edit.png"), "--output", str(tmp_path / "o.mp4"), "--model",
                           str(tmp_path / "no_such_checkpoint")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "model.path" in proc.stderr


def test_cli_runs_a_text_conditioned_flow_model_and_asks_for_its_prompt(tmp_path):
    """--model wan21_i2v_tiny (a flow-matching stand-in): refused in one line without --prompt; with it, the edit
    equals the library pipeline's on the same inputs (resized frames, same seed)."""
    from videoshop.families import model_preset
    from videoshop.models import build_pipeline

    s = make_sample(0, 2, num_frames=9, height=32, width=64)
    write_video(tmp_path / "in.mp4", s.source_video)
    write_image(tmp_path / "edit.png", s.edited_image)
    base = [sys.executable, "-m", "videoshop.cli", "--video", str(tmp_path / "in.mp4"), "--image",
            str(tmp_path / "edit.png"), "--model", "wan21_i2v_tiny", "--num-inference-steps", "4",
            "--output", str(tmp_path / "out.mp4")]
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    refused = subprocess.run(base, cwd=ROOT, capture_output=True, text=True, env=env)
    assert refused.returncode == 2 and "--prompt" in refused.stderr and refused.stderr.strip().count("\n") == 0
    ok = subprocess.run(base + ["--prompt", "a red square"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr[-2000:]
    frames, _ = read_video(tmp_path / "out_frames")
    assert frames.shape == (9, 32, 64, 3)

    import torch

    torch.set_num_threads(1)
    video, _ = read_video(tmp_path / "in.mp4")
    pipe = build_pipeline(model_preset("wan21_i2v_tiny"), "cpu")
    ref = pipe(video=video, edited_image=s.edited_image, prompt="a red square", source_prompt="a red square",
               generator=torch.Generator().manual_seed(42), height=32, width=64, strength=0.55, threshold=1.0,
               num_inference_steps=4, min_guidance_scale=4.0, max_guidance_scale=4.0)
    assert np.array_equal(np.asarray(ref.frames), frames)
