"""The toy world's model: a small SVD (same classes, same conditioning) trained on the synthetic generator.

Plain functions, no Hydra: component configs, the training data, and each training loss as one short function.
The Hydra edge is ``research/train_toy.py``; the weights ship in ``videoshop/assets/toy``.

What is SVD's here (Blattmann et al. 2023, "Stable Video Diffusion", and its sgm training code):
- the first-frame condition is the VAE mode (unscaled) of the first frame plus ``noise_aug * N(0, I)`` pixel
  noise, repeated over frames and concatenated to the UNet input along channels; the CLIP image embedding of the
  clean first frame is the cross-attention context; added time ids are ``[fps - 1, motion_bucket_id, noise_aug]``;
- EDM preconditioning (Karras et al. 2022, Table 1) with v-prediction and sigma_data = 1, c_noise = log(sigma)/4;
- training noise levels log-normal, ``ln sigma ~ N(P_mean, P_std^2)``, shifted toward high noise as SVD does for
  video (EDM's image default is P_mean = -1.2, P_std = 1.2);
- EDM's loss weight lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 on ||D(x; sigma) - x0||^2;
- classifier-free-guidance dropout: the image embedding and the concatenated latent are each zeroed with a small
  probability (the pipeline's unconditional branch zeroes both).
Simplifications (toy budget): fps and motion_bucket_id are constants (the synthetic world has one speed class);
the VAE is trained with an L1 + L2 reconstruction loss and a small KL term (no LPIPS or GAN); the image encoder
is a tiny, randomly initialised, frozen CLIP vision tower.
"""

from __future__ import annotations


from typing import Any

import numpy as np
import torch

from videoshop.conditioning import clip_image_embeddings
from videoshop.edm import edm_coefficients
from videoshop.models import tiny_component_configs



