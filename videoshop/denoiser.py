"""SVD's UNet wrapped once as the EDM network F(x, sigma) (paper Eq. 3), with image conditioning and CFG."""

from __future__ import annotations

from typing import Optional

import torch

from .edm import edm_coefficients


class SVDNetwork:
    """F_theta(c_in x; c_noise) for (B, F, C, h, w) latents, conditioned on one image.

    ``image_latents`` (B, F, C, h, w) are concatenated to the scaled input along channels, as SVD does;
    with ``guidance`` (1, F, 1, 1, 1) and any scale > 1, classifier-free guidance runs the UNet on a batch of
    [unconditional (zeroed image embedding and latents), conditional] and combines F_u + g (F_c - F_u).
    ``nfe`` counts UNet evaluations (a CFG batch counts once, as one forward pass).
    """

    def __init__(self, unet, image_embeddings: torch.Tensor, image_latents: torch.Tensor, time_ids: torch.Tensor,
                 guidance: Optional[torch.Tensor] = None):
        self.unet = unet
        self.cfg = guidance is not None and bool((guidance > 1.0).any())
        dev, dt = unet.device, unet.dtype
        emb, lat, ids = image_embeddings.to(dev, dt), image_latents.to(dev, dt), time_ids.to(dev, dt)
        if self.cfg:
            emb, lat, ids = (torch.cat([torch.zeros_like(emb), emb]), torch.cat([torch.zeros_like(lat), lat]),
                             torch.cat([ids, ids]))
            self.guidance = guidance.to(dev, torch.float32)
        self.emb, self.lat, self.ids = emb, lat, ids
        self.nfe = 0

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        c = edm_coefficients(sigma)
        x_in = (x * c.c_in).to(self.unet.device, self.unet.dtype)
        if self.cfg:
            x_in = torch.cat([x_in, x_in])
        model_input = torch.cat([x_in, self.lat], dim=2)
        timestep = torch.tensor([c.c_noise], device=self.unet.device, dtype=self.unet.dtype)
        out = self.unet(model_input, timestep, encoder_hidden_states=self.emb, added_time_ids=self.ids,
                        return_dict=False)[0].float()
        self.nfe += 1
        if self.cfg:
            uncond, cond = out.chunk(2)
            out = uncond + self.guidance * (cond - uncond)
        return out.to(x.device)
