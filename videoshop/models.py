"""Model loading: real SVD weights (hub id or local path), tiny stand-ins and full-size random-weight models.

Kinds (``model.kind``; the mappings are declared in videoshop/families.py's ``svd`` entry):
- ``pretrained``: ``from_pretrained`` of an SVD checkpoint (hub id such as stabilityai/stable-video-diffusion-img2vid
  or a local directory ``path``). Missing weights fail at once with one line naming the key to set.
- ``tiny``: the real SVD component classes at tiny sizes, random weights from a fixed seed, built in code.
- ``random``: the full-size SVD architecture with random weights (speed and memory on a GPU, no download).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from . import _compat  # noqa: F401  (torchvision shim before diffusers/transformers)
from .loading import (MissingWeightsError, _repo_relative, downloads_possible,  # noqa: F401  (re-exported)
                      resolve_device, resolve_dtype, resolve_pretrained)

import torch

from .families import family_of


OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def svd_scheduler_config() -> dict[str, Any]:
    """The EulerDiscreteScheduler config shipped with SVD checkpoints."""
    return dict(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, interpolation_type="linear",
        num_train_timesteps=1000, prediction_type="v_prediction", sigma_max=700.0, sigma_min=0.002,
        steps_offset=1, timestep_spacing="leading", timestep_type="continuous", use_karras_sigmas=True,
    )


def _scheduler():
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(**svd_scheduler_config())


def _feature_extractor():
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(
        crop_size={"height": 224, "width": 224}, size={"shortest_edge": 224}, do_center_crop=True,
        do_normalize=True, do_resize=True, do_rescale=True, image_mean=OPENAI_CLIP_MEAN, image_std=OPENAI_CLIP_STD,
    )


def tiny_component_configs() -> dict[str, dict[str, Any]]:
    """Configs of the tiny stand-in: same classes as SVD, a VAE with SVD's 8x downsampling, a 2-level UNet."""
    return {
        "unet": dict(
            block_out_channels=(32, 64), layers_per_block=1, in_channels=8, out_channels=4,
            down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
            up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
            cross_attention_dim=32, num_attention_heads=(2, 4), addition_time_embed_dim=32,
            projection_class_embeddings_input_dim=96, num_frames=14,
        ),
        "vae": dict(
            block_out_channels=(32, 32, 32, 32), down_block_types=("DownEncoderBlock2D",) * 4,
            layers_per_block=1, latent_channels=4, in_channels=3, out_channels=3,
        ),
        "image_encoder": dict(
            hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=2, patch_size=32,
            image_size=224, projection_dim=32,
        ),
    }


def svd_component_configs(num_frames: int = 14) -> dict[str, dict[str, Any]]:
    """Configs of the full-size SVD img2vid (-xt: num_frames 25) architecture."""
    return {
        "unet": dict(num_frames=num_frames),  # diffusers' defaults are SVD's UNet
        "vae": dict(
            block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
            layers_per_block=2, latent_channels=4, sample_size=768, scaling_factor=0.18215, force_upcast=True,
        ),
        "image_encoder": dict(
            hidden_size=1280, intermediate_size=5120, num_attention_heads=16, num_hidden_layers=32, patch_size=14,
            image_size=224, projection_dim=1024, hidden_act="gelu",
        ),
    }


def build_random_components(configs: dict[str, dict[str, Any]], seed: int = 0, dtype=torch.float32) -> dict[str, Any]:
    """Instantiate the five SVD pipeline components from configs with weights drawn from ``seed``."""
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    unet = UNetSpatioTemporalConditionModel(**configs["unet"])
    torch.manual_seed(seed + 1)
    vae = AutoencoderKLTemporalDecoder(**configs["vae"])
    torch.manual_seed(seed + 2)
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**configs["image_encoder"]))
    comps = dict(unet=unet, vae=vae, image_encoder=image_encoder)
    for m in comps.values():
        m.eval()
        if dtype != torch.float32:
            m.to(dtype)
    comps.update(scheduler=_scheduler(), feature_extractor=_feature_extractor())
    return comps


def load_pretrained_components(source: str, dtype=torch.float32, variant: Optional[str] = None,
                               revision: Optional[str] = None) -> dict[str, Any]:
    """``from_pretrained`` each SVD component from a hub id (at ``revision``) or local directory."""
    from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, UNetSpatioTemporalConditionModel
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    rev = dict(revision=revision) if revision else {}
    kw = dict(torch_dtype=dtype, variant=variant, **rev)
    return dict(
        unet=UNetSpatioTemporalConditionModel.from_pretrained(source, subfolder="unet", **kw).eval(),
        vae=AutoencoderKLTemporalDecoder.from_pretrained(source, subfolder="vae", **kw).eval(),
        image_encoder=CLIPVisionModelWithProjection.from_pretrained(source, subfolder="image_encoder", dtype=dtype,
                                                                    **rev).eval(),
        scheduler=EulerDiscreteScheduler.from_pretrained(source, subfolder="scheduler", **rev),
        feature_extractor=CLIPImageProcessor.from_pretrained(source, subfolder="feature_extractor", **rev),
    )