def toy_component_configs(num_frames: int = 8, latent_channels: int = 4,
                          vae_channels: tuple[int, ...] = (32, 32, 64), unet_channels: tuple[int, ...] = (32, 64),
                          unet_attention: tuple[bool, ...] = (True, False)) -> dict[str, dict[str, Any]]:
    """Configs of the toy SVD: a 3-level temporal VAE (4x downsampling) and a 2-level spatio-temporal UNet.

    Pixel sizes must be multiples of 8 (VAE 4 x UNet 2): the toy world is 32 x 56 px, latents C x 8 x 14.
    ``latent_channels`` C sets the VAE's latent width; the UNet then takes 2C channels (noisy latent and the
    concatenated first-frame latent, as SVD's 8 = 2 x 4) and predicts C. ``vae_channels`` are the VAE's
    block widths (encoder order; the decoder's last, full-resolution block has the first). The VAE's GroupNorm has
    32 groups, and the encoder's output norm runs over the last width, the decoder's over the first: at 32
    channels every channel is normalised on its own, per image, so a flat feature map leaves that norm as a
    constant whatever its level (MODEL_CARD.md: the toy VAE's error is mostly a per-frame colour offset).
    ``unet_channels`` are the UNet's block widths (multiples of 32, its GroupNorm's groups; one attention head per
    16 channels) and ``unet_attention`` says, per level, whether its blocks carry SVD's spatio-temporal transformer
    (CrossAttn*BlockSpatioTemporal: spatial self-, cross- and temporal attention) or only the spatio-temporal
    resnets. The defaults are the tiny stand-in's UNet (videoshop.models.tiny_component_configs).
    """
    if len(unet_attention) != len(unet_channels):
        raise ValueError(f"unet_attention {list(unet_attention)} needs one entry per level of unet_channels "
                         f"{list(unet_channels)}")
    down = tuple("CrossAttnDownBlockSpatioTemporal" if a else "DownBlockSpatioTemporal" for a in unet_attention)
    up = tuple("CrossAttnUpBlockSpatioTemporal" if a else "UpBlockSpatioTemporal" for a in unet_attention[::-1])
    return {
        "unet": dict(tiny_component_configs()["unet"], num_frames=num_frames, sample_size=8,
                     in_channels=2 * latent_channels, out_channels=latent_channels,
                     block_out_channels=tuple(unet_channels), down_block_types=down, up_block_types=up,
                     num_attention_heads=tuple(c // 16 for c in unet_channels)),
        "vae": dict(
            block_out_channels=tuple(vae_channels), down_block_types=("DownEncoderBlock2D",) * len(vae_channels),
            layers_per_block=1, latent_channels=latent_channels, in_channels=3, out_channels=3, sample_size=32,
            scaling_factor=1.0,  # replaced after VAE training by 1 / std of the latents (as SD/SVD chose 0.18215)
        ),
        "image_encoder": dict(
            hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=2, patch_size=32,
            image_size=224, projection_dim=32,
        ),
    }


# ----------------------------------------------------------------------------------------------- data
def uint8_to_pixels(videos: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(videos)).float() / 127.5 - 1.0
    return x.movedim(-1, -3)


# ----------------------------------------------------------------------------------------------- VAE
# The last layer of each residual branch of SVD's VAE: each resnet's conv2 (spatial and temporal) and the mid-block
# attention's output projection.
VAE_BRANCH_OUTPUTS = ("conv2", "to_out.0")


@torch.no_grad()
def zero_init_residual_branches(model: torch.nn.Module, suffixes: tuple[str, ...] = VAE_BRANCH_OUTPUTS) -> int:
    """Zero the weights and biases of every module whose name ends with one of ``suffixes``; returns how many.

    With the last layer of each residual branch at zero, every resnet (and attention) block starts as the
    identity, so the network is at first a short chain of convolutions and the branches learn corrections
    (Goyal et al. 2017, Sec. 5.1; Zhang et al. 2019, "Fixup"; sgm's UNet zeroes the same layers). Why it matters
    for the toy VAE: each end of SVD's VAE normalises with GroupNorm(32) over few channels per group right before
    its output convolution, which hides a frame's absolute colour; with random residual branches the toy VAE sat at
    about 17 dB with a per-clip colour offset for thousands of steps, with zeroed ones it passed 21 dB in 200 steps
    (MODEL_CARD.md). Same classes, same config: only the initialisation differs.
    """
    n = 0
    for name, module in model.named_modules():
        if name.endswith(suffixes):
            torch.nn.init.zeros_(module.weight)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
            n += 1
    return n


def vae_loss(vae, pixels: torch.Tensor, generator: torch.Generator, kl_weight: float = 1e-6,
             sample: bool = True) -> tuple[torch.Tensor, dict]:
    """Reconstruction (L1 + L2) and KL loss of the temporal VAE on (B, F, 3, H, W) pixels.

    A posterior sample (``sample=False``: the posterior mean, which is what encoding for editing uses) is decoded
    by the temporal decoder with ``num_frames = F`` (its Conv3d and temporal mixing see one clip at a time), as
    SVD's VAE is fine-tuned on video.
    """
    b, f = pixels.shape[:2]
    x = pixels.flatten(0, 1)
    post = vae.encode(x).latent_dist
    z = post.mean + post.std * torch.randn(post.mean.shape, generator=generator).to(x.device) if sample else post.mean
    rec = vae.decode(z, num_frames=f).sample
    l1, l2 = (rec - x).abs().mean(), ((rec - x) ** 2).mean()
    kl = post.kl().mean() / (z[0].numel())
    loss = l1 + l2 + kl_weight * kl
    return loss, {"l1": l1.item(), "l2": l2.item(), "kl": kl.item()}


def frame_difference_l1(rec: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean |(rec_{t+1} - rec_t) - (x_{t+1} - x_t)| over (B, F, ...) clips: flicker the target does not have."""
    return (torch.diff(rec, dim=1) - torch.diff(target, dim=1)).abs().mean()


def decoder_loss(vae, pixels: torch.Tensor, temporal_weight: float = 0.0, latent_noise: float = 0.0,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
    """L1 + L2 reconstruction of (B, F, 3, H, W) pixels from the encoder's posterior mode (encoder frozen), plus
    ``temporal_weight`` x ``frame_difference_l1`` (the temporal decoder's job in SVD is removing flicker; a
    per-frame loss alone does not penalise errors that change from frame to frame).

    ``latent_noise`` > 0 decodes ``z + latent_noise / scaling_factor * eps`` instead of ``z`` (eps ~ N(0, I) drawn
    independently per frame from ``generator``; ``latent_noise`` is in units of the scaled latents, which have unit
    variance) and still asks for the clean pixels: the decoder then learns to remove frame-to-frame latent jitter of
    the kind a sampler leaves behind, using its temporal layers, instead of rendering it as flicker."""
    b, f = pixels.shape[:2]
    x = pixels.flatten(0, 1)
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mode()
        if latent_noise > 0:
            eps = torch.randn(z.shape, generator=generator, dtype=z.dtype).to(z.device)
            z = z + latent_noise / float(vae.config.scaling_factor) * eps
    rec = vae.decode(z, num_frames=f).sample
    l1, l2 = (rec - x).abs().mean(), ((rec - x) ** 2).mean()
    dt = frame_difference_l1(rec.unflatten(0, (b, f)), pixels)
    return l1 + l2 + temporal_weight * dt, {"l1": l1.item(), "l2": l2.item(), "dt": dt.item()}


@torch.no_grad()
def latent_scaling_factor(latents: torch.Tensor) -> float:
    """1 / std of unscaled latents, so that scaled latents have unit variance (sigma_data = 1 in EDM)."""
    return float(1.0 / latents.float().std())


# ----------------------------------------------------------------------------------------------- UNet (EDM)
def sample_training_sigmas(n: int, generator: torch.Generator, p_mean: float = 0.7, p_std: float = 1.6) -> torch.Tensor:
    """EDM's log-normal noise levels (Karras et al. 2022, Sec. 5): ln sigma ~ N(P_mean, P_std^2).

    SVD trains video models with this distribution shifted to higher noise than EDM's image default
    (P_mean -1.2, P_std 1.2); the defaults here follow that shift.
    """
    return torch.exp(p_mean + p_std * torch.randn(n, generator=generator))


def sample_noise_aug(n: int, generator: torch.Generator, log_mean: float = -3.0, log_std: float = 1.0) -> torch.Tensor:
    """Conditioning-frame noise augmentation strength, log-normal as SVD's ``cond_aug`` sampler.

    The log-std is wider than SVD's (0.5) so the toy model sees both SVD's default 0.02 and Videoshop's 0.2.
    """
    return torch.exp(log_mean + log_std * torch.randn(n, generator=generator))


def edm_loss_weight(sigma: torch.Tensor, sigma_data: float = 1.0) -> torch.Tensor:
    """lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 (Karras et al. 2022, Table 1)."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def denoiser_loss(unet, x0: torch.Tensor, cond_latent: torch.Tensor, image_embeds: torch.Tensor,
                  time_ids: torch.Tensor, sigma: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """EDM training loss of SVD's UNet (v-prediction): E[ lambda(sigma) ||D(x0 + sigma n; sigma) - x0||^2 ].

    x0 (B, F, C, h, w) scaled video latents; cond_latent (B, C, h, w) unscaled noise-augmented first-frame
    latent, repeated over F and concatenated along channels; image_embeds (B, 1, D); time_ids (B, 3); sigma (B,).
    D = c_skip x + c_out F_theta(c_in x; c_noise) with SVD's coefficients (videoshop.edm.edm_coefficients).
    """
    f = x0.shape[1]
    s = sigma.view(-1, 1, 1, 1, 1)
    x = x0 + s * torch.randn(x0.shape, generator=generator).to(x0.device)  # drawn on the CPU: same stream anywhere
    c = edm_coefficients(s)
    c_skip, c_out, c_in, c_noise = c.c_skip, c.c_out, c.c_in, c.c_noise.reshape(-1)
    inp = torch.cat([c_in * x, cond_latent[:, None].expand(-1, f, -1, -1, -1)], dim=2)
    out = unet(inp, c_noise, encoder_hidden_states=image_embeds, added_time_ids=time_ids, return_dict=False)[0]
    d = c_skip * x + c_out * out
    per_sample = ((d - x0) ** 2).mean(dim=(1, 2, 3, 4))
    return (edm_loss_weight(sigma) * per_sample).mean()


def drop_conditions(cond_latent: torch.Tensor, image_embeds: torch.Tensor, generator: torch.Generator,
                    p: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Classifier-free-guidance dropout: zero each condition per sample with probability ``p`` (SVD's ucg)."""
    b = cond_latent.shape[0]
    keep_lat = (torch.rand(b, generator=generator) >= p).float().view(b, 1, 1, 1).to(cond_latent.device)
    keep_emb = (torch.rand(b, generator=generator) >= p).float().view(b, 1, 1).to(image_embeds.device)
    return cond_latent * keep_lat, image_embeds * keep_emb


@torch.no_grad()
def noisy_first_frame_latents(vae, first_frames: torch.Tensor, noise_aug: torch.Tensor,
                              generator: torch.Generator) -> torch.Tensor:
    """SVD's concat condition for a batch: VAE mode of (frame + noise_aug * N(0, I)), unscaled, (B, C, h, w)."""
    noise = torch.randn(first_frames.shape, generator=generator).to(first_frames.device)
    aug = noise_aug.to(first_frames.device).view(-1, 1, 1, 1)
    return vae.encode(first_frames + aug * noise).latent_dist.mode()


@torch.no_grad()
def image_embeddings(image_encoder, feature_extractor, first_frames: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """CLIP image embeddings (N, 1, D) of clean first frames in [-1, 1], as the pipeline computes them."""
    return torch.cat([clip_image_embeddings(image_encoder, feature_extractor, first_frames[i : i + chunk])
                      for i in range(0, first_frames.shape[0], chunk)])


@torch.no_grad()
def ema_update(ema, model, decay: float) -> None:
    """Exponential moving average of the weights (the weights that ship): ema = decay ema + (1 - decay) model,
    as one multi-tensor op per step (the same per-element arithmetic as a loop of ``mul_`` / ``add_``)."""
    ema_params = list(ema.parameters())
    torch._foreach_mul_(ema_params, decay)
    torch._foreach_add_(ema_params, [p.detach() for p in model.parameters()], alpha=1 - decay)
