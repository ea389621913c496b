"""Qwen-Image-Edit (Qwen team, 2025, arXiv:2508.02324): the 20B Qwen-Image MMDiT conditioned on Qwen2.5-VL's
reading of the input image and the instruction (semantic) and on the input's VAE latents (appearance), with true
classifier-free guidance (``true_cfg_scale``), through diffusers' ``QwenImageEditPipeline``; it edits at about
1 MP of the input's aspect ratio, the result comes back at the source frame's size. Weights: ``Qwen/Qwen-Image-Edit``."""

from __future__ import annotations

import torch
from PIL import Image

from .diffusers_editor import DiffusersEditor, seeded, size_multiple_of

from videoshop.tokenizers import QWEN_SPECIAL as SPECIAL, char_level_tokenizer


def tiny_qwen_tokenizer():
    """A real ``Qwen2TokenizerFast`` over a character-level vocabulary with Qwen's chat and vision special tokens
    (each one id, as in the released tokenizer), built offline."""
    from transformers import Qwen2TokenizerFast

    fast = Qwen2TokenizerFast(tokenizer_object=char_level_tokenizer(SPECIAL), unk_token="<unk>",
                              pad_token="<|endoftext|>", eos_token="<|im_end|>", bos_token=None)
    fast.add_special_tokens({"additional_special_tokens": list(SPECIAL[1:])})
    return fast


def tiny_qwen_image_edit(seed: int = 0):
    """The real pipeline class on tiny random modules: a 1-layer QwenImage transformer, the Qwen-Image VAE at 8
    channels, a 1-layer Qwen2.5-VL (text 32 wide, vision 32 wide with 14 px patches merged 2x2) whose processor
    keeps the image small (at most 56 x 56 px for the language model), the character-level tokenizer above."""
    from diffusers import (AutoencoderKLQwenImage, FlowMatchEulerDiscreteScheduler, QwenImageEditPipeline,
                           QwenImageTransformer2DModel)
    from transformers import (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessor,
                              Qwen2VLProcessor, Qwen2VLVideoProcessor)

    tok = tiny_qwen_tokenizer()
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL}
    config = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                          "mrope_section": [1, 1, 2]},
                         bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"]),
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                           fullatt_block_indexes=[0]),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    text_encoder = seeded(seed, lambda: Qwen2_5_VLForConditionalGeneration(config))
    small = dict(min_pixels=28 * 28, max_pixels=56 * 56)
    processor = Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(**small), tokenizer=tok,
                                 video_processor=Qwen2VLVideoProcessor(**small))
    transformer = seeded(seed + 1, lambda: QwenImageTransformer2DModel(
        patch_size=2, in_channels=16, out_channels=4, num_layers=1, attention_head_dim=16, num_attention_heads=2,
        joint_attention_dim=32, axes_dims_rope=(4, 6, 6)))
    vae = seeded(seed + 2, lambda: AutoencoderKLQwenImage(base_dim=8, z_dim=4, dim_mult=[1, 2, 4, 4], num_res_blocks=1,
                                                          temperal_downsample=[False, True, True],
                                                          latents_mean=[0.0] * 4, latents_std=[1.0] * 4))
    return QwenImageEditPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder,
                                 tokenizer=tok, processor=processor, transformer=transformer)


class QwenImageEditor(DiffusersEditor):
    pipeline_class = "diffusers.QwenImageEditPipeline"
    cuda_dtype = torch.bfloat16

    build_tiny = staticmethod(tiny_qwen_image_edit)

    def call(self, image: Image.Image, prompt: str, generator: torch.Generator) -> Image.Image:
        kw = dict(self.options)
        if self.weights == "tiny":  # the stand-in generates at the frame's own size (multiples of 16)
            w, h = size_multiple_of(image, 16)
            kw.update(height=h, width=w, max_sequence_length=512)
        kw.setdefault("negative_prompt", " ")  # true CFG needs a negative prompt (the release's examples use " ")
        return self.pipe(image=image, prompt=prompt, generator=generator, **kw).images[0]
