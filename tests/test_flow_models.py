"""Videoshop on flow-matching image-to-video models (Wan 2.1 I2V, LTX-Video I2V) on their tiny stand-ins:
the network wrappers reproduce the official diffusers pipelines, each model config runs end to end through the runner
and run.py, deterministically, and the full-size architectures have the published sizes."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from diffusers import CogVideoXImageToVideoPipeline, LTXImageToVideoPipeline, WanImageToVideoPipeline
from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import retrieve_latents
from PIL import Image

from videoshop.flow import channels_first, edm_equivalent_sigma, frames_first, sample_flow_euler
from videoshop.families import model_preset
from videoshop.family_models import build_family_components, full_size_parameter_counts, pipeline_class
from videoshop.models import MissingWeightsError, build_pipeline
from videoshop.vp import vp_sigma

ROOT = Path(__file__).resolve().parents[1]
CONF = str(ROOT / "conf")
TINY = {"wan21_i2v": "wan21_i2v_tiny", "wan22_i2v": "wan22_i2v_tiny", "wan22_ti2v": "wan22_ti2v_tiny",
        "ltx_i2v": "ltx_i2v_tiny", "cogvideox_i2v": "cogvideox_i2v_tiny"}
OFFICIAL = {"wan21_i2v": WanImageToVideoPipeline, "wan22_i2v": WanImageToVideoPipeline,
            "wan22_ti2v": WanImageToVideoPipeline, "ltx_i2v": LTXImageToVideoPipeline,
            "cogvideox_i2v": CogVideoXImageToVideoPipeline}


@pytest.fixture(scope="module", params=sorted(TINY))
def tiny_flow_pipeline(request):
    pipe = pipeline_class(request.param)(**build_family_components(request.param, "tiny", seed=0))
    pipe.set_progress_bar_config(disable=True)
    pipe.model_options = {"max_sequence_length": 16}  # as the tiny mappings (videoshop/families.py)
    return request.param, pipe


def _frames(seed: int = 0, t: int = 9, h: int = 32, w: int = 64):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8), rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@torch.no_grad()
def test_generation_from_noise_equals_the_official_diffusers_pipeline(tiny_flow_pipeline, one_thread):
    """Zero inversion steps: our sampler (flow Euler; CogVideoX: DDIM) over the network wrapper, started from the
    same noise, reproduces the official pipeline's latents (Wan / LTX / CogVideoX ImageToVideoPipeline, CFG 2,
    4 steps) to 1e-4 (measured <= 1e-6)."""
    family, pipe = tiny_flow_pipeline
    _, image = _frames()
    px = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1
    n, g, prompt = 4, 2.0, "a red cat"
    official = dict(image=Image.fromarray(image), prompt=prompt, height=32, width=64, num_frames=9,
                    num_inference_steps=n, guidance_scale=g, output_type="latent", max_sequence_length=16)
    if family.startswith("wan"):  # 2.1: CLIP + channels; 2.2 A14B: two experts; 2.2 TI2V: frame 0 = condition
        f = pipe.vae_scale_factor_spatial
        noise = torch.randn(1, pipe.vae.config.z_dim, 3, 32 // f, 64 // f, generator=torch.Generator().manual_seed(5))
        ref = OFFICIAL[family].__call__(pipe, latents=noise, **official).frames
        first = pipe.encode_video(px) if pipe.config.expand_timesteps else None
        net = pipe.first_frame_network(px, first, 9, prompt, None, g)
        sigmas = pipe.schedule_levels(n, None).double()
        if pipe.config.boundary_ratio is not None:  # both experts take part
            assert sigmas[0] >= pipe.config.boundary_ratio > sigmas[n - 1]
        ours, nfe = sample_flow_euler(net.condition_state(frames_first(noise)), sigmas, net)
    elif family == "cogvideox_i2v":  # VP + DDIM from the zero-terminal-SNR level (ab = 0)
        noise = torch.randn(1, 3, 4, 4, 8, generator=torch.Generator().manual_seed(5))
        ref = OFFICIAL[family].__call__(pipe, latents=noise, generator=torch.Generator().manual_seed(0), **official).frames
        net = pipe.first_frame_network(px, None, 9, prompt, None, g)
        # the official pipeline samples the image latent from the VAE posterior (ours takes its mode): same draw here
        z = retrieve_latents(pipe.vae.encode(px[:, :, None]), torch.Generator().manual_seed(0))
        z = z.permute(0, 2, 1, 3, 4) * pipe.vae_scaling_factor_image
        net.image_latents = torch.cat([torch.cat([z, z.new_zeros(1, 2, *z.shape[2:])], dim=1)] * 2)
        ours, nfe = pipe.sample_latents(noise, pipe.schedule_levels(n, None), net)
        ref = channels_first(ref)  # (B, F, C, h, w) like ours; the comparison below takes channels_first(ours)
    else:
        first = pipe.encode_video(px)
        x = torch.cat([first, torch.randn(1, 2, 8, 8, 16, generator=torch.Generator().manual_seed(5))], dim=1)
        packed = pipe._pack_latents(channels_first(x), 1, 1)
        ref = pipe._unpack_latents(OFFICIAL[family].__call__(pipe, latents=packed, **official).frames,
                                   3, 8, 16, 1, 1)
        net = pipe.first_frame_network(px, first, 9, prompt, None, g)
        ours, nfe = sample_flow_euler(x, pipe.schedule_levels(n, x.shape).double(), net)
    assert nfe == n and ref.abs().max() > 1.0
    assert (channels_first(ours) - ref).abs().max() <= 1e-4


def test_videoshop_edit_is_deterministic_and_conditions_on_the_edited_frame(tiny_flow_pipeline, one_thread):
    """12 steps x strength 0.55 = 6 inversion steps; Eq. 6's branch follows the threshold in EDM units
    (extrapolate where sigma_t / (1 - sigma_t) > 1)."""
    family, pipe = tiny_flow_pipeline
    video, image = _frames()
    runs = [pipe(video=video, edited_image=image, prompt="a cat", generator=torch.Generator().manual_seed(1),
                 num_inference_steps=12) for _ in range(2)]
    assert runs[0].frames.shape == (9, 32, 64, 3) and runs[0].finite
    assert np.array_equal(runs[0].frames, runs[1].frames)
    up = pipe.noise_levels(12, 0.55, runs[0].latents.shape).flip(0).tolist()
    level = vp_sigma if family == "cogvideox_i2v" else edm_equivalent_sigma  # Sigma in EDM units
    expected = ["extrapolate" if level(s) > 1.0 else "noise" for s in up[:-1]]
    assert runs[0].nfe == 2 * 6 and runs[0].inversion_branches == expected and "extrapolate" in expected
    other = pipe(video=video, edited_image=255 - image, prompt="a cat", generator=torch.Generator().manual_seed(1),
                 num_inference_steps=12)
    assert not np.array_equal(other.frames, runs[0].frames)
    if family in ("ltx_i2v", "wan22_ti2v"):  # latent frame 0 is the edited image's latent (rescaled back exactly)
        target = pipe.encode_video(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1)
        assert torch.allclose(runs[0].latents[:, :1], target, atol=1e-4)


def test_edicts_and_wrong_frame_counts_are_refused_in_one_line(tiny_flow_pipeline):
    _, pipe = tiny_flow_pipeline
    video, image = _frames()
    with pytest.raises(ValueError, match="not available for"):
        pipe(video=video, edited_image=image, prompt="x", num_inference_steps=4, inversion="edict")
    with pytest.raises(ValueError, match="frames"):
        pipe(video=video[:8], edited_image=image, prompt="x", num_inference_steps=4)


def _cfg(tmp_path, *overrides):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("config", overrides=[f"paths.output={tmp_path}", f"paths.cache={tmp_path}/cache", "logger=none",
                                             "metrics=default", "dataset.loader.num_samples=1",
                                             "method.num_inference_steps=4", *overrides])


@pytest.mark.parametrize("model", sorted(TINY.values()))
def test_every_tiny_flow_model_runs_videoshop_through_the_runner_deterministically(tmp_path, model, one_thread):
    from videoshop.video_io import read_video
    from videoshop_bench.experiments.runner import Runner

    frames = []
    for run in ("a", "b"):
        df = Runner(_cfg(tmp_path / run, f"model={model}")).run()["results"]
        assert len(df) == 1 and (df["status"] == "ok").all() and (df["finite"] == True).all(), df  # noqa: E712
        frames.append(read_video(tmp_path / run / "samples" / df["sample_id"][0] / "edited")[0])
    assert np.array_equal(frames[0], frames[1])
    src = Runner(_cfg(tmp_path / "src", f"model={model}")).dataset.load(df["sample_id"][0]).source_video
    assert frames[0].shape == src.shape  # back at the sample's frame count and size for the metrics


def test_reconstruction_table_runs_through_run_py_across_the_tiny_flow_models(tmp_path):
    """`python run.py experiment=reconstruction model=wan21_i2v_tiny,wan22_i2v_tiny,...`: every row of the inversion
    ablation table for each model family (the '- Threshold' rows are non-finite, as on SVD)."""
    cmd = [sys.executable, "run.py", "experiment=reconstruction", "model=" + ",".join(sorted(TINY.values())),
           f"hydra.sweep.dir={tmp_path}", "logger=none", "metrics=default", "dataset.limit=1",
           "dataset.loader.num_samples=1", "method.num_inference_steps=4", f"paths.cache={tmp_path}/cache"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [pd.read_csv(p).assign(model=p.parts[-4]) for p in sorted(tmp_path.glob("*/*/*/*/summary.csv"))]
    table = pd.concat(runs)
    assert sorted(set(table["model"])) == sorted(TINY.values()) and len(table) == 5 * len(TINY)
    finite = table[~table["label"].str.startswith("videoshop_no_threshold")]
    assert finite["psnr_gt"].notna().all() and (finite["n_nonfinite"] == 0).all()
    assert (table[table["label"].str.startswith("videoshop_no_threshold")]["n_nonfinite"] == 1).all()


def test_full_size_architectures_have_the_published_sizes():
    """Counted on the meta device: Wan 2.1 I2V 14B (transformer ~16.4B with its image cross-attention), UMT5-XXL
    encoder ~5.7B; Wan 2.2 I2V-A14B two ~14B experts; Wan 2.2 TI2V-5B ~5B; LTX-Video 0.9 transformer ~1.9B, T5-XXL
    encoder ~4.8B; CogVideoX-5b-I2V transformer ~5.6B."""
    wan, ltx = full_size_parameter_counts("wan21_i2v"), full_size_parameter_counts("ltx_i2v")
    cog = full_size_parameter_counts("cogvideox_i2v")
    wan22, ti2v = full_size_parameter_counts("wan22_i2v"), full_size_parameter_counts("wan22_ti2v")
    assert 13.5e9 < wan22["transformer"] == wan22["transformer_2"] < 15e9 and "image_encoder" not in wan22
    assert 4.5e9 < ti2v["transformer"] < 5.5e9
    assert 5.4e9 < cog["transformer"] < 5.8e9 and 4.5e9 < cog["text_encoder"] < 5.0e9
    assert 13e9 < wan["transformer"] < 17.5e9 and 5.0e9 < wan["text_encoder"] < 6.0e9
    assert 0.6e9 < wan["image_encoder"] < 0.7e9 and 0.1e9 < wan["vae"] < 0.2e9
    assert 1.8e9 < ltx["transformer"] < 2.1e9 and 4.5e9 < ltx["text_encoder"] < 5.0e9


@pytest.mark.parametrize("name", sorted(TINY))
def test_missing_real_weights_fail_in_one_line(name, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = model_preset(name)
    with pytest.raises(MissingWeightsError) as e:
        build_pipeline(cfg, device="cpu")
    assert cfg["hub_id"] in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ValueError, match="runtime.compile"):
        build_pipeline(dict(cfg, kind="tiny", dtype="float32"), device="cpu", runtime={"compile": True})


def test_text_prompts_come_from_the_sample_target_then_instruction_and_reconstruction_uses_the_source():
    from videoshop_bench.datasets.schema import Sample
    from videoshop.method import edit_prompts

    video, image = _frames()
    s = Sample("s1", video, image, instruction="make it red", source_prompt="a cat", target_prompt="a red cat")
    assert edit_prompts(s) == {"prompt": "a red cat", "source_prompt": "a cat"}
    assert edit_prompts(Sample("s2", video, image, instruction="make it red")) == \
        {"prompt": "make it red", "source_prompt": "make it red"}
    assert edit_prompts(s.as_reconstruction()) == {"prompt": "a cat", "source_prompt": "a cat"}
    with pytest.raises(ValueError, match="s3: no target_prompt and no instruction"):
        edit_prompts(Sample("s3", video, image))


@pytest.mark.parametrize("method", ["fixed_point", "videoshop_no_rescale", "svd_no_source", "videoshop_long"])
def test_other_videoshop_family_methods_run_on_a_flow_model(tmp_path, method, one_thread):
    """The other SVD-pipeline methods on Wan 2.1's stand-in: fixed-point inversion, no rescaling, generation from
    the edited frame alone (the pipeline's ``generate``), block-recurrent long-video editing (prompts passed on)."""
    from videoshop_bench.experiments.runner import Runner

    df = Runner(_cfg(tmp_path, "model=wan21_i2v_tiny", f"method={method}")).run()["results"]
    assert (df["status"] == "ok").all() and (df["finite"] == True).all(), df  # noqa: E712
