"""InstructPix2Pix (Brooks, Holynski, Efros, CVPR 2023): Stable Diffusion 1.5 with the input image's latents
concatenated to the noise (8 UNet input channels), classifier-free guidance on text and image (Eq. 3 of the paper:
``guidance_scale`` s_T, ``image_guidance_scale`` s_I), through diffusers' ``StableDiffusionInstructPix2PixPipeline``
at the input's size (multiples of 8). Weights: ``timbrooks/instruct-pix2pix``."""

from __future__ import annotations

import torch
from PIL import Image

from .diffusers_editor import DiffusersEditor, seeded, size_multiple_of, tiny_clip_text_encoder, tiny_vae


def tiny_instruct_pix2pix(seed: int = 0):
    """The real pipeline class on tiny random modules (a 2-level UNet with InstructPix2Pix's 8 input channels: noise
    latents and the input image's latents; SD's 8x VAE; a 2-layer CLIP text encoder; the offline character-level
    CLIP tokenizer), Euler ancestral as the released model_index has it."""
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline, UNet2DConditionModel

    from videoshop.tokenizers import tiny_clip_tokenizer

    unet = seeded(seed, lambda: UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, in_channels=8, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32, sample_size=8))
    scheduler = EulerAncestralDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    return StableDiffusionInstructPix2PixPipeline(vae=seeded(seed + 1, tiny_vae),
                                                  text_encoder=seeded(seed + 2, tiny_clip_text_encoder),
                                                  tokenizer=tiny_clip_tokenizer(), unet=unet, scheduler=scheduler,
                                                  safety_checker=None, feature_extractor=None,
                                                  requires_safety_checker=False)


class InstructPix2PixEditor(DiffusersEditor):
    pipeline_class = "diffusers.StableDiffusionInstructPix2PixPipeline"
    cuda_dtype = torch.float16

    build_tiny = staticmethod(tiny_instruct_pix2pix)

    def load_pretrained(self):
        pipe = super().load_pretrained()
        if getattr(pipe, "safety_checker", None) is not None:  # research use: black images would read as edits
            pipe.safety_checker = None
        return pipe

    def call(self, image: Image.Image, prompt: str, generator: torch.Generator) -> Image.Image:
        size = size_multiple_of(image, 8)
        image = image.resize(size, Image.BICUBIC) if size != image.size else image
        return self.pipe(prompt, image=image, generator=generator, **self.options).images[0]
