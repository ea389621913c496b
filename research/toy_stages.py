"""The toy SVD's training stages, each a plain function over tensors and ``train.*`` (research/train_toy.py runs
them): the training videos, learning-rate schedule and crops, stage 1 (the temporal VAE), stage 2 (the UNet with
SVD's conditioning and EDM v-prediction loss, EMA), stage 3 (the temporal decoder), the latents of the training set,
and stage 1's checkpoint."""

from __future__ import annotations

import copy
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def render_training_videos(seed: int, num_videos: int, num_frames: int, height: int, width: int,
                           difficulty: str = "easy", stripe_prob: float = 0.0) -> np.ndarray:
    """(N, T, H, W, 3) uint8 source videos of the synthetic world, scene i drawn from ``default_rng([seed, i])``.

    The world's source objects are flat; its stripes appear only through a change_appearance edit, so a model
    trained on source videos alone has never seen them. ``stripe_prob`` > 0 makes each object striped with that
    probability, drawn from a separate stream (``default_rng([seed, i, 1])``): the scenes themselves, and every video
    at ``stripe_prob=0``, are unchanged."""
    from videoshop_bench.datasets.synthetic import random_scene, render

    if not 0.0 <= stripe_prob <= 1.0:
        raise ValueError(f"train.stripe_prob={stripe_prob}: expected a probability in [0, 1]")
    out = np.empty((num_videos, num_frames, height, width, 3), np.uint8)
    for i in range(num_videos):
        scene = random_scene(np.random.default_rng([seed, i]), num_frames, difficulty)
        if stripe_prob > 0:
            stripes = np.random.default_rng([seed, i, 1]).random(len(scene.objects)) < stripe_prob
            for obj, striped in zip(scene.objects, stripes):
                obj.stripes = bool(striped)
        out[i] = render(scene, height, width, num_frames)[0]
    return out


