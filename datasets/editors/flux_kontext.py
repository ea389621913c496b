"""FLUX.1 Kontext [dev] (Black Forest Labs, 2025, arXiv:2506.15742): a rectified-flow transformer that edits by
in-context conditioning (the input image's latent tokens appended to the noise tokens), guidance-distilled
(``guidance_scale`` is an embedded guidance value, 2.5 in the release's examples), through diffusers'
``FluxKontextPipeline``. The pipeline resizes the input to a Kontext training resolution near 1 MP of the same
aspect ratio; the result comes back at the source frame's size. Weights: ``black-forest-labs/FLUX.1-Kontext-dev``
(gated on the hub: accept the licence, then download it on a connected machine)."""

from __future__ import annotations

import torch
from PIL import Image

from .diffusers_editor import DiffusersEditor, seeded, size_multiple_of, tiny_clip_text_encoder, tiny_vae


def tiny_flux_kontext(seed: int = 0):
    """The real pipeline class on tiny random modules: a 1+1-block Flux transformer (16-dim heads, guidance embedding
    as in [dev]), an 8x AutoencoderKL with 4 latent channels (packed 2x2: 16 transformer channels), 2-layer CLIP and
    1-layer T5 text encoders with offline character-level tokenizers."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxKontextPipeline, FluxTransformer2DModel
    from transformers import T5Config, T5EncoderModel

    from videoshop.family_models import tiny_t5_tokenizer
    from videoshop.tokenizers import tiny_clip_tokenizer

    t5_tok = tiny_t5_tokenizer()
    transformer = seeded(seed, lambda: FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
        joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=True, axes_dims_rope=(4, 6, 6)))
    vae = seeded(seed + 1, lambda: tiny_vae(use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609,
                                            scaling_factor=1.5035))  # FLUX's VAE settings
    clip = seeded(seed + 2, tiny_clip_text_encoder)
    t5 = seeded(seed + 3, lambda: T5EncoderModel(T5Config(vocab_size=len(t5_tok), d_model=32, d_kv=8, d_ff=64,
                                                          num_layers=1, num_heads=4)))
    return FluxKontextPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=clip,
                               tokenizer=tiny_clip_tokenizer(), text_encoder_2=t5, tokenizer_2=t5_tok,
                               transformer=transformer)


class FluxKontextEditor(DiffusersEditor):
    pipeline_class = "diffusers.FluxKontextPipeline"
    cuda_dtype = torch.bfloat16

    build_tiny = staticmethod(tiny_flux_kontext)

    def call(self, image: Image.Image, prompt: str, generator: torch.Generator) -> Image.Image:
        """The output at the Kontext resolution nearest the frame's aspect ratio (the pipeline's own list; without
        height/width it would generate 1024 x 1024 whatever the input), or, for the stand-in, at the frame's size."""
        from diffusers.pipelines.flux.pipeline_flux_kontext import PREFERRED_KONTEXT_RESOLUTIONS

        kw, (w, h) = dict(self.options), image.size
        if self.weights == "tiny":  # the stand-in works at the frame's own size (multiples of 16), short prompts
            w, h = size_multiple_of(image, 16)
            image = image.resize((w, h), Image.BICUBIC)
            kw.update(max_area=w * h, _auto_resize=False, max_sequence_length=64)
        else:
            _, w, h = min((abs(w / h - pw / ph), pw, ph) for pw, ph in PREFERRED_KONTEXT_RESOLUTIONS)
        kw.setdefault("height", h)
        kw.setdefault("width", w)
        return self.pipe(image=image, prompt=prompt, generator=generator, **kw).images[0]
