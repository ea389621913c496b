"""SVD's inputs: pixel preprocessing, CLIP image embeddings, VAE latents, added time ids, guidance scales.

These follow diffusers' StableVideoDiffusionPipeline and the authors' code: frames are resized to the model
resolution with antialiased bilinear interpolation (aspect ratio not preserved) and mapped to [-1, 1].
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as nnf


def to_model_pixels(frames, height: int, width: int) -> torch.Tensor:
    """uint8 frames (T, H, W, 3) (numpy or torch) -> float (T, 3, height, width) in [-1, 1]."""
    x = torch.as_tensor(np.ascontiguousarray(frames) if isinstance(frames, np.ndarray) else frames)
    if x.ndim == 3:
        x = x[None]
    if x.shape[-1] == 4:
        x = x[..., :3]
    x = x.permute(0, 3, 1, 2).float() / 127.5 - 1.0
    if x.shape[-2:] != (height, width):
        x = nnf.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return x


def original_pixels(frames) -> torch.Tensor:
    """uint8 frames (T, H, W, 3) -> float (T, 3, H, W) in [-1, 1] at their own size (the CLIP input before its resize)."""
    shape = np.asarray(frames).shape if not isinstance(frames, torch.Tensor) else tuple(frames.shape)
    return to_model_pixels(frames, shape[-3], shape[-2])


def to_uint8_frames(pixels: torch.Tensor) -> np.ndarray:
    """float (T, 3, H, W) in [-1, 1] -> uint8 (T, H, W, 3); non-finite values become 0."""
    x = torch.nan_to_num(pixels.float(), nan=-1.0, posinf=1.0, neginf=-1.0)
    x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def clip_image_embeddings(image_encoder, feature_extractor, pixels: torch.Tensor) -> torch.Tensor:
    """CLIP image embedding of (B, 3, H, W) pixels in [-1, 1]: resize to 224x224, CLIP-normalise -> (B, 1, D).

    Give the frame at its original resolution (``original_pixels``), not already resized to the video model's size:
    the authors' data module (sfanxiang/videoshop data_module.py, ``image1``) and diffusers' SVD pipeline resize the
    original image straight to 224x224 (bilinear, antialiased); resizing twice changes the embedding."""
    size = feature_extractor.crop_size if isinstance(feature_extractor.crop_size, dict) else {"height": 224, "width": 224}
    x = nnf.interpolate(pixels, size=(size["height"], size["width"]), mode="bilinear", align_corners=False, antialias=True)
    x = (x + 1) / 2
    mean = torch.tensor(feature_extractor.image_mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(feature_extractor.image_std, device=x.device).view(1, 3, 1, 1)
    x = ((x - mean) / std).to(device=image_encoder.device, dtype=image_encoder.dtype)
    return image_encoder(pixel_values=x).image_embeds.unsqueeze(1)


def vae_encode_mode(vae, pixels: torch.Tensor, chunk_size: Optional[int] = None) -> torch.Tensor:
    """Mode of the VAE posterior (not a sample), unscaled: (N, 3, H, W) -> (N, C, h, w)."""
    chunk = chunk_size or pixels.shape[0]
    out = [vae.encode(pixels[i : i + chunk].to(device=vae.device, dtype=vae.dtype)).latent_dist.mode()
           for i in range(0, pixels.shape[0], chunk)]
    return torch.cat(out)


def noise_augmented_image_latent(vae, image: torch.Tensor, noise_aug_strength: float,
                                 generator: Optional[torch.Generator]) -> torch.Tensor:
    """SVD's image condition: VAE mode of (image + noise_aug_strength * N(0, I)), unscaled, (1, C, h, w)."""
    noise = torch.randn(image.shape, generator=generator, dtype=torch.float32).to(image.device)
    return vae_encode_mode(vae, image + noise_aug_strength * noise)


def added_time_ids(fps: int, motion_bucket_id: int, noise_aug_strength: float, batch: int = 1) -> torch.Tensor:
    """SVD's micro-conditioning [fps - 1, motion_bucket_id, noise_aug_strength] (as its pipeline passes fps - 1)."""
    return torch.tensor([[fps - 1, motion_bucket_id, noise_aug_strength]], dtype=torch.float32).repeat(batch, 1)


def frame_guidance_scales(min_scale: float, max_scale: float, num_frames: int) -> torch.Tensor:
    """Per-frame CFG scales, linear from min to max (SVD's ramp; the authors use 4.0 -> 4.0), (1, F, 1, 1, 1)."""
    return torch.linspace(min_scale, max_scale, num_frames).view(1, num_frames, 1, 1, 1)
