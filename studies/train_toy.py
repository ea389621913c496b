"""Train the toy SVD on the synthetic world (the Hydra edge of studies.toy_training): `python run.py experiment=train_toy`.

Three stages, seeded and bit-reproducible on the CPU at a fixed thread count: (1) the temporal VAE on pixel clips;
(2) the spatio-temporal UNet with SVD's conditioning and EDM v-prediction loss on the frozen VAE's latents
(``train.retrain_unet_from`` reruns it alone on a saved run's VAE); (3) the temporal decoder on the frozen encoder's
latents. ``train.device=cuda`` runs the stages on a GPU (every random draw still comes from CPU generators). The EMA
UNet and the VAE are saved as a whole VideoshopPipeline (safetensors) with a model card and a loss log.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def render_training_videos(seed: int, num_videos: int, num_frames: int, height: int, width: int,
                           difficulty: str = "easy", stripe_prob: float = 0.0) -> np.ndarray:
    """(N, T, H, W, 3) uint8 source videos of the synthetic world, scene i drawn from ``default_rng([seed, i])``.

    The world's source objects are flat; its stripes appear only through a change_appearance edit, so a model
    trained on source videos alone has never seen them. ``stripe_prob`` > 0 makes each object striped with that
    probability, drawn from a separate stream (``default_rng([seed, i, 1])``): the scenes themselves, and every video
    at ``stripe_prob=0``, are unchanged."""
    from datasets.synthetic import random_scene, render

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
    from studies.toy_training import vae_loss

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
    from studies.toy_training import (denoiser_loss, drop_conditions, ema_update, noisy_first_frame_latents,
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
    from studies.toy_training import decoder_loss

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
    state = torch.load(src / "stage1.pt", weights_only=False)
    gen.set_state(state["gen_state"])
    history.extend(state["history"])
    log.info("stage 1 loaded from %s", src)
    return {"vae_s": float(state["vae_s"]), "command": state.get("command"), "threads": state.get("threads"),
            "device": state.get("device")}


def _final(history: list, stage: str, key: str = "loss", last: int = 100) -> float:
    vals = [h[key] for h in history if h["stage"] == stage]
    return float(np.mean(vals[-last:])) if vals else float("nan")


def run_train(cfg: DictConfig, label: Optional[str] = None) -> dict[str, Any]:
    from videoshop.pipeline import VideoshopPipeline
    from studies.toy_training import uint8_to_pixels, zero_init_residual_branches

    t = cfg.train
    torch.set_num_threads(int(t.threads))
    torch.manual_seed(int(t.seed))
    gen = torch.Generator().manual_seed(int(t.seed))
    times: dict[str, float] = {}
    start = time.time()
    videos = render_training_videos(int(t.data_seed), int(t.num_videos), int(t.num_frames), int(t.height),
                                    int(t.width), t.difficulty, float(t.get("stripe_prob", 0.0)))
    pixels = uint8_to_pixels(videos)  # (N, F, 3, H, W)
    times["render_s"] = time.time() - start
    if t.get("resume_from"):  # stages 1-2 from a saved run (same seeds), then stage 3
        return resume_decoder(t, pixels, times, start)
    if t.get("retrain_unet_from"):  # stages 1 and 3 from a saved run, a fresh stage 2
        return retrain_unet(t, pixels, times, start)
    if t.get("unet_init_from"):
        raise ValueError("train.unet_init_from is a warm restart of a retrained stage 2: set train.retrain_unet_from too")
    comps = _random_components(t)
    vae, unet = comps["vae"], comps["unet"]
    if t.get("vae_zero_init"):
        log.info("vae: %d residual branches zero-initialised", zero_init_residual_branches(vae))
    history: list[dict] = []

    dev = _train_device(t)
    if t.get("vae_from"):  # stage 1 from a saved checkpoint (weights, losses, generator state): same run
        stage1 = load_stage1(t.vae_from, vae, gen, history)
    else:
        s0 = time.time()
        train_vae(vae, pixels, t, gen, history)
        stage1 = {"vae_s": time.time() - s0, "command": None, "threads": int(t.threads),  # this process
                  "device": _device_name(dev)}
        if t.get("stage1_dir"):
            save_stage1(t.stage1_dir, vae, gen, history, stage1["vae_s"], stage1["device"])
    times["vae_s"] = stage1["vae_s"]

    s0 = time.time()
    latents, embeds, sf = encode_training_set(vae, comps["image_encoder"], comps["feature_extractor"], pixels, dev)
    times["encode_s"] = time.time() - s0

    s0 = time.time()
    ema = train_unet(unet.to(dev), vae, latents, pixels[:, 0].to(dev), embeds, t, gen, history).cpu()
    vae.cpu()
    comps["image_encoder"].cpu()
    times["unet_s"] = time.time() - s0
    s0 = time.time()
    finetune_decoder(vae, pixels, t, history)
    times["decoder_s"] = time.time() - s0
    times["total_s"] = time.time() - start + (times["vae_s"] if t.get("vae_from") else 0.0)  # stage 1 ran earlier

    out = Path(t.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    comps["unet"] = ema
    pipe = VideoshopPipeline(**comps)
    pipe.save_pretrained(out, safe_serialization=True)
    unet_steps_run = sum(1 for h in history if h["stage"] == "unet")
    summary = dict(
        command=(f"{stage1['command'] or '(stage 1: command not recorded)'} && " if t.get("vae_from") else "") + _command(),
        torch=torch.__version__, threads=int(t.threads), stage1_threads=stage1["threads"],
        vae_steps=int(t.vae_steps), unet_steps=unet_steps_run, scaling_factor=sf, times=times,
        final_vae_loss=_final(history, "vae"), final_vae_l1=_final(history, "vae", "l1"),
        final_vae_l2=_final(history, "vae", "l2"), final_unet_loss=_final(history, "unet"),
        unet_params=sum(p.numel() for p in unet.parameters()), vae_params=sum(p.numel() for p in vae.parameters()),
        unet_device=_device_name(dev), train=OmegaConf.to_container(t, resolve=True),
        stage1_device=stage1["device"], stage3_device=_device_name(dev),
    )
    _finish(out, summary, history)
    log.info("saved %s: %s", out, json.dumps({k: v for k, v in summary.items() if k != "train"}))
    return summary


def _random_components(t: DictConfig) -> dict:
    """The toy's components at the sizes of ``train.*``, randomly initialised from ``train.seed``."""
    from videoshop.models import build_random_components
    from studies.toy_training import toy_component_configs

    sizes = {k: tuple(t[k]) for k in ("vae_channels", "unet_channels", "unet_attention") if t.get(k) is not None}
    return build_random_components(toy_component_configs(int(t.num_frames), int(t.get("latent_channels", 4)), **sizes),
                                   seed=int(t.seed))


