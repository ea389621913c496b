"""I2VGen-XL (Zhang et al. 2023, ``ali-vilab/i2vgen-xl``) components and conditioning for AnyV2V, as diffusers'
``I2VGenXLPipeline`` computes them, written as plain functions over the components (no pipeline object):

- ``I2VGenXLComponents``: ``I2VGenXLUNet`` + ``AutoencoderKL`` + CLIP text encoder/tokenizer + CLIP vision encoder
  (``CLIPVisionModelWithProjection``) and its ``CLIPImageProcessor``; ``load_i2vgen_components`` by ``weights``:
  pretrained (hub id / local path), tiny (random stand-ins of the same classes, tests) or random (full-size
  architecture, random weights, timing);
- the three conditions of one I2VGen-XL pass: text embeddings, the CLIP image embedding of the first frame
  (zeros for the unconditional half), and the first frame's VAE latent followed by the frame-position mask;
- ``v_to_eps``: the checkpoint is v-prediction (its DDIM config), the DDIM helpers in ddim.py work in eps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from .models import _seeded, check_weights, weights_load_error, resolve_source, text_encoder_config, tiny_clip_tokenizer, vae_config

Tensor = torch.Tensor

# The DDIM config of ali-vilab/i2vgen-xl's scheduler/ (v-prediction, cosine betas rescaled to zero terminal SNR,
# "leading" spacing with offset 1: 50 steps give 981, 961, ..., 1 as AnyV2V's "0 for 981, 3 for 921" comment says).
# Used for the tiny/random stand-ins; pretrained weights read the checkpoint's own scheduler config.
I2VGEN_SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="squaredcos_cap_v2",
                        clip_sample=False, set_alpha_to_one=True, steps_offset=1, timestep_spacing="leading",
                        prediction_type="v_prediction", rescale_betas_zero_snr=True)


@dataclass
class I2VGenXLComponents:
    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    image_encoder: Any
    feature_extractor: Any
    scheduler_config: dict
    weights: str = "tiny"

    def modules(self) -> list[torch.nn.Module]:
        return [self.unet, self.vae, self.text_encoder, self.image_encoder]

    def to(self, device, dtype: Optional[torch.dtype] = None) -> "I2VGenXLComponents":
        for m in self.modules():
            m.to(device)
            if dtype is not None and dtype != torch.float32:
                m.to(dtype)
        return self


# ------------------------------------------------------------------------------------------- architectures
def i2vgen_unet_config(size: str) -> dict[str, Any]:
    """``tiny``: the real block layout (4 levels, CrossAttn x3 + plain, 2 layers per block so that every decoder level
    has the three attentions AnyV2V injects into) at toy width; ``full``: diffusers' defaults = I2VGen-XL's UNet."""
    if size == "tiny":
        return dict(block_out_channels=(16, 32, 32, 32), layers_per_block=2, norm_num_groups=8,
                    cross_attention_dim=32, attention_head_dim=4, sample_size=8)
    return dict(sample_size=None)


def image_encoder_config(size: str) -> dict[str, Any]:
    """CLIPVisionConfig: tiny, or OpenCLIP ViT-H/14 (I2VGen-XL's image encoder, 1024-d projection)."""
    if size == "tiny":
        return dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=32,
                    patch_size=8, projection_dim=32)
    return dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16,
                image_size=224, patch_size=14, projection_dim=1024, hidden_act="gelu")


