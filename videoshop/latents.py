"""Latent normalisation before inversion and rescaling after generation (paper Sec. 3.6, Eq. 8).

Latents are (B, F, C, h, w) as in diffusers' SVD pipeline. Statistics use torch's unbiased std, like the
authors' code.
"""

from __future__ import annotations

import torch

_NORM_EPS = 1e-6


def _stat_dims(granularity: str) -> tuple[int, ...]:
    """Reduction dims for statistics 'per frame' (over C, h, w) or 'per channel' (over F, h, w)."""
    if granularity == "frame":
        return (2, 3, 4)
    if granularity == "channel":
        return (1, 3, 4)
    raise ValueError(f"normalisation granularity {granularity!r}: expected 'frame', 'channel' or 'none'")


def normalize_latents(x_in: torch.Tensor, granularity: str = "frame", center: bool = True) -> torch.Tensor:
    """Eq. 8 (left): x_hat_0 = x_in / sigma_in, before inversion.

    The paper normalises per channel to unit std (statistics across all frames, no centring); the authors' code
    subtracts the mean and divides by (std + 1e-6) per frame. ``granularity="none"`` is the '- Norm.' ablation.
    """
    if granularity == "none":
        return x_in
    dims = _stat_dims(granularity)
    x = x_in - x_in.mean(dim=dims, keepdim=True) if center else x_in
    return x / (x_in.std(dim=dims, keepdim=True) + _NORM_EPS)


_RESCALE_FLOOR = 1e-12


def channel_stats_of_frame0(latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of frame 0 of (B, F, C, h, w) latents, shaped (B, 1, C, 1, 1)."""
    frame0 = latents[:, :1]
    return frame0.mean(dim=(3, 4), keepdim=True), frame0.std(dim=(3, 4), keepdim=True)


def rescale_latents(x0: torch.Tensor, image_latent: torch.Tensor, formula: str = "code") -> torch.Tensor:
    """Eq. 8 (right): map the per-channel statistics of output frame 0 onto those of the edited image's latent.

    ``formula="code"``: x_out = (x0 - mu_0) / sigma_0 * sigma_img + mu_img (authors' code).
    ``formula="paper"``: x_out = sigma_img / sigma_0 * (x0 - mu_0 + mu_img) (Eq. 8 as printed).
    ``image_latent`` is the scaled VAE latent of the edited image, (B, 1, C, h, w).
    A flat channel of frame 0 (sigma_0 = 0) is divided by a floor of 1e-12 instead of 0 (its centred values are 0,
    so it takes the image's mean) rather than turning the video into inf; any sigma_0 above the floor is untouched.
    """
    mu_0, sigma_0 = channel_stats_of_frame0(x0)
    sigma_0 = sigma_0.clamp_min(_RESCALE_FLOOR)
    mu_img, sigma_img = channel_stats_of_frame0(image_latent)
    if formula == "code":
        return (x0 - mu_0) / sigma_0 * sigma_img + mu_img
    if formula == "paper":
        return sigma_img / sigma_0 * (x0 - mu_0 + mu_img)
    raise ValueError(f"rescale formula {formula!r}: expected 'code' or 'paper'")
