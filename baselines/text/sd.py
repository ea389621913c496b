"""Small helpers over Stable Diffusion components: prompt embeddings, VAE encode/decode of frames, depth maps,
and a counter of network evaluations (NFE)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from videoshop.video_io import resize_video

Tensor = torch.Tensor


class NFECounter:
    """Counts network passes per image-sized input: a UNet call on a batch of B images counts B (so CFG's two
    halves count 2, as separate passes do in the official codes); ``add(name, n)`` keeps a breakdown."""

    def __init__(self) -> None:
        self.by_name: dict[str, int] = {}

    def add(self, name: str, n: int) -> None:
        self.by_name[name] = self.by_name.get(name, 0) + int(n)

    @property
    def total(self) -> int:
        return sum(self.by_name.values())


@torch.no_grad()
def encode_prompts(tokenizer, text_encoder, prompts: Sequence[str], device) -> Tensor:
    """CLIP text embeddings (last hidden state) of prompts padded to the tokenizer's max length (77), as SD's
    pipelines and the official codes do."""
    ids = tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids.to(device)
    return text_encoder(ids)[0]


def frames_to_tensor(frames: np.ndarray, device, dtype) -> Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, H, W) in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).to(device=device, dtype=torch.float32)
    return (x / 127.5 - 1.0).to(dtype)


@torch.no_grad()
def vae_encode(vae, images: Tensor, batch_size: int = 8) -> Tensor:
    """Latents = posterior mean * scaling_factor (Pix2Video and RAVE use the mean, not a sample)."""
    out = [vae.encode(chunk).latent_dist.mean for chunk in images.split(batch_size)]
    return torch.cat(out) * vae.config.scaling_factor


def to_uint8(images: Tensor, rounding: str = "round") -> Tensor:
    """(..., 3, H, W) in [-1, 1] -> uint8 levels. ``round``: round((x + 1) * 127.5) (the project's convention);
    ``floor``: floor(clamp(x / 2 + 0.5, 0, 1) * 255), numpy's ``astype(np.uint8)`` truncation as in Pix2Video's
    ``latent2image`` (and the prompt-to-prompt code family), on average half a level darker."""
    x = images.float()
    if rounding == "round":
        return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    if rounding == "floor":
        return ((x / 2 + 0.5).clamp(0, 1) * 255).floor().to(torch.uint8)
    raise ValueError(f"uint8 rounding={rounding!r}: expected round or floor")


@torch.no_grad()
def vae_decode(vae, latents: Tensor, batch_size: int = 8, rounding: str = "round") -> np.ndarray:
    """Latents -> (T, H, W, 3) uint8 (decode, then ``to_uint8`` with ``rounding``)."""
    out = [vae.decode(chunk / vae.config.scaling_factor).sample for chunk in latents.split(batch_size)]
    return to_uint8(torch.cat(out), rounding).permute(0, 2, 3, 1).cpu().numpy()


RESIZE_FILTERS = ("antialias_bilinear", "pil_bicubic", "pil_lanczos")


def resize_frames(frames: np.ndarray, height: int, width: int, filter: str = "antialias_bilinear") -> np.ndarray:
    """Resize (T, H, W, 3) uint8 frames, aspect not kept. ``antialias_bilinear``: the project's video resize;
    ``pil_bicubic``: ``PIL.Image.resize`` with its default filter (bicubic, antialiased when shrinking), as
    Pix2Video's ``load_512`` does; ``pil_lanczos``: ``PIL.Image.resize(..., LANCZOS)``, as AnyV2V's
    ``convert_video_to_frames`` and its edited-first-frame loading do."""
    if filter not in RESIZE_FILTERS:
        raise ValueError(f"resize filter={filter!r}: expected one of {RESIZE_FILTERS}")
    if frames.shape[1:3] == (height, width):
        return frames
    if filter in ("pil_bicubic", "pil_lanczos"):
        from PIL import Image

        resample = Image.BICUBIC if filter == "pil_bicubic" else Image.LANCZOS
        return np.stack([np.asarray(Image.fromarray(f).resize((width, height), resample=resample)) for f in frames])
    return resize_video(frames, height, width)


def short_side_center_crop(frames: np.ndarray, height: int, width: int) -> Tensor:
    """FateZero's frame preparation (data/dataset.py ``transform``): uint8 frames -> float [-1, 1] (x / 255 * 2 - 1),
    short side scaled to the target (antialiased bilinear on the float frames, long side int(scale * long)), then a
    centre crop: (T, 3, height, width) float32, never rounded back to uint8."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div(255) * 2 - 1
    h, w = x.shape[-2:]
    scale = max(height / h, width / w)  # cover the target (square targets: the short side becomes the side)
    size = (height, int(scale * w)) if height / h >= width / w else (int(scale * h), width)
    x = F.interpolate(x, size=size, mode="bilinear", antialias=True)
    top, left = (x.shape[-2] - height) // 2, (x.shape[-1] - width) // 2
    return x[..., top:top + height, left:left + width]


@torch.no_grad()
def predicted_depth(estimator, processor, frames: np.ndarray, device) -> Tensor:
    """The depth estimator's ``predicted_depth`` per frame (T, h, w) float32, at the estimator's output size."""
    from PIL import Image

    dev_dtype = next(estimator.parameters()).dtype
    pv = processor(images=[Image.fromarray(f) for f in frames], return_tensors="pt").pixel_values
    return estimator(pv.to(device=device, dtype=dev_dtype)).predicted_depth.float()


def depth_condition(depth: Tensor, size: tuple[int, int], mode: str = "bilinear") -> Tensor:
    """Depth resized to the latent size and min-max normalised per frame to [-1, 1]: (T, 1, h, w).

    Pix2Video (file_utils.py): bilinear; diffusers' Depth2Img pipeline: bicubic."""
    d = F.interpolate(depth[:, None], size=size, mode=mode, align_corners=False)
    lo = d.amin(dim=(1, 2, 3), keepdim=True)
    hi = d.amax(dim=(1, 2, 3), keepdim=True)
    return 2.0 * (d - lo) / (hi - lo).clamp_min(1e-8) - 1.0


def zoe_control_image(depth: np.ndarray, lo_percentile: float = 2.0, hi_percentile: float = 85.0) -> np.ndarray:
    """ControlNet depth image from a ZoeDepth map (the ControlNet annotator's ``ZoeDetector``): normalise with the
    2nd/85th percentiles, invert (near = bright), uint8, grayscale replicated to 3 channels: (h, w, 3) uint8."""
    lo, hi = np.percentile(depth, lo_percentile), np.percentile(depth, hi_percentile)
    d = (depth - lo) / max(hi - lo, 1e-8)
    d = 1.0 - d
    img = (d * 255.0).clip(0, 255).astype(np.uint8)
    return np.repeat(img[..., None], 3, axis=-1)

