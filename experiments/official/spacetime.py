"""Spacetime against diffusion-motion-transfer/diffusion-motion-transfer (@da9d4c3): the project side and the stages.

Weights: the project's tiny Zeroscope stand-in (``load_t2v_components('tiny', seed=0)``: ``UNet3DConditionModel`` with
Zeroscope's block layout at toy width, tiny SD VAE and CLIP text encoder) written in the layout diffusers 0.20 /
transformers 4.32 load (``write_sd_layout``); both sides read these files. The official side runs the README's two
scripts as they are: ``preprocess_video_ddim.run`` (DDIM inversion, every timestep's latent saved) then
``run.Guidance(config).run()``, with their config files and the tiny sizes.
Random draws: the official scripts never seed torch's global RNG (the inversion's VAE posterior sample, the second
posterior sample of the initial latent and the restart noise are unseeded); only the high-frequency noise of the
initial latent has a seed (``config.seed``, its own generator). The side seeds the global RNG with the same seed at the
start of each script (a listed patch; the official loading draws nothing before, as the side checks); the project
draws from its generator seeded with that seed (``seeding: official``): the posterior samples and the initial latent
agree with no replay. The restart noise is replayed: the official ``randn_like`` fills a non-contiguous latent, whose
numbers differ from a contiguous draw from the same generator state (docs/baselines.md).
Tiny scale: resolution 112x64 stands for 576x320, 4 frames for 24, 10 inversion steps for 999, 5 sampling steps for
50 (guidance on the first 2, restarts after the first 4), 2 Adam steps for 10, CFG 10.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from .compare import Stage, padded_rows, patched, record_calls, record_decodes

OFFICIAL_COMMIT = "da9d4c3"
SIDE_ARGS = ["--compat", "{root}/videoshop/_compat.py"]
PROJECT_PATCHES = [
    "Spacetime.unet/vae/text_encoder/tokenizer -> the components loaded from the written weights (the same files)",
    "videoshop_bench.baselines.text.spacetime.resize_frames, Spacetime.source_latents/prompt_embeddings/invert/initial_noisy_latent/"
    "guidance_step/denoise_step, SpaceTimeFeatures.run (reference features), vae.decode: recording wrappers "
    "(return values unchanged)",
    "Spacetime.restart_noise -> the official restart noises in draw order (replay: the official code draws them "
    "unseeded, randn_like of the latent, whose element order follows the latent's memory layout)",
]
CONFIGS = {
    "native": dict(height=64, width=112),  # at the (tiny) model size: no resize
    "16:9": dict(height=72, width=128),    # the paper's 16:9 frames, resized to 112x64
}
SETTINGS = dict(height=64, width=112, num_frames=4, steps=5, inversion_steps=10, optimization_steps=2,
                guidance_scale=10.0, seed=1234, prefix="Amazing quality, masterpiece, ",
                source_prompt="a red car drives on a road", target_prompt="a blue truck drives on a road")
SITES = {"up1.resnets1.conv": "decoder_res1_block1_spatial_convolution",
         "up1.temp_convs1": "decoder_res1_block1_temporal_convolution",
         "up1.upsampler0": "decoder_res1_upsampler"}


def write_weights(directory) -> dict[str, str]:
    from videoshop_bench.baselines.text.t2v_models import ZEROSCOPE_SCHEDULER, load_t2v_components

    from .weights import write_sd_layout

    c = load_t2v_components("tiny", {}, allow_download=False, dtype=torch.float32, seed=0)
    c.unet = official_tiny_unet(seed=0)
    return write_sd_layout(directory, unet=c.unet, vae=c.vae, text_encoder=c.text_encoder, tokenizer=c.tokenizer,
                           scheduler_config=ZEROSCOPE_SCHEDULER, pipeline_class="TextToVideoSDPipeline",
                           unet_class="UNet3DConditionModel", version="0.20.1")


def official_tiny_unet(seed: int = 0):
    """Zeroscope's UNet3DConditionModel layout at toy size with 32 normalisation groups (32/64/64 channels):
    diffusers 0.20 hard-codes 32 groups in ``TemporalConvLayer`` and ``transformer_in`` (0.42 passes
    ``norm_num_groups``), so the project's 8-group stand-in cannot be built there."""
    from diffusers import UNet3DConditionModel

    from videoshop_bench.baselines.text.models import _seeded

    unet = _seeded(seed, lambda: UNet3DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64, 64),
        norm_num_groups=32, cross_attention_dim=32, attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D")))
    return unet.eval().requires_grad_(False)


def make_inputs(config: str) -> dict[str, Any]:
    from videoshop_bench.datasets.synthetic import make_sample

    c = CONFIGS[config]
    s = make_sample(0, 3, num_frames=SETTINGS["num_frames"], height=c["height"], width=c["width"])
    return dict(frames=s.source_video, **SETTINGS)


@contextmanager
def _recording(rec: dict, method):
    import videoshop_bench.baselines.text.spacetime as st

    saved_resize, saved_run = st.resize_frames, st.SpaceTimeFeatures.run

    def resize(*a, **kw):
        rec["resized"] = saved_resize(*a, **kw)
        return rec["resized"]

    def run(self, unet, x, t, emb, cut=True):
        out = saved_run(self, unet, x, t, emb, cut)
        if not torch.is_grad_enabled():  # the reference pass (source latent at t, no grad)
            rec.setdefault("reference", []).append({k: v.detach().clone() for k, v in out.items()})
        return out

    record_calls(method, rec, "source_latents", "prompt_embeddings", "invert", "initial_noisy_latent", "guidance_step",
                 "denoise_step")
    with patched(st, resize_frames=resize), patched(st.SpaceTimeFeatures, run=run):
        yield