def build_random_i2vgen(size: str, seed: int = 0, device: str = "cpu") -> I2VGenXLComponents:
    """Random-weight I2VGen-XL components of the real classes (``size`` tiny or full) from ``seed``;
    ``device="meta"`` builds the full-size architecture without memory (parameter counts)."""
    from diffusers import AutoencoderKL, I2VGenXLUNet
    from transformers import (CLIPImageProcessor, CLIPTextConfig, CLIPTextModel, CLIPVisionConfig,
                              CLIPVisionModelWithProjection)

    with torch.device(device):
        unet = _seeded(seed, lambda: I2VGenXLUNet(**i2vgen_unet_config(size)))
        vae = _seeded(seed + 1, lambda: AutoencoderKL(**vae_config(size)))
        text = _seeded(seed + 2, lambda: CLIPTextModel(CLIPTextConfig(**text_encoder_config(size, sd2=True))))
        image = _seeded(seed + 3, lambda: CLIPVisionModelWithProjection(CLIPVisionConfig(**image_encoder_config(size))))
    side = 32 if size == "tiny" else 224
    proc = CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side})
    comps = I2VGenXLComponents(unet, vae, text, tiny_clip_tokenizer(), image, proc, dict(I2VGEN_SCHEDULER),
                               weights="tiny" if size == "tiny" else "random")
    for m in comps.modules():
        m.eval().requires_grad_(False)
    return comps


def load_i2vgen_components(weights: str, base: dict, *, allow_download: bool = True,
                           dtype: torch.dtype = torch.float32, seed: int = 0, key: str = "method") -> I2VGenXLComponents:
    """I2VGen-XL components by ``weights`` (pretrained | tiny | random); ``base`` = {hub_id, path, variant}. Missing
    real weights raise one-line MissingWeightsError naming ``<key>.base`` before anything heavy loads."""
    check_weights(weights, f"{key}.weights")
    if weights in ("tiny", "random"):
        return build_random_i2vgen("tiny" if weights == "tiny" else "full", seed=seed)
    from diffusers import AutoencoderKL, DDIMScheduler, I2VGenXLUNet
    from transformers import CLIPImageProcessor, CLIPTextModel, CLIPTokenizer, CLIPVisionModelWithProjection

    src = resolve_source(base.get("hub_id"), base.get("path"), f"{key}.base", allow_download, "model_index.json")
    kw = dict(torch_dtype=dtype, variant=base.get("variant"))
    try:
        comps = I2VGenXLComponents(
            unet=I2VGenXLUNet.from_pretrained(src, subfolder="unet", **kw),
            vae=AutoencoderKL.from_pretrained(src, subfolder="vae", **kw),
            text_encoder=CLIPTextModel.from_pretrained(src, subfolder="text_encoder", dtype=dtype),
            tokenizer=CLIPTokenizer.from_pretrained(src, subfolder="tokenizer"),
            image_encoder=CLIPVisionModelWithProjection.from_pretrained(src, subfolder="image_encoder", dtype=dtype),
            feature_extractor=CLIPImageProcessor.from_pretrained(src, subfolder="feature_extractor"),
            scheduler_config=dict(DDIMScheduler.load_config(src, subfolder="scheduler")), weights="pretrained")
    except (OSError, ValueError) as e:
        raise weights_load_error(f"{key}.base", src, e) from None
    for m in comps.modules():
        m.eval().requires_grad_(False)
    return comps


# ------------------------------------------------------------------------------------------- conditioning
def v_to_eps(v: Tensor, x: Tensor, alpha_t) -> Tensor:
    """eps = sqrt(abar_t) v + sqrt(1 - abar_t) x_t: the noise a v-prediction model implies (Salimans & Ho 2022),
    what diffusers' DDIM step computes as ``pred_epsilon`` for ``prediction_type="v_prediction"``."""
    a = torch.as_tensor(alpha_t, dtype=x.dtype, device=x.device)
    return a.sqrt() * v.to(x.dtype) + (1 - a).sqrt() * x


@torch.no_grad()
def encode_text(tokenizer, text_encoder, prompts: list[str], device, clip_skip: Optional[int] = 1) -> Tensor:
    """CLIP text embeddings padded to 77 tokens; ``clip_skip`` k >= 1: the hidden state k layers before the last,
    through the final LayerNorm (I2VGen-XL's pipeline methods, and AnyV2V's, default to clip_skip = 1)."""
    ids = tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids.to(device)
    if not clip_skip:
        return text_encoder(ids)[0]
    hidden = text_encoder(ids, output_hidden_states=True).hidden_states[-(int(clip_skip) + 1)]
    return getattr(text_encoder, "text_model", text_encoder).final_layer_norm(hidden)


