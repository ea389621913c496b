"""The model-family registry: every image-to-video family Videoshop edits with, one entry each.

An entry names what builds the family (dotted paths, imported on use, or callables): its Videoshop pipeline class,
its components' configurations at a size (``tiny`` | ``full``) and the modules built from them (random weights, for
``model.kind=tiny|random``; ``pretrained`` loads the released checkpoint with the pipeline's ``from_pretrained``), the
scheduler class it samples and inverts with, and the model mappings of its released checkpoint and of its tiny
stand-in (``videoshop.models.MODEL_PRESETS``, which the one-video CLI uses; conf/model/*.yaml carries the same
values for Hydra runs). ``model.family`` names an entry; the config schema's choices are ``FAMILIES.names()``.
SVD is the ``svd`` entry; its components come from ``videoshop.models.COMPONENT_BUILDERS`` by ``model.kind``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

from .registry import Registry, load_object

Ref = Union[str, Callable[..., Any]]  # a dotted path or the object itself

# the tiny stand-in of every non-SVD family: 9 frames at 32 x 64, random weights, offline
TINY_PRESET = dict(kind="tiny", dtype="float32", num_frames=9, height=32, width=64, allow_download=False,
                   max_sequence_length=16)


@dataclass(frozen=True)
class ModelFamily:
    """``configs(size) -> {component: config}``; ``modules(configs) -> {component: module}``; ``scheduler``: the
    sampler class (built from ``configs['scheduler']``); ``preset``: the released checkpoint's model mapping (None:
    no preset); ``tiny``: values of its tiny preset beyond ``TINY_PRESET``; ``prompted``: it takes a text prompt."""

    name: str
    display: str
    pipeline: Ref
    configs: Optional[Ref] = None
    modules: Optional[Ref] = None
    scheduler: Optional[Ref] = None
    preset: Optional[dict[str, Any]] = None
    tiny: dict[str, Any] = field(default_factory=dict)
    prompted: bool = True

    def resolve(self, attr: str) -> Any:
        """The object ``attr`` names (imported if it is a dotted path)."""
        ref = getattr(self, attr)
        return load_object(ref) if isinstance(ref, str) else ref

    def presets(self) -> dict[str, dict[str, Any]]:
        """``{name: mapping}`` of its released checkpoint and ``{name}_tiny`` (families other than SVD)."""
        out = {}
        if self.preset is not None:
            out[self.name] = dict(name=self.name, family=self.name, kind="pretrained", **self.preset)
        if self.configs is not None:
            out[f"{self.name}_tiny"] = dict(name=f"{self.name}_tiny", family=self.name, **TINY_PRESET, **self.tiny)
        return out


FAMILIES: Registry[ModelFamily] = Registry("model family")

_FM, _VP = "diffusers.FlowMatchEulerDiscreteScheduler", "diffusers.CogVideoXDDIMScheduler"
_WAN = dict(pipeline="videoshop.flow_pipeline.WanVideoshopPipeline", modules="videoshop.flow_models.wan_modules",
            scheduler=_FM)
for _f in (
    ModelFamily("svd", "Stable Video Diffusion (EDM)", "videoshop.pipeline.VideoshopPipeline", prompted=False),
    ModelFamily("wan21_i2v", "Wan 2.1 I2V (flow)", configs="videoshop.flow_models.wan21_i2v_configs", **_WAN,
                preset=dict(hub_id="Wan-AI/Wan2.1-I2V-14B-480P-Diffusers", dtype="bfloat16", num_frames=81,
                            height=480, width=832, allow_download=True, max_sequence_length=512)),
    ModelFamily("wan22_i2v", "Wan 2.2 I2V-A14B (flow, two experts)", configs="videoshop.flow_models.wan22_i2v_configs",
                **_WAN, preset=dict(hub_id="Wan-AI/Wan2.2-I2V-A14B-Diffusers", dtype="bfloat16", num_frames=81,
                                    height=480, width=832, allow_download=True, max_sequence_length=512)),
    ModelFamily("wan22_ti2v", "Wan 2.2 TI2V-5B (flow)", configs="videoshop.flow_models.wan22_ti2v_configs", **_WAN,
                preset=dict(hub_id="Wan-AI/Wan2.2-TI2V-5B-Diffusers", dtype="bfloat16", num_frames=121,
                            height=704, width=1280, allow_download=True, max_sequence_length=512)),
    ModelFamily("ltx_i2v", "LTX-Video I2V (flow)", "videoshop.flow_pipeline.LTXVideoshopPipeline",
                configs="videoshop.flow_models.ltx_i2v_configs", modules="videoshop.flow_models.ltx_modules",
                scheduler=_FM, tiny=dict(frame_rate=25, decode_timestep=0.0),
                preset=dict(hub_id="Lightricks/LTX-Video", dtype="bfloat16", num_frames=161, height=512, width=704,
                            allow_download=True, max_sequence_length=128, frame_rate=25, decode_timestep=0.0)),
    ModelFamily("cogvideox_i2v", "CogVideoX-I2V (VP, DDIM)", "videoshop.cogvideox.CogVideoXVideoshopPipeline",
                configs="videoshop.flow_models.cogvideox_i2v_configs",
                modules="videoshop.flow_models.cogvideox_modules", scheduler=_VP,
                preset=dict(hub_id="THUDM/CogVideoX-5b-I2V", dtype="bfloat16", num_frames=49, height=480, width=720,
                            allow_download=True, max_sequence_length=226)),
):
    FAMILIES.register(_f)


def built_family(name: str) -> ModelFamily:
    """The entry of a family whose components are built in code (every family but SVD); one line otherwise."""
    fam = FAMILIES.get(name)
    if fam.configs is None:
        raise ValueError(f"model.family={name!r}: its components are not built from configs "
                         f"(expected one of {', '.join(f.name for f in FAMILIES if f.configs is not None)})")
    return fam
