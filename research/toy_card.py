"""The toy model's card (MODEL_CARD.md beside its weights), written from the training summary."""

from __future__ import annotations

import json
from pathlib import Path


def _card_prose(out: Path, s: dict) -> tuple:
    """The card's derived phrases: weights' size, UNet config, where each stage ran, data and VAE notes."""
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
    return size, unet, attention, where, alone, vae_data, stripes, vae_widths, restart, budget, jitter


def write_model_card(out: Path, s: dict) -> None:
    """MODEL_CARD.md in ``out`` from the training summary ``s`` (training_summary.json)."""
    t = s["train"]
    size, unet, attention, where, alone, vae_data, stripes, vae_widths, restart, budget, jitter = _card_prose(out, s)
    (out / "MODEL_CARD.md").write_text(f"""# Toy SVD (videoshop/assets/toy)

A small Stable Video Diffusion of the real architecture (diffusers AutoencoderKLTemporalDecoder,
UNetSpatioTemporalConditionModel, transformers CLIPVisionModelWithProjection) trained by this project's own code
(`research/train_toy.py`, `research/toy_training.py`) on the synthetic world (`datasets/synthetic.py`). It exists so
that editing quality can be measured offline against ground-truth edited videos. It is not a general video model.

- Command: `{s['command']}` ({where}; the thread count and the device change the float rounding, so a rerun is
  bit-identical only on the same device with the same counts).
  `python run.py experiment=train_toy` alone {alone}.
- Data: {t['num_videos']} source videos of `videoshop_bench.datasets.synthetic` at difficulty `{t['difficulty']}` (scene i drawn from
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
