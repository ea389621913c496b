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
    ``nfe`` counts UNet evaluations (a CFG batch counts once, as one forward pass). ``cfg_batch=False`` runs the
    unconditional and conditional halves as two passes of batch 1 instead (less activation memory; nfe counts 1 per
    step either way, so it stays comparable). ``device`` is where the UNet runs (default: where its weights are; with
    model offloading the weights move there only for the UNet's stage).
    """

    def __init__(self, unet, image_embeddings: torch.Tensor, image_latents: torch.Tensor, time_ids: torch.Tensor,
                 guidance: Optional[torch.Tensor] = None, cfg_batch: bool = True,
                 device: Optional[torch.device] = None):
        self.unet = unet
        self.cfg = guidance is not None and bool((guidance > 1.0).any())
        self.cfg_batch = cfg_batch
        self.device = device if device is not None else unet.device
        dev, dt = self.device, unet.dtype
        emb, lat, ids = image_embeddings.to(dev, dt), image_latents.to(dev, dt), time_ids.to(dev, dt)
        if self.cfg:
            emb, lat, ids = (torch.cat([torch.zeros_like(emb), emb]), torch.cat([torch.zeros_like(lat), lat]),
                             torch.cat([ids, ids]))
            self.guidance = guidance.to(dev, torch.float32)
        self.emb, self.lat, self.ids = emb, lat, ids
        self.nfe = 0

    def _unet(self, x_in: torch.Tensor, lat: torch.Tensor, emb: torch.Tensor, ids: torch.Tensor,
              timestep: torch.Tensor) -> torch.Tensor:
        return self.unet(torch.cat([x_in, lat], dim=2), timestep, encoder_hidden_states=emb, added_time_ids=ids,
                         return_dict=False)[0].float()

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        c = edm_coefficients(sigma)
        x_in = (x * c.c_in).to(self.device, self.unet.dtype)
        timestep = torch.tensor([c.c_noise], device=self.device, dtype=self.unet.dtype)
        if not self.cfg:
            out = self._unet(x_in, self.lat, self.emb, self.ids, timestep)
        elif self.cfg_batch:
            uncond, cond = self._unet(torch.cat([x_in, x_in]), self.lat, self.emb, self.ids, timestep).chunk(2)
            out = uncond + self.guidance * (cond - uncond)
        else:  # two passes: [unconditional], [conditional]
            halves = [self._unet(x_in, lat, emb, ids, timestep)
                      for lat, emb, ids in zip(self.lat.chunk(2), self.emb.chunk(2), self.ids.chunk(2))]
            out = halves[0] + self.guidance * (halves[1] - halves[0])
        self.nfe += 1
        return out.to(x.device)
