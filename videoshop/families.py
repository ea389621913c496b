"""The model-family registry: every image-to-video family Videoshop edits with, one entry each, and the one place
where a family's model mappings (the ``model`` config node: weights, size, dtype, kind) are declared.

An entry names what builds the family (dotted paths, imported on use, or callables): its Videoshop pipeline class,
the function that builds a pipeline from a model mapping (``build``), its components' configurations at a size
(``tiny`` | ``full``) and the modules built from them (random weights, for ``kind: tiny | random``), the scheduler
class it samples and inverts with and the one it runs a released checkpoint with (``sampler``). It declares its
model mappings once, by kind:

- ``pretrained``: the released ``checkpoint`` (hub id, dtype, native frames x size; ``from_pretrained``);
- ``random``: the same architecture at full size with random weights (speed and memory without a download);
- ``tiny``: the family's classes at test sizes, random weights (``tiny``; every family built from configs has one);
- further named ones (``more``): SVD's ``toy`` (this project's trained toy model) and ``xt`` (img2vid-xt).

``model_mapping(family, kind)`` is the mapping, ``model_presets()`` every one by its ``model=`` name (``svd``,
``tiny``, ``wan21_i2v_tiny``, ...). The one-video CLI reads them here; Hydra runs compose the same nodes
(experiments/stored_configs.py puts them into the config store: ``model=<family> model/kind=<kind>``, or the
name). ``model.family`` names an entry; SVD's mappings have no ``family`` key (absent = ``svd``, as always).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

from .options import Check
from .registry import Registry, load_object

Ref = Union[str, Callable[..., Any]]  # a dotted path or the object itself

DEFAULT_FAMILY = "svd"  # a model mapping without a ``family`` key is SVD's
KINDS = ("pretrained", "random", "tiny")  # how a mapping's modules are made (``model.kind``)

# every model mapping has these keys, in this order (then the family's own ``options``, then a preset's extras)
MAPPING_KEYS = dict(hub_id=None, revision=None, path=None, variant=None, seed=0, dtype="auto", num_frames=None,
                    height=None, width=None, allow_download=False)
HEAD_KEYS = ("name", "family", "kind")


def family_options(model_cfg: dict[str, Any]) -> dict[str, Any]:
    """A mapping's family-specific values (the keys beyond the ones every mapping has), None values left out: what
    the family's pipeline reads (``pipe.model_options``: ``max_sequence_length``, LTX's ``frame_rate``, ...)."""
    return {k: v for k, v in model_cfg.items() if k not in HEAD_KEYS and k not in MAPPING_KEYS and v is not None}


# the tiny stand-in of every family built from configs: 9 frames at 32 x 64, random weights, offline, 16 text tokens
TINY_PRESET = dict(dtype="float32", num_frames=9, height=32, width=64, max_sequence_length=16)


@dataclass(frozen=True)
class ModelOption:
    """A family's own model key: its value in every kind (a kind may set another) and what it may hold."""

    default: Any
    check: Check


def model_option(default: Any, kind: str, **kw: Any) -> ModelOption:
    """``max_sequence_length=model_option(512, "int", min=1)``: one declaration of a family key's default, type and
    range (checked before any work by the run's config schema: ``model.max_sequence_length=abc`` is one line)."""
    return ModelOption(default, Check(kind, **kw))