def run_project(weights_dir, inputs: dict, official: Any = None, **options) -> dict[str, Any]:
    from videoshop_bench.baselines.text.spacetime import Spacetime
    from videoshop_bench.baselines.text.t2v_models import load_t2v_components
    from videoshop_bench.datasets.schema import Sample

    method = Spacetime(weights="tiny", height=int(inputs["height"]), width=int(inputs["width"]),
                       max_frames=int(inputs["num_frames"]), num_inference_steps=int(inputs["steps"]),
                       inversion_steps=int(inputs["inversion_steps"]),
                       optimization_steps=int(inputs["optimization_steps"]),
                       guidance_scale=float(inputs["guidance_scale"]), prompt_prefix=inputs["prefix"],
                       dtype="float32", **options)
    c = load_t2v_components("pretrained", {"path": str(weights_dir)}, allow_download=False, dtype=torch.float32)
    method.unet, method.vae, method.text_encoder, method.tokenizer = c.unet, c.vae, c.text_encoder, c.tokenizer
    rec: dict = {}
    record_decodes(method.vae, rec)
    sample = Sample("official_check", inputs["frames"], inputs["frames"][0], source_prompt=inputs["source_prompt"],
                    target_prompt=inputs["target_prompt"])
    if official is not None:  # the official restart noise is unseeded: replayed in the order it was drawn
        replay = iter(official["rec"]["restart_noise"])
        method.restart_noise = lambda shape, generator: next(replay).reshape(shape).clone()
    with _recording(rec, method):
        result = method.edit(sample, torch.Generator().manual_seed(int(inputs["seed"])))
    rec["frames"] = result.frames
    rec["losses"] = method.last_losses
    return rec


def _fchw(x: torch.Tensor) -> torch.Tensor:
    """(1, C, F, h, w) -> (F, C, h, w)."""
    return x[0].permute(1, 0, 2, 3)


def stages(ours: dict, off: dict) -> list[Stage]:
    rec = off["rec"]
    f = int(off["num_frames"])
    src, tgt, neg = ours["prompt_embeddings"][0]
    inv = ours["invert"][0]
    ts = sorted(inv, reverse=True)
    inv_off = torch.stack([rec["inverted"][t] if t in rec["inverted"] else torch.full_like(inv[t], float("nan"))
                           for t in ts])
    refs_ours = {(k, i): v for i, d in enumerate(ours["reference"]) for k, v in d.items()}
    refs_off = {(k, i): d[SITES[k]] for i, d in enumerate(rec["reference"]) for k in SITES}
    keys = sorted(refs_ours)
    # the project's site loss leaves out the i = j pairs (cos 0): official = ours + 1/F per site
    shift = len(SITES) / f
    loss_ours = torch.tensor([[v + shift for v in ls] for _, ls in ours["losses"]], dtype=torch.float64)
    loss_off = torch.tensor(rec["losses"], dtype=torch.float64).reshape(loss_ours.shape)
    opt_ours = torch.stack([o[0] for o in ours["guidance_step"]])
    den_ours = torch.stack([_fchw(x) for x in ours["denoise_step"]])
    den_off = torch.stack([_fchw(x) for x in rec["denoised"]])
    return [
        Stage("frames at model size (uint8)", ours["resized"], rec["frames"], ("frame",), 0.5, True),
        Stage("prompt embeddings [source, target, negative]", torch.cat([src, tgt, neg]),
              torch.cat([rec["text_embeds"][0:1], rec["guidance_embeds"][0:1], rec["text_embeds"][1:2]]), ("prompt",)),
        Stage("inversion prompt embedding (preprocess: source prompt)", src, rec["inversion_cond"], ()),
        Stage("VAE latents z0 of the inversion (posterior sample)", _fchw(ours["source_latents"][0]),
              _fchw(rec["inversion_z0"]), ("frame",)),
        Stage("VAE latents z0 of the initial latent (official: second posterior sample)",
              _fchw(ours["source_latents"][0]), rec["init_z0"], ("frame",)),
        Stage(f"inverted latents (every timestep, {ts[0]}..{ts[-1]})", torch.stack([inv[t] for t in ts]), inv_off,
              ("t",)),
        Stage("initial latent (high frequencies replaced, seed)", _fchw(ours["initial_noisy_latent"][0]),
              _fchw(rec["noisy_latent"]), ("frame",)),
        Stage("reference features (3 sites x guided steps)",
              padded_rows([refs_ours[k] for k in keys]), padded_rows([refs_off[k] for k in keys]),
              ("site",), note=f"{len(keys)} (site, step) pairs"),
        Stage("feature loss per Adam step (project + 3/F)", loss_ours, loss_off, ("guided step", "Adam step")),
        Stage("latent after each guidance step (Adam)", torch.stack([_fchw(x) for x in opt_ours]),
              torch.stack([_fchw(x) for x in rec["optimized"]]), ("guided step", "frame")),
        Stage("latents after the first denoising", den_ours[0], den_off[0], ("frame",)),
        Stage("latents after every denoising (incl. restarts)", den_ours, den_off, ("pass", "frame")),
        Stage("latents after the last step", den_ours[-1], den_off[-1], ("frame",)),
        Stage("decoded frames (float [-1, 1])", torch.cat(ours["decoded"]), rec["decoded"], ("frame",)),
        Stage("output frames (uint8)", ours["frames"], off["frames"], ("frame",), 0.5, True),
    ]
