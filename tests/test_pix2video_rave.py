"""Pix2Video and RAVE (baselines/pix2video.py, baselines/rave.py) on tiny stand-ins: cross-frame injection, the
latent update, RAVE's grids, and both methods end to end through the runner."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir

from videoshop_bench.baselines.pix2video import Pix2Video, guided_latent_update
from videoshop_bench.baselines.rave import (arrange_grids, frames_kept, grid_cells, rave_cell_size, unarrange_grids)
from videoshop.video_io import read_video
from videoshop_bench.experiments.runner import Runner

CONF = str(Path(__file__).resolve().parents[1] / "conf")
PIX2VIDEO_SCHED = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                       set_alpha_to_one=False, steps_offset=0)



pytestmark = pytest.mark.usefixtures("one_thread")

# ------------------------------------------------------------------------------------------- RAVE grids
@pytest.mark.parametrize("num_frames", [14, 9, 4])
def test_rave_grid_arrangement_and_shuffle_are_exact_permutations(num_frames):
    g = 3
    x = torch.randn(num_frames, 4, 5, 7, generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    for step in range(50):  # every step's permutation, as the denoising loop draws them
        perm = torch.randperm(num_frames, generator=gen) if step else torch.arange(num_frames)
        grids = arrange_grids(x, perm, g)
        assert grids.shape == (-(-num_frames // 9), 4, 15, 21)
        cells = grid_cells(perm, g)
        assert torch.equal(cells[:num_frames].sort().values, torch.arange(num_frames))  # every frame exactly once
        for k, f in enumerate(cells.tolist()):  # cell k of grid k // 9 at row-major position k % 9 holds frame f
            r, c = divmod(k % 9, 3)
            assert torch.equal(grids[k // 9, :, r * 5:(r + 1) * 5, c * 7:(c + 1) * 7], x[f])
        assert torch.equal(unarrange_grids(grids, perm, g), x)  # bit for bit


def test_rave_frame_policy_and_cell_size_follow_the_official_code():
    assert frames_kept(14, 3, "official") == 9 and frames_kept(14, 2, "official") == 12
    assert frames_kept(14, 3, "all") == 14
    assert rave_cell_size(576, 1024, 3) == (384, 680)  # 16:9 Videoshop frames: ~512^2 cells, sides multiple of 8
    assert rave_cell_size(512, 512, 3) == (512, 512)


# ------------------------------------------------------------------------------------------- Pix2Video
def test_latent_update_is_the_gradient_of_the_weighted_mse_to_the_previous_frame():
    x_prev = torch.randn(3, 4, 2, 2, dtype=torch.float64)
    x0 = torch.randn(3, 4, 2, 2, dtype=torch.float64, requires_grad=True)
    w = 100.0
    loss = sum(w * torch.nn.functional.mse_loss(x0[f - 1].detach(), x0[f]) for f in (1, 2))
    (grad,) = torch.autograd.grad(loss, x0)
    out = guided_latent_update(x_prev, x0.detach(), w)
    assert torch.equal(out[0], x_prev[0])  # frame 0 is edited as a plain image
    assert torch.allclose(out[1:], x_prev[1:] - grad[1:], atol=1e-12)


@pytest.fixture(scope="module")
def frames():
    return np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)


def _p2v(**kw):
    return Pix2Video(weights="tiny", scheduler=PIX2VIDEO_SCHED, num_inference_steps=3, height=32, width=32,
                     prompts={"cache_dir": None}, **kw)


def test_pix2video_without_injection_equals_independent_per_frame_editing(frames):
    m = _p2v(injection=False, latent_update=False)
    video, nfe = m.edit_frames(frames, "a cat", "a dog")
    assert nfe.by_name["unet_inversion"] == 3 * 3 and nfe.by_name["unet_sampling"] == 3 * 3 * 2
    for f in range(3):
        alone, _ = m.edit_frames(frames[f:f + 1], "a cat", "a dog")
        assert np.abs(alone[0].astype(int) - video[f].astype(int)).max() <= 1, f  # batch-size float noise only


def test_pix2video_injection_feeds_first_and_previous_frame_keys_values_to_later_frames(frames):
    off, _ = _p2v(injection=False, latent_update=False).edit_frames(frames, "a cat", "a dog")
    m = _p2v(injection=True, latent_update=False)
    m.trace = []
    on, _ = m.edit_frames(frames, "a cat", "a dog")
    assert np.array_equal(on[0], off[0])  # the anchor frame is edited as a plain image
    assert not np.array_equal(on[1:], off[1:])
    layers = {r["layer"] for r in m.trace}
    assert layers and all(n.startswith("up_blocks") and n.endswith("attn1.processor") for n in layers)
    first, prev, checked = {}, {}, 0
    for r in m.trace:  # in call order: frames 0, 1, 2 at step 0, then at step 1, ...
        if r["frame"] == 0:
            assert r["mode"] == "record" and r["kv_input"] is r["query_input"]
            first[r["layer"]] = r["query_input"]
        else:
            assert r["mode"] == "inject"
            n = first[r["layer"]].shape[1]
            assert torch.equal(r["kv_input"][:, :n], first[r["layer"]])  # frame 0's tokens at this step and layer
            assert torch.equal(r["kv_input"][:, n:], prev[r["layer"]])  # the previous frame's
            checked += 1
        prev[r["layer"]] = r["query_input"]
    assert checked == 3 * 2 * len(layers)  # steps x later frames x injected layers


def test_pix2video_latent_update_changes_later_frames_only(frames):
    base, _ = _p2v(injection=False, latent_update=False).edit_frames(frames, "a cat", "a dog")
    upd, _ = _p2v(injection=False, latent_update=True).edit_frames(frames, "a cat", "a dog")
    assert np.array_equal(base[0], upd[0]) and not np.array_equal(base[1:], upd[1:])


# ------------------------------------------------------------------------------------------- runner
def _cfg(tmp_path, method, *overrides):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("config", overrides=[
            f"paths.output={tmp_path}", f"paths.cache={tmp_path}/cache", "model=tiny", "model.num_frames=4",
            "dataset.loader.num_samples=2", "logger=none", f"method={method}", "method.num_inference_steps=3",
            *(["method.num_inversion_steps=3"] if method == "rave" else []), *overrides])


@pytest.mark.parametrize("method", ["pix2video", "rave"])
def test_method_runs_end_to_end_through_the_runner_deterministically_and_is_scored(tmp_path, method):
    a = Runner(_cfg(tmp_path / "a", method, "metrics=paper_tiny", "dataset.limit=1")).run()["results"]
    b = Runner(_cfg(tmp_path / "b", method, "metrics=none", "dataset.limit=1")).run()["results"]
    assert (a["status"] == "ok").all(), a[["status", "error"]]
    sid = a["sample_id"].iloc[0]
    fa = read_video(tmp_path / "a" / "samples" / sid / "edited")[0]
    fb = read_video(tmp_path / "b" / "samples" / sid / "edited")[0]
    assert fa.shape == (4, 64, 112, 3) and np.array_equal(fa, fb)  # one frame per source frame, sample size
    rec = json.loads((tmp_path / "a" / "samples" / sid / "record.json").read_text())
    assert rec["nfe"] > 0 and rec["seconds"] > 0 and rec["peak_mem_mb"] > 0
    assert rec["info"]["prompts"]["source_how"] == "dataset" and rec["info"]["frames_edited"] == 4
    summary = pd.read_csv(tmp_path / "a" / "summary.csv")
    for col in ("clip_tgt", "tifa", "clip_src", "flow", "ssim", "clip_tc"):
        assert summary[col].notna().all(), col


def test_prompt_overrides_win_and_a_sample_without_prompts_or_instruction_fails_alone(tmp_path):
    overrides = tmp_path / "prompts.csv"
    cfg = _cfg(tmp_path, "rave", "metrics=none", f"dataset.prompts={overrides}", "method.num_inversion_steps=2",
               "method.num_inference_steps=2")
    from hydra.utils import instantiate

    ids = instantiate(cfg.dataset.loader).sample_ids()
    overrides.write_text(f"id,source_prompt,target_prompt\n{ids[1]},,a watercolor painting\n")
    runner = Runner(cfg)
    load = runner.dataset.load

    def blank(sid):
        s = load(sid)
        if sid == ids[0]:
            s.instruction, s.source_prompt, s.target_prompt = "", None, None
        return s

    runner.dataset.load = blank
    df = runner.run()["results"].set_index("sample_id")
    assert df.loc[ids[0], "status"] == "failed" and "field 'instruction'" in df.loc[ids[0], "error"]
    assert df.loc[ids[1], "status"] == "ok"
    rec = json.loads((tmp_path / "samples" / ids[1] / "record.json").read_text())
    p = rec["info"]["prompts"]
    assert p["target_prompt"] == "a watercolor painting" and p["target_how"] == "override:prompts.csv"
    assert p["source_how"] == "dataset"


def test_missing_real_weights_fail_at_start_up_naming_the_key(tmp_path):
    from videoshop.models import MissingWeightsError

    with pytest.raises(MissingWeightsError, match=r"^method\.base\.path=.*model_index.json"):
        Runner(_cfg(tmp_path, "pix2video", "method.weights=pretrained", f"method.base.path={tmp_path}"))
    with pytest.raises(MissingWeightsError, match=r"^method\.base: stable-diffusion-v1-5/stable-diffusion-v1-5 is not cached"):
        Runner(_cfg(tmp_path, "rave", "method.weights=pretrained"))
