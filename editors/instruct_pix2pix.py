"""InstructPix2Pix (Brooks, Holynski, Efros, CVPR 2023): Stable Diffusion 1.5 with the input image's latents
concatenated to the noise (8 UNet input channels), classifier-free guidance on text and image (Eq. 3 of the paper:
``guidance_scale`` s_T, ``image_guidance_scale`` s_I), through diffusers' ``StableDiffusionInstructPix2PixPipeline``
at the input's size (multiples of 8). Weights: ``timbrooks/instruct-pix2pix``."""

from __future__ import annotations

import torch
from PIL import Image

from .diffusers_editor import DiffusersEditor


def tiny_instruct_pix2pix(seed: int = 0):
    """The real pipeline class on tiny random modules (UNet with 8 input channels, SD's 8x VAE, a 2-layer CLIP text
    encoder, an offline character-level CLIP tokenizer), Euler ancestral as the released model_index has it."""
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline

    from baselines.text.models import build_random_sd

    c = build_random_sd("tiny", in_channels=8, seed=seed)
    scheduler = EulerAncestralDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    return StableDiffusionInstructPix2PixPipeline(vae=c.vae, text_encoder=c.text_encoder, tokenizer=c.tokenizer,
                                                  unet=c.unet, scheduler=scheduler, safety_checker=None,
                                                  feature_extractor=None, requires_safety_checker=False)


class InstructPix2PixEditor(DiffusersEditor):
    pipeline_class = "diffusers.StableDiffusionInstructPix2PixPipeline"
    cuda_dtype = torch.float16

    def build_tiny(self, seed: int = 0):
        return tiny_instruct_pix2pix(seed)

    def load_pretrained(self):
        pipe = super().load_pretrained()
        if getattr(pipe, "safety_checker", None) is not None:  # research use: black images would read as edits
            pipe.safety_checker = None
        return pipe

    def call(self, image: Image.Image, prompt: str, generator: torch.Generator) -> Image.Image:
        w, h = image.size
        image = image.resize((w - w % 8, h - h % 8), Image.BICUBIC) if (w % 8 or h % 8) else image
        return self.pipe(prompt, image=image, generator=generator, **self.options).images[0]