def tiny_components(*, path: Optional[str] = None, seed: int = 0, dtype: torch.dtype = torch.float32,
                    **_: Any) -> dict[str, Any]:
    """model.kind=tiny: the tiny random SVD (``tiny_component_configs``), or a tiny checkpoint saved at ``path``."""
    if path:
        return load_pretrained_components(resolve_pretrained(None, path), dtype)
    return build_random_components(tiny_component_configs(), seed=seed, dtype=dtype)


def random_svd_components(*, seed: int = 0, num_frames: int = 14, dtype: torch.dtype = torch.float32,
                          **_: Any) -> dict[str, Any]:
    """model.kind=random: full-size SVD with random weights (for timing and memory without a download)."""
    return build_random_components(svd_component_configs(num_frames), seed=seed, dtype=dtype)


def pretrained_components(*, hub_id: Optional[str] = None, path: Optional[str] = None,
                          dtype: torch.dtype = torch.float32, variant: Optional[str] = None,
                          allow_download: bool = True, revision: Optional[str] = None, **_: Any) -> dict[str, Any]:
    """model.kind=pretrained: an SVD checkpoint from ``path`` or the hub at ``revision`` (fails fast when it cannot
    be had)."""
    rev = None if path else revision  # a local directory is what it is
    return load_pretrained_components(resolve_pretrained(hub_id, path, allow_download, rev), dtype, variant, rev)


# model.kind -> the function that builds VideoshopPipeline's components (keyword arguments: hub_id, path, seed,
# num_frames, dtype, variant, allow_download; each takes what it needs). A new SVD-family kind is one entry here.
COMPONENT_BUILDERS: dict[str, Callable[..., dict[str, Any]]] = {
    "pretrained": pretrained_components, "tiny": tiny_components, "random": random_svd_components,
}


def load_components(kind: str, **kwargs: Any) -> dict[str, Any]:
    """Components for ``VideoshopPipeline`` by ``kind`` (a key of ``COMPONENT_BUILDERS``)."""
    if kind not in COMPONENT_BUILDERS:
        raise ValueError(f"model.kind={kind!r}: expected one of {', '.join(COMPONENT_BUILDERS)}")
    return COMPONENT_BUILDERS[kind](**kwargs)


def build_pipeline(model_cfg: dict[str, Any], device: str = "auto", runtime: Optional[dict[str, Any]] = None):
    """The Videoshop pipeline of a model mapping (a ``model`` config node, or ``videoshop.families.model_preset``)
    on ``device``, built by its family's ``build`` (videoshop/families.py; fails fast on missing weights), set up with
    the speed/memory options ``runtime`` (``videoshop.speed.RuntimeOptions`` fields, conf/runtime/*.yaml)."""
    return family_of(model_cfg).resolve("build")(model_cfg, device, runtime)


def build_svd_pipeline(model_cfg: dict[str, Any], device: str = "auto", runtime: Optional[dict[str, Any]] = None):
    """``build_pipeline`` of the SVD family: a ``VideoshopPipeline`` from ``COMPONENT_BUILDERS[model.kind]``."""
    from .pipeline import VideoshopPipeline
    from .speed import RuntimeOptions, apply_runtime_options

    options = RuntimeOptions.from_dict(dict(runtime or {}))
    dev = resolve_device(device)
    dtype = resolve_dtype(str(model_cfg.get("dtype", "auto")), dev)
    comps = load_components(
        model_cfg["kind"], hub_id=model_cfg.get("hub_id"), path=model_cfg.get("path"), seed=int(model_cfg.get("seed", 0)),
        num_frames=int(model_cfg.get("num_frames", 14)), dtype=dtype, variant=model_cfg.get("variant"),
        revision=model_cfg.get("revision"),
        allow_download=bool(model_cfg.get("allow_download", True)),
    )
    pipe = VideoshopPipeline(**comps)
    if options.offload == "model":  # weights stay on the CPU; each stage moves its modules to `dev` while it runs
        pipe.execution_device = dev
    else:
        pipe = pipe.to(dev)
    apply_runtime_options(pipe, options)
    if dev.type == "cpu":
        torch.set_num_threads(max(1, torch.get_num_threads()))
    return pipe