def _lr(step: int, total: int, base: float, warmup: int, final_frac: float, time_frac: float = 0.0) -> float:
    """Linear warm-up, then cosine decay to ``final_frac * base``.

    The decay follows whichever is further along: the steps (``step / total``) or the wall clock (``time_frac``,
    the spent fraction of a time budget), so a run capped by time still anneals to the final rate."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = min(1.0, max((step - warmup) / max(1, total - warmup), time_frac))
    return base * (final_frac + (1 - final_frac) * 0.5 * (1 + math.cos(math.pi * t)))


def random_crop(clips: torch.Tensor, height: int, width: int, gen: torch.Generator, align: int = 4) -> torch.Tensor:
    """One random (height, width) window of (B, F, 3, H, W) clips, the same for all frames, at a multiple of
    ``align`` px (the VAE's downsampling). The VAE is convolutional (its attention is over the latent grid), so it
    trains on crops and runs on whole frames, as image VAEs train on crops; a crop costs its share of the pixels."""
    h, w = clips.shape[-2:]
    if height > h or width > w:
        raise ValueError(f"train.vae_crop=[{height}, {width}] is larger than the frames ({h} x {w})")
    y = int(torch.randint((h - height) // align + 1, (1,), generator=gen)) * align
    x = int(torch.randint((w - width) // align + 1, (1,), generator=gen)) * align
    return clips[..., y : y + height, x : x + width]


def random_subclip(clips: torch.Tensor, frames: int, gen: torch.Generator) -> torch.Tensor:
    """``frames`` consecutive frames of (B, F, ...) clips from one random start (the same for the batch).

    With a fixed budget of frames per step, shorter clips from more videos give the VAE more different scenes
    (colours, layouts) per step; the temporal decoder still sees neighbouring frames."""
    f = clips.shape[1]
    if not 1 <= frames <= f:
        raise ValueError(f"train.vae_frames={frames}: must be between 1 and the clip length {f}")
    s = int(torch.randint(f - frames + 1, (1,), generator=gen))
    return clips[:, s : s + frames]


def train_vae(vae, pixels: torch.Tensor, t: DictConfig, gen: torch.Generator, history: list) -> None:
    """Stage 1: the temporal VAE (encoder + decoder) on random subclips / crops of the training videos, on
    ``train.device`` (batches move there; every random draw comes from the CPU generator). Returns it on the CPU."""
    from videoshop_bench.research.toy_training import vae_loss

    posterior = t.get("vae_posterior", "sample")
    if posterior not in ("sample", "mode"):
        raise ValueError(f"train.vae_posterior={posterior!r}: expected 'sample' or 'mode'")
    dev = _train_device(t)
    vae.to(dev).train()
    opt = torch.optim.AdamW(vae.parameters(), lr=t.vae_lr, weight_decay=0.0)
    n = pixels.shape[0]
    t0 = time.time()
    for step in range(int(t.vae_steps)):
        for g in opt.param_groups:
            g["lr"] = _lr(step, int(t.vae_steps), t.vae_lr, 50, 0.05)
        idx = torch.randint(n, (int(t.vae_batch),), generator=gen)
        clips = pixels[idx]
        if t.get("vae_crop"):
            clips = random_crop(clips, *t.vae_crop, gen)
        if t.get("vae_frames"):
            clips = random_subclip(clips, int(t.vae_frames), gen)
        loss, parts = vae_loss(vae, clips.to(dev), gen, t.vae_kl_weight, sample=posterior == "sample")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append({"stage": "vae", "step": step, "loss": loss.item(), **parts})
        if step % int(t.log_every) == 0 or step == int(t.vae_steps) - 1:
            log.info("vae %d/%d loss %.4f l1 %.4f (%.1fs)", step, t.vae_steps, loss.item(), parts["l1"], time.time() - t0)
    vae.cpu().eval().requires_grad_(False)


def train_unet(unet, vae, latents: torch.Tensor, first_px: torch.Tensor, embeds: torch.Tensor, t: DictConfig,
               gen: torch.Generator, history: list):
    """EDM / v-prediction training of SVD's UNet; returns the EMA copy (the shipped weights).

    Runs where ``unet`` and the tensors are (``train.device``); every random draw comes from the CPU generator
    ``gen``, so the batches and noise are the same on any device. ``train.max_minutes`` is a wall-clock budget:
    the learning-rate decay follows the spent fraction of it (``_lr``) and the stage stops when it is spent.
    Losses are read back every ``log_every`` steps, not every step (a per-step read stalls a GPU's queue)."""
    from videoshop.conditioning import added_time_ids
    from videoshop_bench.research.toy_training import (denoiser_loss, drop_conditions, ema_update, noisy_first_frame_latents,
                               sample_noise_aug, sample_training_sigmas)

    unet.train()
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    opt = torch.optim.AdamW(unet.parameters(), lr=t.unet_lr, weight_decay=0.0)
    n, b, dev = latents.shape[0], int(t.unet_batch), latents.device
    t0 = time.time()
    steps, every = int(t.unet_steps), int(t.log_every)
    budget = 60 * float(t.max_minutes) if t.get("max_minutes") else None
    pending: list[torch.Tensor] = []  # this block's losses, still on the device
    for step in range(steps):
        spent = (time.time() - t0) / budget if budget else 0.0
        for g in opt.param_groups:
            g["lr"] = _lr(step, steps, t.unet_lr, 100, 0.1, spent)
        idx = torch.randint(n, (b,), generator=gen).to(dev)
        aug = sample_noise_aug(b, gen, t.noise_aug_log_mean, t.noise_aug_log_std)
        cond = noisy_first_frame_latents(vae, first_px[idx], aug, gen)
        cond, emb = drop_conditions(cond, embeds[idx], gen, t.cond_dropout)
        ids = torch.cat([added_time_ids(t.fps, t.motion_bucket_id, 0.0), ], 0).repeat(b, 1)
        ids[:, 2] = aug
        sigma = sample_training_sigmas(b, gen, t.p_mean, t.p_std)
        loss = denoiser_loss(unet, latents[idx], cond, emb, ids.to(dev), sigma.to(dev), gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        ema_update(ema, unet, t.ema_decay if step >= 100 else 0.0)
        pending.append(loss.detach())
        stop = budget is not None and time.time() - t0 > budget
        if step % every == 0 or step == steps - 1 or stop:
            first = step + 1 - len(pending)
            history.extend({"stage": "unet", "step": first + i, "loss": v}
                           for i, v in enumerate(torch.stack(pending).tolist()))
            pending = []
            avg = np.mean([h["loss"] for h in history[-every:] if h["stage"] == "unet"])
            log.info("unet %d/%d loss %.4f (%.1fs)", step, steps, avg, time.time() - t0)
        if stop:
            log.warning("unet stage stopped at step %d by train.max_minutes=%s", step + 1, t.max_minutes)
            break
    return ema


def finetune_decoder(vae, pixels: torch.Tensor, t: DictConfig, history: list) -> None:
    """Stage 3: the temporal decoder alone on the frozen encoder's latents (as SVD fine-tunes only its decoder).

    The latents do not change, so the UNet stays valid. Own generator (seed + 3): resuming this stage from saved
    stage-2 weights (``train.resume_from``) gives the same weights as one full run. Runs on ``train.device``, like
    stage 1, and returns the VAE on the CPU.
    """
    from videoshop_bench.research.toy_training import decoder_loss

    gen = torch.Generator().manual_seed(int(t.seed) + 3)
    dev = _train_device(t)
    vae.to(dev).requires_grad_(False)
    vae.decoder.requires_grad_(True)
    vae.decoder.train()
    params = list(vae.decoder.parameters())
    opt = torch.optim.AdamW(params, lr=t.decoder_lr, weight_decay=0.0)
    steps, n, t0 = int(t.decoder_steps), pixels.shape[0], time.time()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = _lr(step, steps, t.decoder_lr, 50, 0.05)
        idx = torch.randint(n, (int(t.vae_batch),), generator=gen)
        loss, parts = decoder_loss(vae, pixels[idx].to(dev), float(t.get("decoder_temporal_weight", 0.0)),
                                   float(t.get("decoder_latent_noise", 0.0)), gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append({"stage": "decoder", "step": step, "loss": loss.item(), **parts})
        if step % int(t.log_every) == 0 or step == steps - 1:
            log.info("decoder %d/%d loss %.4f l1 %.4f dt %.4f (%.1fs)", step, steps, loss.item(), parts["l1"], parts["dt"],
                     time.time() - t0)
    vae.cpu().eval().requires_grad_(False)


def save_stage1(path: str, vae, gen: torch.Generator, history: list, seconds: float, device: str = "CPU") -> None:
    """Checkpoint after stage 1 (VAE weights, loss history, training generator state), so that stages 2-3 can run
    in a later invocation (``train.vae_from``) and give the same weights as one run."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    vae.save_pretrained(out / "vae", safe_serialization=True)
    torch.save({"gen_state": gen.get_state(), "history": history, "vae_s": seconds, "command": _command(),
                "threads": torch.get_num_threads(), "device": device}, out / "stage1.pt")
    log.info("stage 1 saved to %s", out)


def _command() -> str:
    return " ".join(["python", "run.py", *sys.argv[1:]])


def load_stage1(path: str, vae, gen: torch.Generator, history: list) -> dict[str, Any]:
    """Restore a ``save_stage1`` checkpoint into ``vae`` / ``gen`` / ``history``; returns stage 1's seconds
    (``vae_s``), command, thread count and device (None for checkpoints written before they were kept)."""
    from safetensors.torch import load_file

    src = Path(path)
    if not (src / "stage1.pt").is_file():
        raise FileNotFoundError(f"train.vae_from={path}: no stage1.pt there (written by train.stage1_dir)")
    vae.load_state_dict(load_file(src / "vae" / "diffusion_pytorch_model.safetensors"))
    vae.eval().requires_grad_(False)
    state = torch.load(src / "stage1.pt", weights_only=True)  # tensors, numbers, strings: nothing to run
    gen.set_state(state["gen_state"])
    history.extend(state["history"])
    log.info("stage 1 loaded from %s", src)
    return {"vae_s": float(state["vae_s"]), "command": state.get("command"), "threads": state.get("threads"),
            "device": state.get("device")}


def _final(history: list, stage: str, key: str = "loss", last: int = 100) -> float:
    vals = [h[key] for h in history if h["stage"] == stage]
    return float(np.mean(vals[-last:])) if vals else float("nan")


def _random_components(t: DictConfig) -> dict:
    """The toy's components at the sizes of ``train.*``, randomly initialised from ``train.seed``."""
    from videoshop.models import build_random_components
    from videoshop_bench.research.toy_training import toy_component_configs

    sizes = {k: tuple(t[k]) for k in ("vae_channels", "unet_channels", "unet_attention") if t.get(k) is not None}
    return build_random_components(toy_component_configs(int(t.num_frames), int(t.get("latent_channels", 4)), **sizes),
                                   seed=int(t.seed))


def _train_device(t: DictConfig) -> torch.device:
    return torch.device(t.get("device") or "cpu")


def encode_training_set(vae, image_encoder, feature_extractor, pixels: torch.Tensor, dev: torch.device,
                        scaling_factor: Optional[float] = None):
    """Stage 2's inputs on ``dev``: scaled VAE latents (N, F, C, h, w) of all frames and the CLIP embeddings
    (N, 1, D) of the first frames. Without ``scaling_factor`` it is measured (1 / std of the latents) and written
    into the VAE's config; a kept VAE (``retrain_unet``) passes its own."""
    from videoshop_bench.research.toy_training import image_embeddings, latent_scaling_factor

    vae.to(dev)
    image_encoder.to(dev)
    with torch.no_grad():
        flat = pixels.flatten(0, 1)
        z = torch.cat([vae.encode(flat[i : i + 256].to(dev)).latent_dist.mode() for i in range(0, flat.shape[0], 256)])
    sf = latent_scaling_factor(z) if scaling_factor is None else float(scaling_factor)
    vae.register_to_config(scaling_factor=sf)
    latents = (z * sf).view(pixels.shape[0], pixels.shape[1], *z.shape[1:])
    embeds = image_embeddings(image_encoder, feature_extractor, pixels[:, 0].to(dev))
    log.info("latents %s on %s, scaling factor %.4f", tuple(latents.shape), dev, sf)
    return latents, embeds, sf


def _device_name(dev: torch.device) -> str:
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