def _train_device(t: DictConfig) -> torch.device:
    return torch.device(t.get("device") or "cpu")


def _saved_history(src: Path, stages: tuple[str, ...]) -> list[dict]:
    """The per-step losses of ``stages`` from a saved run's loss_history.npz (L1 / L2 were not kept)."""
    old = np.load(src / "loss_history.npz")
    return [{"stage": k, "step": i, "loss": float(v), "l1": float("nan"), "l2": float("nan")}
            for k in stages for i, v in enumerate(old[k])]


def encode_training_set(vae, image_encoder, feature_extractor, pixels: torch.Tensor, dev: torch.device,
                        scaling_factor: Optional[float] = None):
    """Stage 2's inputs on ``dev``: scaled VAE latents (N, F, C, h, w) of all frames and the CLIP embeddings
    (N, 1, D) of the first frames. Without ``scaling_factor`` it is measured (1 / std of the latents) and written
    into the VAE's config; a kept VAE (``retrain_unet``) passes its own."""
    from studies.toy_training import image_embeddings, latent_scaling_factor

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


def retrain_unet(t: DictConfig, pixels: torch.Tensor, times: dict, start: float) -> dict[str, Any]:
    """Stage 2 alone: keep the whole VAE (encoder, fine-tuned decoder, scaling factor) and image encoder of the
    saved pipeline ``t.retrain_unet_from`` and train a fresh UNet of ``t.unet_*`` on its latents (generator seeded
    with ``t.seed``). Stage 3 changes only the decoder and stage 2 uses only the encoder, so this is stage 2 of
    the same three-stage run, with other UNet settings, e.g. on a GPU (``train.device=cuda``)."""
    from videoshop.pipeline import VideoshopPipeline

    src = Path(t.retrain_unet_from)
    if not (src / "training_summary.json").is_file():
        raise FileNotFoundError(f"train.retrain_unet_from={src}: no training_summary.json there (a saved toy run)")
    pipe = VideoshopPipeline.from_pretrained(str(src))
    old = json.loads((src / "training_summary.json").read_text())
    unet = _random_components(t)["unet"]
    gen = torch.Generator().manual_seed(int(t.seed))
    dev = _train_device(t)
    before = warm_start_unet(unet, t.unet_init_from) if t.get("unet_init_from") else []
    s0 = time.time()
    latents, embeds, sf = encode_training_set(pipe.vae, pipe.image_encoder, pipe.feature_extractor, pixels, dev,
                                              pipe.vae.config.scaling_factor)
    times["encode_s"] = time.time() - s0
    history = _saved_history(src, ("vae", "decoder"))
    history += [{"stage": "unet", "step": i, "loss": v} for i, v in enumerate(before)]
    s0 = time.time()
    ema = train_unet(unet.to(dev), pipe.vae, latents, pixels[:, 0].to(dev), embeds, t, gen, history).cpu()
    times["unet_s"] = time.time() - s0
    pipe.to("cpu")
    pipe.register_modules(unet=ema)
    for k in ("vae_s", "decoder_s"):
        times[k] = old["times"].get(k, 0.0)
    times["total_s"] = times["vae_s"] + times["decoder_s"] + time.time() - start
    chain = _saved_command(t.unet_init_from) if t.get("unet_init_from") else old["command"]
    summary = dict(old, command=f"{chain} && {_command()}",
                   threads=int(t.threads), vae_num_videos=old.get("vae_num_videos", old["train"]["num_videos"]),
                   unet_steps=sum(1 for h in history if h["stage"] == "unet"), times=times,
                   final_unet_loss=_final(history, "unet"), unet_params=sum(p.numel() for p in ema.parameters()),
                   unet_device=_device_name(dev), unet_torch=torch.__version__, unet_warm_start_steps=len(before),
                   unet_seed=int(t.seed),
                   train=dict(old["train"], **{k: v for k, v in OmegaConf.to_container(t, resolve=True).items()
                                               if k.startswith("unet") or k in UNET_STAGE_KEYS}))
    out = Path(t.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(out, safe_serialization=True)
    _finish(out, summary, history, decoder_ran=False)
    log.info("saved %s (UNet retrained on the VAE of %s)", out, src)
    return summary


def _saved_command(path: str) -> str:
    """The command chain that made the saved run ``path`` (its training_summary.json)."""
    f = Path(path) / "training_summary.json"
    return json.loads(f.read_text())["command"] if f.is_file() else f"(the run in {path}: command not recorded)"


def warm_start_unet(unet, path: str) -> list[float]:
    """Load the (EMA) UNet of the saved run ``path`` into ``unet`` (same architecture) for a warm restart of stage 2
    (fresh optimizer, warm-up and decay again); returns that run's UNet losses, which the new ones continue."""
    from safetensors.torch import load_file

    src = Path(path)
    weights = src / "unet" / "diffusion_pytorch_model.safetensors"
    if not weights.is_file() or not (src / "loss_history.npz").is_file():
        raise FileNotFoundError(f"train.unet_init_from={path}: no unet/diffusion_pytorch_model.safetensors and "
                                "loss_history.npz there (a saved toy run)")
    missing, unexpected = unet.load_state_dict(load_file(weights), strict=False)
    if missing or unexpected:
        raise ValueError(f"train.unet_init_from={path}: its UNet has another architecture than train.unet_* "
                         f"({len(missing)} missing, {len(unexpected)} unexpected tensors)")
    log.info("unet warm-started from %s", src)
    return [float(v) for v in np.load(src / "loss_history.npz")["unet"]]


# The stage-2 settings a retrained UNet's summary takes from its own run (besides unet_*).
UNET_STAGE_KEYS = ("data_seed", "num_videos", "difficulty", "ema_decay", "p_mean", "p_std", "noise_aug_log_mean",
                   "noise_aug_log_std", "cond_dropout", "fps", "motion_bucket_id", "max_minutes", "device",
                   "retrain_unet_from")


def _finish(out: Path, summary: dict, history: list, decoder_ran: bool = True) -> None:
    """Write the summary, loss history and model card; stage 3's figures come from ``history`` when it ran here
    (else they are the kept run's, already in ``summary``)."""
    if decoder_ran:
        summary.update(decoder_steps=sum(1 for h in history if h["stage"] == "decoder"),
                       final_decoder_loss=_final(history, "decoder"),
                       final_decoder_l1=_final(history, "decoder", "l1"), final_decoder_l2=_final(history, "decoder", "l2"))
    (out / "training_summary.json").write_text(json.dumps(summary, indent=1))
    np.savez_compressed(out / "loss_history.npz", **{
        k: np.array([h["loss"] for h in history if h["stage"] == k], np.float32) for k in ("vae", "unet", "decoder")})
    write_model_card(out, summary)


def resume_decoder(t: DictConfig, pixels: torch.Tensor, times: dict, start: float) -> dict[str, Any]:
    """Load stages 1-2 (weights, summary, loss history) from ``t.resume_from``, run stage 3, save to output_dir."""
    from videoshop.pipeline import VideoshopPipeline

    src = Path(t.resume_from)
    pipe = VideoshopPipeline.from_pretrained(str(src))
    summary = json.loads((src / "training_summary.json").read_text())
    history = _saved_history(src, ("vae", "unet"))
    s0 = time.time()
    finetune_decoder(pipe.vae, pixels, t, history)
    times = dict(summary["times"], decoder_s=time.time() - s0)
    old_stage3 = summary["times"].get("decoder_s", 0.0)  # the resumed run's own stage 3 is replaced, not added to
    times["total_s"] = summary["times"]["total_s"] - old_stage3 + times["decoder_s"] + times["render_s"]
    summary.update(times=times, train=OmegaConf.to_container(t, resolve=True), stage3_threads=int(t.threads),
                   stage3_device=_device_name(_train_device(t)),
                   command=summary["command"] + " && python run.py " + " ".join(sys.argv[1:]))
    out = Path(t.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(out, safe_serialization=True)
    _finish(out, summary, history)
    log.info("saved %s (stage 3 resumed from %s)", out, src)
    return summary


def write_model_card(out: Path, s: dict) -> None:
    t = s["train"]
    size = sum(f.stat().st_size for f in out.rglob("*.safetensors")) / 2**20
    unet = json.loads((out / "unet" / "config.json").read_text())  # the saved architecture, not the config's defaults
    attention = [b.startswith("CrossAttn") for b in unet["down_block_types"]]
    stage2 = (f"stage 2 on {s['threads']}" if s.get("unet_device", "CPU") == "CPU"
              else f"stage 2 on the GPU ({s['unet_device']}, torch {s.get('unet_torch', s['torch'])})")
    warm = s.get("unet_warm_start_steps", 0)

    def on(device, threads):  # where a stage ran: "N thread(s)" on the CPU, else the GPU's name
        return f"{threads} thread(s)" if device in (None, "CPU") else f"the GPU ({device})"

    if t.get("retrain_unet_from"):
        stage2 += (f" by the last {'two commands' if warm else 'command'} (train.retrain_unet_from: the UNet alone, "
                   "on the earlier run's VAE)")
    alone = ("runs all three stages with these defaults in one process" if not t.get("retrain_unet_from") else
             "runs the CPU recipe (all three stages with the config's defaults) in one process; this model's "
             "stage 2 is the retrained one above")
    where = (f"torch {s['torch']}, CPU; stage 1 on {on(s.get('stage1_device'), s.get('stage1_threads', s['threads']))}, {stage2}, "
             f"stage 3 on {on(s.get('stage3_device'), s.get('stage3_threads', s['threads']))}")
    budget = " over each run's train.max_minutes wall-clock budget" if t.get("max_minutes") else ""
    restart = (f" ({warm} steps, then a warm restart from those weights: {s['unet_steps'] - warm} more with a fresh "
               f"optimizer and schedule)" if warm else "")
    vae_n = s.get("vae_num_videos", t["num_videos"])
    vae_data = f"; the VAE was trained on the first {vae_n} of them" if vae_n != t["num_videos"] else ""
    stripes = (f"; each object striped with probability {t['stripe_prob']} (train.stripe_prob)"
               if t.get("stripe_prob") else "")
    vae_widths = list(t.get("vae_channels", [32, 32, 64]))
    noise = t.get("decoder_latent_noise")
    jitter = (f" decoded with per-frame N(0, {noise}^2) jitter added (scaled units; the target is the clean frame)"
              if noise else "")
    (out / "MODEL_CARD.md").write_text(f"""# Toy SVD (videoshop/assets/toy)

A small Stable Video Diffusion of the real architecture (diffusers AutoencoderKLTemporalDecoder,
UNetSpatioTemporalConditionModel, transformers CLIPVisionModelWithProjection) trained by this project's own code
(`studies/train_toy.py`, `studies/toy_training.py`) on the synthetic world (`datasets/synthetic.py`). It exists so
that editing quality can be measured offline against ground-truth edited videos. It is not a general video model.

- Command: `{s['command']}` ({where}; the thread count and the device change the float rounding, so a rerun is
  bit-identical only on the same device with the same counts).
  `python run.py experiment=train_toy` alone {alone}.
- Data: {t['num_videos']} source videos of `datasets.synthetic` at difficulty `{t['difficulty']}` (scene i drawn from
  `default_rng([{t['data_seed']}, i])`{vae_data}{stripes}), {t['num_frames']} frames at {t['height']} x {t['width']} px. Evaluate on a
  different seed (e.g. `dataset.loader.seed=1000`).
- VAE: {s['vae_params']/1e6:.2f}M parameters, block widths {vae_widths} ({2 ** (len(vae_widths) - 1)}x downsampling, {t.get('latent_channels', 4)} latent channels), trained jointly
  (encoder + temporal decoder) for {s['vae_steps']} steps of {t['vae_batch']} clips of {t.get('vae_frames') or t['num_frames']} frames, decoding the posterior
  {'mean' if t.get('vae_posterior', 'sample') == 'mode' else 'sample'}, {'residual branches zero-initialised, ' if t.get('vae_zero_init') else ''}L1 + L2 + {t['vae_kl_weight']} KL;
  final (mean of last 100 steps) loss {s['final_vae_loss']:.4f}, L1 {s['final_vae_l1']:.4f}, L2 {s['final_vae_l2']:.5f}
  (pixels in [-1, 1]). Scaling factor 1/std(latents) = {s['scaling_factor']:.4f}.
- Decoder fine-tune (stage 3, encoder frozen, as SVD trains only its temporal decoder): {s.get('decoder_steps', 0)} steps,
  lr {t.get('decoder_lr')}, L1 + L2 on the mode latent{jitter} + {t.get('decoder_temporal_weight', 0.0)} x frame-difference L1 (flicker); final loss {s.get('final_decoder_loss', float('nan')):.4f},
  L1 {s.get('final_decoder_l1', float('nan')):.4f}, L2 {s.get('final_decoder_l2', float('nan')):.5f}.
- UNet: {s['unet_params']/1e6:.2f}M parameters, block widths {list(unet['block_out_channels'])} (spatio-temporal transformer
  per level: {attention}), {s['unet_steps']} steps of batch {t['unet_batch']}{restart}, AdamW lr {t['unet_lr']}
  (warm-up, cosine{budget}), EMA {t['ema_decay']} (shipped), EDM v-prediction (sigma_data 1) with ln sigma ~
  N({t['p_mean']}, {t['p_std']}^2), EDM weighting; first-frame latent + noise augmentation (ln aug ~
  N({t['noise_aug_log_mean']}, {t['noise_aug_log_std']}^2)), CLIP embedding, added time ids [fps-1={t['fps']-1},
  motion_bucket_id={t['motion_bucket_id']}, aug]; condition dropout {t['cond_dropout']} each.
  Final (mean of last 100 steps) EDM loss {s['final_unet_loss']:.4f}.
- Image encoder: tiny CLIP vision tower, random (seed {t['seed']} + 2), frozen.
- Time: {s['times']['total_s']/60:.1f} min total (VAE {s['times']['vae_s']/60:.1f}, UNet {s['times']['unet_s']/60:.1f}{' on the GPU' if s.get('unet_device', 'CPU') != 'CPU' else ''},
  decoder {s['times'].get('decoder_s', 0)/60:.1f}).
- Weights: {size:.1f} MB of safetensors. Load: `VideoshopPipeline.from_pretrained("videoshop/assets/toy")` or
  `python run.py model=toy`.
- Losses per step: `loss_history.npz`; everything above: `training_summary.json`.
""")
