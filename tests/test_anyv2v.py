"""AnyV2V on its tiny I2VGen-XL stand-in: the sampler against diffusers' I2VGenXLPipeline, DDIM inversion then
sampling, where and when the plug-and-play injection replaces features, the full-size architecture's size, and a
run through run.py."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from videoshop_bench.baselines.anyv2v import DECODER_BLOCKS_4_TO_11, AnyV2V, invert_latents
from videoshop_bench.baselines.text.ddim import ddim_sample, ddim_schedule
from videoshop_bench.baselines.text.i2vgen import I2VGEN_SCHEDULER, build_random_i2vgen, v_to_eps
from videoshop_bench.baselines.text.pnp import InjectionState, attention_layer_names, injection_steps, pnp_installed
from videoshop_bench.baselines.text.sd import NFECounter
from videoshop.video_io import read_video

ROOT = Path(__file__).resolve().parents[1]
FRAMES, SIDE = 4, 64


def video(frames=FRAMES, size=SIDE, seed=0):
    return (np.random.default_rng(seed).random((frames, size, size, 3)) * 255).astype(np.uint8)


def tiny(**kw):
    opts = dict(weights="tiny", height=SIDE, width=SIDE, num_inference_steps=4, num_inversion_steps=None)
    return AnyV2V(**{**opts, **kw})


def test_sampler_without_injection_equals_diffusers_i2vgenxl_pipeline(one_thread):
    """Injection off, same initial latents and seed: our DDIM loop (v -> eps, CFG with zero image embedding,
    frame-position latents) gives diffusers' I2VGenXLPipeline latents (tolerance 1e-4 relative)."""
    from diffusers import DDIMScheduler, I2VGenXLPipeline
    from PIL import Image

    m = tiny(conv_injection=0, spatial_attn_injection=0, temporal_attn_injection=0)
    c = m.models
    pipe = I2VGenXLPipeline(vae=c.vae, text_encoder=c.text_encoder, tokenizer=c.tokenizer, image_encoder=c.image_encoder,
                            feature_extractor=c.feature_extractor, unet=c.unet,
                            scheduler=DDIMScheduler(**c.scheduler_config))
    pipe.set_progress_bar_config(disable=True)
    image, prompt = video(1, seed=3)[0], "a red car"
    x_T = torch.randn((1, 4, FRAMES, SIDE // 8, SIDE // 8), generator=torch.Generator().manual_seed(1))
    neg, pos = m.text([m.negative_prompt, prompt])  # clip_skip 1 (the pipeline's own encode_prompt needs
    # transformers 4's CLIPTextModel.text_model for it)
    torch.manual_seed(7)  # the pipeline's only draw: the VAE posterior sample of the image (global RNG)
    ref = pipe(prompt_embeds=pos, negative_prompt_embeds=neg, image=Image.fromarray(image), height=SIDE, width=SIDE,
               num_frames=FRAMES, num_inference_steps=4, guidance_scale=m.guidance_scale, target_fps=m.target_fps,
               latents=x_T.clone(), output_type="latent").frames
    cond = m.conditions(None, image, prompt, FRAMES, torch.Generator().manual_seed(7))
    ours = m.sample(x_T.clone(), cond, None, NFECounter(), start_step=0)
    assert torch.allclose(ours, ref.float(), rtol=1e-4, atol=1e-4 * ref.abs().max().item()), (ours - ref).abs().max()


def gaussian_v(mu: torch.Tensor, s: float, alphas_cumprod: torch.Tensor):
    """Exact v-prediction for data x0 ~ N(mu, s^2 I): v = sqrt(a) E[eps|x_t] - sqrt(1-a) E[x0|x_t], finite at the
    zero-SNR end (a = 0: v = -mu)."""
    ac = alphas_cumprod.double()

    def v(x, t):
        a = ac[t]
        x0 = mu + a.sqrt() * s ** 2 * (x - a.sqrt() * mu) / (a * s ** 2 + 1 - a)
        eps = (1 - a).sqrt() * (x - a.sqrt() * mu) / (a * s ** 2 + 1 - a)
        return a.sqrt() * eps - (1 - a).sqrt() * x0
    return v


def _round_trip(inversion_steps: int, steps: int) -> float:
    """Invert with ``inversion_steps`` (AnyV2V's dict of latents per timestep), sample ``steps`` DDIM steps from the
    inverted latent at the first sampling timestep (init_step 0); RMSE against the data (std 0.5)."""
    from diffusers import DDIMScheduler

    g = torch.Generator().manual_seed(0)
    mu = torch.randn(1, 4, 3, 4, 4, generator=g, dtype=torch.float64)
    x0 = mu + 0.5 * torch.randn(mu.shape, generator=g, dtype=torch.float64)
    v = gaussian_v(mu, 0.5, DDIMScheduler(**I2VGEN_SCHEDULER).alphas_cumprod)
    inv, sched = ddim_schedule(I2VGEN_SCHEDULER, inversion_steps), ddim_schedule(I2VGEN_SCHEDULER, steps)
    inverted = invert_latents(v, x0, inv)
    rec = ddim_sample(lambda x, t, i: v_to_eps(v(x, t), x, sched.alpha[i]), inverted[int(sched.timesteps[0])], sched)
    return float((rec - x0).pow(2).mean().sqrt())


def test_inversion_equals_diffusers_ddim_inverse_scheduler_for_v_prediction():
    """``invert_latents`` = AnyV2V's loop (DDIMInverseScheduler on I2VGen-XL's config, the model called with the
    target timestep) for the same model outputs (float64 state, tolerance 1e-6)."""
    from diffusers import DDIMInverseScheduler

    g = torch.Generator().manual_seed(0)
    outputs = [torch.randn(1, 4, 2, 3, 3, generator=g, dtype=torch.float64) for _ in range(10)]
    x0 = torch.randn(1, 4, 2, 3, 3, generator=g, dtype=torch.float64)
    sched = DDIMInverseScheduler(**I2VGEN_SCHEDULER)
    sched.set_timesteps(10)
    x, ref = x0, {}
    for k, t in enumerate(sched.timesteps):
        x = sched.step(outputs[k], t, x).prev_sample
        ref[int(t)] = x
    calls = iter(outputs)
    ours = invert_latents(lambda x, t: next(calls), x0, ddim_schedule(I2VGEN_SCHEDULER, 10))
    assert sorted(ours) == sorted(ref) == [1 + 100 * k for k in range(10)]
    for t in ref:
        assert torch.allclose(ours[t], ref[t].double(), atol=1e-6), t


def test_ddim_inversion_then_sampling_reconstructs_on_the_analytic_v_model():
    """AnyV2V's arrangement on I2VGen-XL's zero-SNR v-prediction schedule: invert with 500 steps, keep every
    timestep's latent, sample 50 steps from the one at t = 981. With the exact v of Gaussian data the only error is
    DDIM inversion's first-order approximation: small, and smaller with finer steps."""
    coarse, official = _round_trip(10, 10), _round_trip(500, 50)
    print("analytic round-trip RMSE (data std 0.5): 10/10 steps", coarse, "500/50 steps", official)
    assert official < 0.5 * coarse and official < 0.02


def test_injection_replaces_features_in_the_official_layers_and_step_ranges_only(one_thread):
    """Steps 0-1 of 10 inject conv + spatial Q/K, steps 0-4 temporal Q/K (fractions 0.2/0.2/0.5): there the edited
    chunks' queries/keys (conv outputs) are the source chunk's, computed from the inverted source latent with the
    source conditions; values stay their own; outside the ranges nothing is replaced; no other layer is touched."""
    m = tiny(num_inference_steps=10)
    frames, gen = video(), torch.Generator().manual_seed(0)
    z0 = torch.randn((1, 4, FRAMES, SIDE // 8, SIDE // 8), generator=torch.Generator().manual_seed(2))
    inverted = m.invert(z0, frames[0], gen, NFECounter())
    cond = m.conditions(frames[0], video(1, seed=5)[0], "a cat", FRAMES, gen)
    m.trace = []
    nfe = NFECounter()
    m.sample(inverted[int(m.schedule.timesteps[0])], cond, inverted, nfe, start_step=0)
    trace, m.trace = m.trace, None
    expected_layers = set(attention_layer_names("spatial", DECODER_BLOCKS_4_TO_11)) | \
        set(attention_layer_names("temporal", DECODER_BLOCKS_4_TO_11)) | {"up_blocks.1.resnets.1.conv2"}
    assert {r["layer"] for r in trace} == expected_layers
    ranges = {"conv": set(range(2)), "spatial": set(range(2)), "temporal": set(range(5))}
    assert {k: injection_steps(10, m.fractions[k]) for k in ranges} == ranges
    for r in trace:
        assert r["injected"] == (r["step"] in ranges[r["kind"]]), (r["layer"], r["step"])
        assert r["chunks"] == (3 if r["step"] < 5 else 1)  # the source branch runs only while some kind injects
        if r["chunks"] == 1:
            continue
        n = (r["out"] if r["kind"] == "conv" else r["q"]).shape[0] // 3
        for key in (("out",) if r["kind"] == "conv" else ("q", "k")):
            x = r[key]
            same = torch.equal(x[n:2 * n], x[:n]) and torch.equal(x[2 * n:], x[:n])
            assert same == r["injected"], (r["layer"], r["step"], key)
        if r["kind"] != "conv":
            assert not torch.equal(r["v"][n:2 * n], r["v"][:n])  # values are never injected
    assert nfe.by_name == {"unet_sampling": 20, "unet_source_branch": 5}  # CFG pairs on 10 steps, source on 5

    # the source chunk is the source pass: the inverted latent at t with the source prompt and first frame
    t, layer = int(m.schedule.timesteps[1]), attention_layer_names("spatial", [(3, 2)])[0]
    batched = next(r for r in trace if r["layer"] == layer and r["step"] == 1)
    alone = InjectionState(trace=[])
    s = cond["source"]
    with pnp_installed(m.models.unet, alone, [(1, 1)], [(3, 2)], []):
        m.unet_v(inverted[t], t, s["text"], s["image_emb"], s["image_lat"])
    q_alone = next(r["q"] for r in alone.trace if r["layer"] == layer)
    assert torch.allclose(batched["q"][:q_alone.shape[0]], q_alone, atol=1e-5)


def test_injection_changes_the_edit_and_the_edit_is_deterministic(one_thread):
    frames, edited = video(), video(1, seed=9)[0]
    on = tiny()
    a = on.edit_frames(frames, edited, "a cat", torch.Generator().manual_seed(0))
    b = on.edit_frames(frames, edited, "a cat", torch.Generator().manual_seed(0))
    off = tiny(conv_injection=0, spatial_attn_injection=0, temporal_attn_injection=0)
    c = off.edit_frames(frames, edited, "a cat", torch.Generator().manual_seed(0))
    assert np.array_equal(a[0], b[0]) and a[2] and a[0].shape == (FRAMES, SIDE, SIDE, 3)
    assert not np.array_equal(a[0], c[0])
    assert c[1].by_name == {"unet_inversion": 4, "unet_sampling": 8}  # no injection: no source branch


def test_bad_step_counts_fail_at_start_up_naming_the_key():
    with pytest.raises(ValueError, match="method.num_inversion_steps=7"):
        tiny(num_inference_steps=4, num_inversion_steps=7)
    with pytest.raises(ValueError, match="method.init_step=4"):
        tiny(num_inference_steps=4, init_step=4)


def test_full_size_stand_in_has_i2vgen_xl_size_on_the_meta_device():
    """The ``weights=random`` architecture, built on the meta device (no memory): I2VGen-XL's UNet (~1.4 B
    parameters, the real checkpoint's unet is 2.84 GB in fp16), SD's VAE (83.7 M), a ViT-H/14 image tower."""
    c = build_random_i2vgen("full", device="meta")
    count = {k: sum(p.numel() for p in getattr(c, k).parameters()) for k in ("unet", "vae", "image_encoder", "text_encoder")}
    print("full-size I2VGen-XL parameter counts:", count)
    assert 1.35e9 < count["unet"] < 1.5e9
    assert 83e6 < count["vae"] < 84e6
    assert 0.6e9 < count["image_encoder"] < 0.65e9
    assert c.unet.config.cross_attention_dim == c.image_encoder.config.projection_dim == c.text_encoder.config.hidden_size


def test_run_py_runs_anyv2v_end_to_end_like_the_runner(tmp_path, one_thread):
    """`python run.py method=anyv2v model=tiny ...` finishes, and its edited videos equal an in-process Runner's
    (determinism across processes, both on one thread: float reductions depend on the thread count)."""
    import os

    from hydra import compose, initialize_config_dir

    from videoshop_bench.experiments.runner import Runner

    shrink = ["model=tiny", "model.num_frames=6", "method.num_inference_steps=3", "dataset.loader.num_samples=1",
              "logger=none", "metrics=default"]
    cmd = [sys.executable, "run.py", "method=anyv2v", f"paths.output={tmp_path}/a", f"paths.cache={tmp_path}/cache",
           *shrink]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"paths.output={tmp_path}/b", f"paths.cache={tmp_path}/cache",
                                           "method=anyv2v", *shrink])
    df = Runner(cfg).run()["results"]
    assert (df["status"] == "ok").all(), df[["status", "error"]]
    for sid in df["sample_id"]:
        a = read_video(tmp_path / "a" / "samples" / sid / "edited")[0]
        b = read_video(tmp_path / "b" / "samples" / sid / "edited")[0]
        assert a.shape[0] == 6 and np.array_equal(a, b)