@dataclass(frozen=True)
class ModelFamily:
    """``configs(size) -> {component: config}``; ``modules(configs) -> {component: module}``; ``scheduler``: the
    sampler class (built from ``configs['scheduler']``); ``sampler(scheduler) -> scheduler``: the invertible sampler
    a released checkpoint runs with; ``build(model_mapping, device, runtime) -> pipeline``. ``checkpoint``: the
    released weights' values (None: no pretrained/random kinds); ``tiny``: the tiny stand-in's values (None:
    ``TINY_PRESET`` where ``configs`` is set); ``options``: the family's own model keys (``model_option(default,
    kind, ...)``, or a plain value) with their value in every kind (the pipeline reads them:
    ``pipe.model_options``); ``more``: further named mappings (each with its ``kind``); ``names``: a kind's ``model=`` name where it is not ``<family>_<kind>`` (``<family>`` for
    ``pretrained``); ``prompted``: it takes a text prompt."""

    name: str
    display: str
    pipeline: Ref
    build: Ref = "videoshop.family_models.build_family_pipeline"
    configs: Optional[Ref] = None
    modules: Optional[Ref] = None
    scheduler: Optional[Ref] = None
    sampler: Optional[Ref] = None
    checkpoint: Optional[dict[str, Any]] = None
    tiny: Optional[dict[str, Any]] = None
    options: dict[str, Any] = field(default_factory=dict)
    more: dict[str, dict[str, Any]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    prompted: bool = True

    def resolve(self, attr: str) -> Any:
        """The object ``attr`` names (imported if it is a dotted path)."""
        ref = getattr(self, attr)
        return load_object(ref) if isinstance(ref, str) else ref

    def kinds(self) -> dict[str, dict[str, Any]]:
        """``{kind: values}`` of every model mapping this family declares (``kind`` included), first the default."""
        out: dict[str, dict[str, Any]] = {}
        if self.checkpoint is not None:
            out["pretrained"] = dict(kind="pretrained", allow_download=True, **self.checkpoint)
            out["random"] = dict(out["pretrained"], kind="random", hub_id=None, allow_download=False)
        tiny = self.tiny if self.tiny is not None else TINY_PRESET if self.configs is not None else None
        if tiny is not None:
            out["tiny"] = dict(kind="tiny", **tiny)
        out.update(self.more)
        return out

    def option_defaults(self) -> dict[str, Any]:
        return {k: v.default if isinstance(v, ModelOption) else v for k, v in self.options.items()}

    def option_checks(self) -> dict[str, Check]:
        """What each declared family key may hold (``model.<key>``)."""
        return {k: v.check for k, v in self.options.items() if isinstance(v, ModelOption)}

    def model_name(self, kind: str) -> str:
        """The ``model=`` name (and ``model.name``) of this family's ``kind``."""
        return self.names.get(kind, self.name if kind == "pretrained" else f"{self.name}_{kind}")


FAMILIES: Registry[ModelFamily] = Registry("model family")


def model_mapping(family: str, kind: str) -> dict[str, Any]:
    """The model mapping of ``family`` at ``kind`` (a key of its ``kinds()``): name, family, kind, weights, size."""
    fam = FAMILIES.get(family)
    kinds = fam.kinds()
    if kind not in kinds:
        raise ValueError(f"model={family} model/kind={kind}: the family has the kinds {', '.join(kinds)}")
    values = dict(kinds[kind])
    head = dict(name=fam.model_name(kind), **({} if fam.name == DEFAULT_FAMILY else {"family": fam.name}),
                kind=values.pop("kind"))
    return {**head, **MAPPING_KEYS, **fam.option_defaults(), **values}


def model_presets() -> dict[str, dict[str, Any]]:
    """Every model mapping of every registered family by its ``model=`` name."""
    out: dict[str, dict[str, Any]] = {}
    for fam in FAMILIES:
        for kind in fam.kinds():
            mapping = model_mapping(fam.name, kind)
            if mapping["name"] in out:
                raise ValueError(f"model={mapping['name']}: named by two model families "
                                 f"({out[mapping['name']].get('family', DEFAULT_FAMILY)} and {fam.name})")
            out[mapping["name"]] = mapping
    return out


def model_preset(name: str) -> dict[str, Any]:
    """The model mapping ``model=<name>`` composes (one line naming the choices when there is none)."""
    presets = model_presets()
    if name not in presets:
        raise ValueError(f"model={name}: expected one of {', '.join(presets)}")
    return dict(presets[name])


def family_of(model_cfg: dict[str, Any]) -> ModelFamily:
    """The registry entry a model mapping names (``family``; absent: SVD)."""
    return FAMILIES.get(model_cfg.get("family") or DEFAULT_FAMILY)


def built_family(name: str) -> ModelFamily:
    """The entry of a family whose components are built in code (every family but SVD); one line otherwise."""
    fam = FAMILIES.get(name)
    if fam.configs is None:
        raise ValueError(f"model.family={name!r}: its components are not built from configs "
                         f"(expected one of {', '.join(f.name for f in FAMILIES if f.configs is not None)})")
    return fam


_FM = "diffusers.FlowMatchEulerDiscreteScheduler"
_TOKENS = dict(kind="int", min=1, max=4096)  # text tokens the prompt is padded / truncated to
_FLOW = dict(scheduler=_FM, sampler="videoshop.flow_pipeline.euler_scheduler_for")
_WAN = dict(pipeline="videoshop.wan.WanVideoshopPipeline", modules="videoshop.wan.wan_modules",
            **_FLOW)


def _native(hub_id: str, dtype: str, frames: int, height: int, width: int) -> dict[str, Any]:
    return dict(hub_id=hub_id, dtype=dtype, num_frames=frames, height=height, width=width)


for _f in (
    ModelFamily("svd", "Stable Video Diffusion (EDM)", "videoshop.pipeline.VideoshopPipeline", prompted=False,
                build="videoshop.models.build_svd_pipeline",
                checkpoint=_native("stabilityai/stable-video-diffusion-img2vid", "auto", 14, 576, 1024),
                tiny=dict(dtype="float32", num_frames=14, height=64, width=112),
                more=dict(xt=dict(kind="pretrained", allow_download=True,
                                  **_native("stabilityai/stable-video-diffusion-img2vid-xt", "auto", 25, 576, 1024)),
                          # trained by this project on the synthetic world (videoshop/assets/toy, its MODEL_CARD.md);
                          # relative paths resolve against the repository root when absent from the cwd
                          toy=dict(kind="pretrained", path="videoshop/assets/toy", dtype="float32", num_frames=8,
                                   height=32, width=56, synthetic_difficulty="easy")),
                names=dict(tiny="tiny", toy="toy", xt="svd_xt")),
    ModelFamily("wan21_i2v", "Wan 2.1 I2V (flow)", configs="videoshop.wan.wan21_i2v_configs", **_WAN,
                checkpoint=_native("Wan-AI/Wan2.1-I2V-14B-480P-Diffusers", "bfloat16", 81, 480, 832),
                options=dict(max_sequence_length=model_option(512, **_TOKENS))),
    ModelFamily("wan22_i2v", "Wan 2.2 I2V-A14B (flow, two experts)", configs="videoshop.wan.wan22_i2v_configs",
                **_WAN, checkpoint=_native("Wan-AI/Wan2.2-I2V-A14B-Diffusers", "bfloat16", 81, 480, 832),
                options=dict(max_sequence_length=model_option(512, **_TOKENS),
                             # the low-noise expert's CFG scale (null: the method's max_guidance_scale)
                             guidance_scale_2=model_option(None, "float", nullable=True, min=0))),
    ModelFamily("wan22_ti2v", "Wan 2.2 TI2V-5B (flow)", configs="videoshop.wan.wan22_ti2v_configs", **_WAN,
                checkpoint=_native("Wan-AI/Wan2.2-TI2V-5B-Diffusers", "bfloat16", 121, 704, 1280),
                options=dict(max_sequence_length=model_option(512, **_TOKENS))),
    ModelFamily("ltx_i2v", "LTX-Video I2V (flow)", "videoshop.ltx.LTXVideoshopPipeline",
                configs="videoshop.ltx.ltx_i2v_configs", modules="videoshop.ltx.ltx_modules", **_FLOW,
                checkpoint=_native("Lightricks/LTX-Video", "bfloat16", 161, 512, 704),
                options=dict(max_sequence_length=model_option(128, **_TOKENS),
                             frame_rate=model_option(25, "float", min=0, min_open=True),  # RoPE time interpolation
                             decode_timestep=model_option(0.0, "float", min=0, max=1))),  # timestep-conditioned VAEs
    ModelFamily("cogvideox_i2v", "CogVideoX-I2V (VP, DDIM)", "videoshop.cogvideox.CogVideoXVideoshopPipeline",
                configs="videoshop.cogvideox.cogvideox_i2v_configs", modules="videoshop.cogvideox.cogvideox_modules",
                scheduler="diffusers.CogVideoXDDIMScheduler", sampler="videoshop.cogvideox.ddim_scheduler_for",
                checkpoint=_native("THUDM/CogVideoX-5b-I2V", "bfloat16", 49, 480, 720),
                options=dict(max_sequence_length=model_option(226, **_TOKENS))),  # = the transformer's max_text_seq_length
):
    FAMILIES.register(_f)