def center_crop_wide(image, size: tuple[int, int]):
    """I2VGen-XL's ``_center_crop_wide``: box-resize the PIL image so that it covers ``size`` = (w, h) at the smaller
    scale factor (integer division of the sides, as the official transform), then crop the centre."""
    from PIL import Image

    scale = min(image.size[0] / size[0], image.size[1] / size[1])
    image = image.resize((round(image.width // scale), round(image.height // scale)), resample=Image.BOX)
    x1, y1 = (image.width - size[0]) // 2, (image.height - size[1]) // 2
    return image.crop((x1, y1, x1 + size[0], y1 + size[1]))


@torch.no_grad()
def clip_image_embedding(comps: I2VGenXLComponents, frame: np.ndarray, device) -> Tensor:
    """(1, 1, D) CLIP image embedding of a (H, W, 3) uint8 frame: centre crop to width x width, bilinear resize to
    the processor's crop size, CLIP normalisation, ``image_embeds`` (the pipeline's ``_encode_image``)."""
    from PIL import Image

    crop = comps.feature_extractor.crop_size
    img = center_crop_wide(Image.fromarray(frame), (frame.shape[1], frame.shape[1]))
    img = img.resize((crop["width"], crop["height"]), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    pv = comps.feature_extractor(images=x, do_normalize=True, do_center_crop=False, do_resize=False,
                                 do_rescale=False, return_tensors="pt").pixel_values
    enc = comps.image_encoder
    return enc(pv.to(device=device, dtype=next(enc.parameters()).dtype)).image_embeds[:, None]


def frame_position_latents(first: Tensor, num_frames: int) -> Tensor:
    """I2VGen-XL's image latents (1, C, F, h, w): the first frame's latent, then for frame f >= 1 a constant map of
    value f / (F - 1) (the pipeline's ``prepare_image_latents`` frame-position mask)."""
    lat = first[:, :, None]
    masks = [torch.full_like(lat, (f + 1) / (num_frames - 1)) for f in range(num_frames - 1)]
    return torch.cat([lat, *masks], dim=2)


@torch.no_grad()
def first_frame_latents(vae, frame: Tensor, num_frames: int, generator: Optional[torch.Generator]) -> Tensor:
    """VAE posterior *sample* of the (1, 3, H, W) first frame in [-1, 1] times the scaling factor (as the pipeline),
    drawn from ``generator``, expanded to the frame-position latents."""
    z = vae.encode(frame).latent_dist.sample(generator=generator) * vae.config.scaling_factor
    return frame_position_latents(z, num_frames)


@torch.no_grad()
def video_latents(vae, frames: Tensor, generator: Optional[torch.Generator], chunk: int = 8) -> Tensor:
    """(1, C, F, h, w) latents of (F, 3, H, W) frames in [-1, 1]: posterior samples x scaling factor, frame by frame
    batches (AnyV2V's ``encode_vae_video``)."""
    post = [vae.encode(c).latent_dist.sample(generator=generator) for c in frames.split(chunk)]
    return (torch.cat(post) * vae.config.scaling_factor)[None].permute(0, 2, 1, 3, 4)


@torch.no_grad()
def decode_video(vae, latents: Tensor, chunk: int = 1) -> np.ndarray:
    """(1, C, F, h, w) latents -> (F, H, W, 3) uint8 (the pipeline's ``decode_latents``, ``decode_chunk_size`` 1 as
    AnyV2V calls it; then its ``tensor2vid``: ``(x / 2 + 0.5).clamp(0, 1)``, times 255, rounded half to even, the
    very float arithmetic of diffusers' ``VaeImageProcessor.postprocess`` + ``numpy_to_pil``)."""
    z = latents[0].permute(1, 0, 2, 3) / vae.config.scaling_factor
    out = torch.cat([vae.decode(c.to(next(vae.parameters()).dtype)).sample for c in z.split(chunk)])
    img = ((out.float() / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
    return img.permute(0, 2, 3, 1).cpu().numpy()
