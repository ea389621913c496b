"""FateZero and Spacetime on their tiny stand-ins: the attention fusion rule, reconstruction, the space-time feature
loss and its optimisation, the unguided path against diffusers' TextToVideoSDPipeline, and the paper presets."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir

from videoshop_bench.baselines.text.fatezero import FateZero, changed_words, token_alignment, word_token_positions
from videoshop_bench.baselines.text.fatezero_attention import FateZeroController, blend_mask
from videoshop_bench.baselines.text.spacetime import Spacetime, feature_loss

ROOT = Path(__file__).resolve().parents[1]
CONF = str(ROOT / "conf")
SRC, TGT = "a black swan in a river", "a white swan in a river"


def video(frames=3, size=64, seed=0):
    return (np.random.default_rng(seed).random((frames, size, size, 3)) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def fatezero():
    return FateZero(weights="tiny", height=64, width=64, num_inference_steps=2, store_dtype="float32", debug=True)


@pytest.fixture(scope="module")
def spacetime():
    return Spacetime(weights="tiny", height=32, width=64, num_inference_steps=3, inversion_steps=3,
                     optimization_steps=2, restart_sampling=False)


# ------------------------------------------------------------------------------------------------ FateZero
def test_blend_words_and_token_alignment_come_from_the_prompts(fatezero):
    assert changed_words(SRC, TGT) == (["black"], ["white"])
    tok = fatezero.tokenizer
    pos = word_token_positions(tok, SRC, ["black"])
    ids = tok(SRC).input_ids
    assert tok.decode(ids[pos[0]:pos[-1] + 1]).strip() == "black"
    mapper, aligned = token_alignment(tok, SRC, TGT)
    tgt_pos = word_token_positions(tok, TGT, ["white"])
    assert aligned[tgt_pos].sum() < len(tgt_pos)  # the new word is not (fully) aligned ...
    river = word_token_positions(tok, TGT, ["river"])
    assert aligned[river].all() and (mapper[river] == torch.tensor(word_token_positions(tok, SRC, ["river"]))).all()


def test_blend_mask_is_one_where_the_blend_word_attends():
    maps = torch.full((2, 2, 16, 5), 0.01)  # (frames, heads, 4x4 tokens, 5 text tokens)
    maps[:, :, 0, 2] = 1.0  # token 2 (the blend word) attends to the top-left corner only
    weights = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0])
    m = blend_mask([maps], weights, latent_hw=(8, 8), out_hw=(4, 4), threshold=0.3).reshape(2, 4, 4)
    assert m[:, :2, :2].eq(1).all() and m[:, 2:, :].eq(0).all() and m[:, :, 2:].eq(0).all()  # 3x3 max-pool


def test_fused_self_attention_is_the_inversion_map_where_the_mask_is_0_and_the_edit_map_where_it_is_1(fatezero, monkeypatch):
    def half_mask(self, inv_step, n_tokens, device):  # a fixed 0/1 pattern in place of the cross-attention mask
        return (torch.arange(n_tokens, device=device) % 2).float().expand(self.num_frames, n_tokens)

    monkeypatch.setattr(FateZeroController, "mask", half_mask)
    fatezero.edit_clip(video(), SRC, TGT, torch.Generator().manual_seed(0))
    ctrl = fatezero.last_controller
    fu = ctrl.records["fusion"]
    m = fu["mask"][:, None, :, None].bool().expand_as(fu["fused"])
    assert (~m).any() and m.any()
    assert torch.equal(fu["fused"][~m], fu["inversion"][~m]) and torch.equal(fu["fused"][m], fu["edit"][m])
    # the stored inversion map (recomputed from the stored Q/K) is the map the inversion pass used at that timestep
    inv = ctrl.records["inversion"][(ctrl.num_steps - 1 - fu["step"], fu["name"])]
    torch.testing.assert_close(fu["inversion"], inv, atol=1e-6, rtol=0)
    assert not torch.allclose(fu["edit"], fu["inversion"])  # the edit's own map differs: the fusion did something


def test_sparse_causal_attention_takes_keys_from_the_middle_frame_in_wide_blocks(fatezero):
    from videoshop_bench.baselines.text.fatezero_attention import fatezero_processors

    procs = fatezero_processors(fatezero.unet, fatezero.last_controller or FateZeroController(3, (8, 8), 16), 32)
    sparse = {n for n, p in procs.items() if p.sparse_causal}
    assert sparse and all(n.endswith("attn1.processor") for n in sparse)
    assert not any(n.startswith(("down_blocks.0", "up_blocks.3")) for n in sparse)  # the 16-channel level: per frame
    assert any(n.startswith("mid_block") for n in sparse)


def test_same_prompt_with_fusion_reconstructs_the_inverted_latents():
    """Target = source, fusion on (every step), guidance 1: the edit returns to the inversion's input. Stated
    tolerance: relative latent error < 0.25 on the tiny UNet with its output layer scaled by 0.05 (a random UNet's
    noise estimate is not smooth in x, so plain DDIM inversion itself drifts; this keeps the drift small)."""
    m = FateZero(weights="tiny", height=64, width=64, num_inference_steps=4, guidance_scale=1.0,
                 self_replace_steps=1.0, cross_replace_steps=1.0, debug=True)
    with torch.no_grad():
        m.unet.conv_out.weight.mul_(0.05)
        m.unet.conv_out.bias.mul_(0.05)
    m.edit_clip(video(frames=2), SRC, SRC, torch.Generator().manual_seed(0))
    z0, out, x_T = m.last_latents["z0"], m.last_latents["edited"], m.last_latents["x_T"]
    err = float((out - z0).norm() / z0.norm())
    assert err < 0.25, err
    assert float((x_T - z0).norm() / z0.norm()) > 4 * err  # the inversion went somewhere and came back


# ------------------------------------------------------------------------------------------------ Spacetime
def test_feature_loss_is_zero_for_equal_features_and_its_gradient_step_lowers_it(spacetime):
    g = torch.Generator().manual_seed(0)
    cond = spacetime.prompt_embeddings(SRC, TGT)[0]
    x_ref = torch.randn(1, 4, 4, 4, 8, generator=g)
    hooks = spacetime.features()
    try:
        ref = hooks.run(spacetime.unet, x_ref, 801, cond)
        same = hooks.run(spacetime.unet, x_ref.clone(), 801, cond)
    finally:
        hooks.remove()
    assert set(ref) == {"up1.resnets1.conv", "up1.temp_convs1", "up1.upsampler0"}
    assert float(spacetime.total_feature_loss(same, ref)) < 1e-6
    a = torch.randn(4, 8, 3, 3, generator=g)
    assert float(feature_loss(a, a)) == pytest.approx(0.0, abs=1e-6)
    x = torch.randn(1, 4, 4, 4, 8, generator=g)
    _, passes, losses = spacetime.guidance_step(x, 0, 801, x_ref, cond, cond, n_guided=1)
    assert passes == 3 and len(losses) == 2 and losses[0] > 0.01 and losses[1] < losses[0], losses


def test_zero_optimisation_steps_is_plain_text_to_video_sampling(spacetime):
    """With optimization_steps=0 (and no restarts), sampling from the initial latent is diffusers'
    TextToVideoSDPipeline with the same DDIM schedule, CFG and prompts."""
    from diffusers import DDIMScheduler, TextToVideoSDPipeline

    from videoshop_bench.baselines.text.t2v_models import ZEROSCOPE_SCHEDULER

    spacetime.opts["optimization_steps"] = 0
    try:
        cond_src, cond_tgt, uncond = spacetime.prompt_embeddings(SRC, TGT)
        x0 = torch.randn(1, 4, 3, 4, 8, generator=torch.Generator().manual_seed(1))
        ours, nfe = spacetime.sample(x0.clone(), {}, cond_src, cond_tgt, uncond, torch.Generator().manual_seed(2))
    finally:
        spacetime.opts["optimization_steps"] = 2
    assert nfe == dict(guidance=0, sampling=3, restart=0)
    pipe = TextToVideoSDPipeline(vae=spacetime.vae, text_encoder=spacetime.text_encoder, tokenizer=spacetime.tokenizer,
                                 unet=spacetime.unet, scheduler=DDIMScheduler.from_config(ZEROSCOPE_SCHEDULER))
    pipe.set_progress_bar_config(disable=True)
    pre = spacetime.opts["prompt_prefix"]
    ref = pipe(prompt=pre + TGT, negative_prompt=spacetime.opts["negative_prompt"], latents=x0.clone(),
               num_inference_steps=3, guidance_scale=spacetime.opts["guidance_scale"], num_frames=3, height=32,
               width=64, output_type="latent").frames
    torch.testing.assert_close(ours, ref.float(), atol=1e-4, rtol=1e-4)


def test_spacetime_edit_returns_one_frame_per_source_frame_and_counts_every_pass(spacetime):
    spacetime.opts["restart_sampling"] = True
    try:
        from videoshop_bench.datasets.schema import Sample

        v = video(frames=3, size=48)
        r = spacetime.edit(Sample("s", v, v[0], source_prompt=SRC, target_prompt=TGT), torch.Generator().manual_seed(0))
    finally:
        spacetime.opts["restart_sampling"] = False
    assert r.frames.shape == (3, 32, 64, 3) and r.finite
    # 3 inversion + 3 sampling + 2 restarts + guided steps (the first 3 - int(0.6 * 3) = 2) x (1 reference + 2 passes)
    assert r.info["nfe_breakdown"] == dict(inversion=3, sampling=3, restart=2, guidance=6) and r.nfe == 14


# ------------------------------------------------------------------------------------------------ presets
PAPER_PRESETS = {"paper_table2": 7, "paper_table3": 6}


@pytest.mark.parametrize("preset", sorted(PAPER_PRESETS))
def test_paper_presets_compose_every_row_on_tiny_stand_ins_in_smoke_mode(tmp_path, preset):
    import yaml

    from videoshop_bench.experiments.methods import METHOD_SETS, uses_video_model

    swept = yaml.safe_load((Path(CONF) / "experiment" / f"{preset}.yaml").read_text())["hydra"]["sweeper"]["params"]["method"]
    assert swept == f"${{method_set:{preset}}}"  # the preset sweeps the set declared once (experiments/methods.py)
    methods = list(METHOD_SETS.get(preset).methods)
    assert len(methods) == PAPER_PRESETS[preset]
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        for method in methods:
            assert (Path(CONF) / "method" / f"{method}.yaml").is_file(), f"no conf/method/{method}.yaml"
            cfg = compose("config", overrides=[f"paths.output={tmp_path}", f"experiment={preset}", "smoke=on",
                                               f"method={method}"])
            assert (cfg.model.name, cfg.dataset.name, cfg.paper_table) == ("tiny", "synthetic", preset.replace("paper_", ""))
            if not uses_video_model(cfg.method._target_):  # the class says so (videoshop_bench.experiments.methods)
                assert cfg.method.weights == "tiny"


@pytest.mark.parametrize("preset", sorted(PAPER_PRESETS))
def test_paper_preset_runs_in_smoke_mode_and_ends_in_the_table_beside_the_paper(tmp_path, preset):
    """`python run.py experiment=<preset> smoke=true`: every row of the paper's table, ours / paper / difference."""
    cmd = [sys.executable, "run.py", f"experiment={preset}", "smoke=true", f"hydra.sweep.dir={tmp_path}",
           f"paths.cache={tmp_path}/cache"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    vs = pd.read_csv(tmp_path / "combined_vs_paper.csv")
    assert len(vs) == PAPER_PRESETS[preset] and vs["ours_label"].notna().all()
    assert not vs["clip_tgt"].str.startswith("- /").any() and vs["x_videoshop"].notna().all()


def test_official_clip_length_edits_consecutive_clips_covering_every_frame(fatezero):
    assert fatezero.clips(14) == [(0, 14)]  # clip_length null: one clip (the tables)
    fatezero.opts["clip_length"] = 8  # the official configs' n_sample_frame
    try:
        assert fatezero.clips(14) == [(0, 8), (6, 14)] and fatezero.clips(16) == [(0, 8), (8, 16)]
    finally:
        fatezero.opts["clip_length"] = None


def test_paper_comparison_table_puts_ours_beside_the_paper_with_runtime_multiples():
    from videoshop_bench.experiments.paper import paper_comparison_table

    summary = pd.DataFrame({"label": ["videoshop", "fatezero", "spacetime[num_inference_steps=3]"],
                            "method": ["videoshop", "fatezero", "spacetime"], "n": [2, 2, 2],
                            "clip_tgt": [90.0, 80.0, 60.0], "seconds": [10.0, 5.0, 40.0], "nfe": [26, 150, 1318]})
    t = paper_comparison_table(summary, "table2").set_index("method")
    assert list(t.index) == ["BDIA", "Pix2Video", "Fate/Zero", "Spacetime", "RAVE", "SVD (no src. vid.)", "Videoshop"]
    assert t.loc["Videoshop", "clip_tgt"] == "90.00 / 88.80 / +1.20"
    assert t.loc["Fate/Zero", "clip_tgt"] == "80.00 / 84.87 / -4.87"
    assert t.loc["BDIA", "clip_tgt"] == "- / 82.12 / -" and t.loc["Fate/Zero", "ssim"].startswith("- / 48.59")
    assert t.loc["Spacetime", "x_videoshop"] == 4.0 and t.loc["Spacetime", "x_videoshop_paper"] == 3.41
    assert t.loc["Fate/Zero", "x_videoshop"] == 0.5 and t.loc["Fate/Zero", "x_videoshop_paper"] == 0.71
