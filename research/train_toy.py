"""Train the toy SVD on the synthetic world (the Hydra edge of videoshop_bench.research.toy_training): `python run.py experiment=train_toy`.

Three stages, seeded and bit-reproducible on the CPU at a fixed thread count: (1) the temporal VAE on pixel clips;
(2) the spatio-temporal UNet with SVD's conditioning and EDM v-prediction loss on the frozen VAE's latents
(``train.retrain_unet_from`` reruns it alone on a saved run's VAE); (3) the temporal decoder on the frozen encoder's
latents. ``train.device=cuda`` runs the stages on a GPU (every random draw still comes from CPU generators). The EMA
UNet and the VAE are saved as a whole VideoshopPipeline (safetensors) with a model card and a loss log.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from .toy_card import write_model_card
from .toy_stages import (_command, _device_name, _final, _random_components, _train_device, encode_training_set,
                         finetune_decoder, load_stage1, render_training_videos, save_stage1, train_unet, train_vae)

log = logging.getLogger(__name__)


def run_train(cfg: DictConfig, label: Optional[str] = None) -> dict[str, Any]:
    from videoshop.pipeline import VideoshopPipeline
    from videoshop_bench.research.toy_training import uint8_to_pixels, zero_init_residual_branches

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
    stage1 = _stage1(t, vae, pixels, gen, history, dev)
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
    summary = _summary(t, stage1, history, unet, vae, sf, times, dev)
    _finish(out, summary, history)
    log.info("saved %s: %s", out, json.dumps({k: v for k, v in summary.items() if k != "train"}))
    return summary


def _stage1(t: DictConfig, vae, pixels: torch.Tensor, gen: torch.Generator, history: list,
            dev: torch.device) -> dict[str, Any]:
    """Stage 1 (the VAE), trained here or loaded from ``train.vae_from`` (weights, losses, generator state: the same
    run); returns its seconds, command, threads and device."""
    if t.get("vae_from"):
        return load_stage1(t.vae_from, vae, gen, history)
    s0 = time.time()
    train_vae(vae, pixels, t, gen, history)
    stage1 = {"vae_s": time.time() - s0, "command": None, "threads": int(t.threads),  # this process
              "device": _device_name(dev)}
    if t.get("stage1_dir"):
        save_stage1(t.stage1_dir, vae, gen, history, stage1["vae_s"], stage1["device"])
    return stage1


def _summary(t: DictConfig, stage1: dict, history: list, unet, vae, sf: float, times: dict,
             dev: torch.device) -> dict[str, Any]:
    """training_summary.json of a run of all three stages: the command, devices, steps, final losses, sizes."""
    return dict(
        command=(f"{stage1['command'] or '(stage 1: command not recorded)'} && " if t.get("vae_from") else "") + _command(),
        torch=torch.__version__, threads=int(t.threads), stage1_threads=stage1["threads"],
        vae_steps=int(t.vae_steps), unet_steps=sum(1 for h in history if h["stage"] == "unet"), scaling_factor=sf,
        times=times, final_vae_loss=_final(history, "vae"), final_vae_l1=_final(history, "vae", "l1"),
        final_vae_l2=_final(history, "vae", "l2"), final_unet_loss=_final(history, "unet"),
        unet_params=sum(p.numel() for p in unet.parameters()), vae_params=sum(p.numel() for p in vae.parameters()),
        unet_device=_device_name(dev), train=OmegaConf.to_container(t, resolve=True),
        stage1_device=stage1["device"], stage3_device=_device_name(dev),
    )


def _saved_history(src: Path, stages: tuple[str, ...]) -> list[dict]:
    """The per-step losses of ``stages`` from a saved run's loss_history.npz (L1 / L2 were not kept)."""
    old = np.load(src / "loss_history.npz")
    return [{"stage": k, "step": i, "loss": float(v), "l1": float("nan"), "l2": float("nan")}
            for k in stages for i, v in enumerate(old[k])]


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
