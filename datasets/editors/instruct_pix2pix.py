"""InstructPix2Pix (Brooks, Holynski, Efros, CVPR 2023): Stable Diffusion 1.5 with the input image's latents
concatenated to the noise (8 UNet input channels), classifier-free guidance on text and image (Eq. 3 of the paper:
``guidance_scale`` s_T, ``image_guidance_scale`` s_I), through diffusers' ``StableDiffusionInstructPix2PixPipeline``
at the input's size (multiples of 8). Weights: ``timbrooks/instruct-pix2pix``."""

from __future__ import annotations

import torch
from PIL import Image

from .diffusers_editor import DiffusersEditor, seeded


TINY_TEXT_ENCODER = dict(vocab_size=514, hidden_size=32, intermediate_size=37, num_attention_heads=4,
                         num_hidden_layers=2, max_position_embeddings=77, bos_token_id=512, eos_token_id=513,
                         pad_token_id=513)  # the offline CLIP tokenizer's 514 ids


def tiny_sd_vae():
    """SD's AutoencoderKL layout (4 levels: 8x downsampling) at 32 channels."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=(32, 32, 32, 32), down_block_types=("DownEncoderBlock2D",) * 4,
                         up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=1, latent_channels=4,
                         norm_num_groups=32, scaling_factor=0.18215)


def tiny_clip_text_encoder():
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(**TINY_TEXT_ENCODER))


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
    return StableDiffusionInstructPix2PixPipeline(vae=seeded(seed + 1, tiny_sd_vae),
                                                  text_encoder=seeded(seed + 2, tiny_clip_text_encoder),
                                                  tokenizer=tiny_clip_tokenizer(), unet=unet, scheduler=scheduler,
                                                  safety_checker=None, feature_extractor=None,
                                                  requires_safety_checker=False)


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
