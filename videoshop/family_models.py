"""Building the pipeline of a model family from its registry entry (videoshop/families.py): every family but SVD.

Kinds, as for SVD (videoshop/models.py):
- ``pretrained``: ``from_pretrained`` of the family's diffusers repository (hub id or local ``path``); missing weights
  fail at start-up with one line (``videoshop.loading.resolve_pretrained``); the checkpoint's scheduler is replaced
  by the invertible sampler the family declares (``sampler``: flow-matching Euler, CogVideoX's DDIM).
- ``tiny``: the same diffusers/transformers classes at tiny sizes, random weights from ``seed``, built in code
  (offline, a few seconds per edit on a CPU); an offline character-level ``T5TokenizerFast`` stands in for the
  T5/UMT5 tokenizer.
- ``random``: the full-size architecture with random weights, built directly on the target device (GPU timing
  without downloads; outputs are meaningless). ``full_size_parameter_counts`` builds it on the ``meta`` device.

A family's own model keys (``options`` of its entry: ``max_sequence_length``, LTX's ``frame_rate``, ...) reach its
pipeline as ``pipe.model_options``.
"""

from __future__ import annotations

import contextlib
import string
from typing import Any, Optional

from . import _compat  # noqa: F401  (torchvision shim before diffusers/transformers)

import torch

from .families import KINDS, built_family, family_options


# ----------------------------------------------------------------------------- the T5 text side the families share
def tiny_t5_tokenizer():
    """A real ``T5TokenizerFast`` over a character-level vocabulary (pad 0, eos 1, unk 2), built offline, appending
    </s> like T5's; same call signature as Wan's, LTX's and CogVideoX's tokenizers."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for c in " " + string.ascii_lowercase + string.digits + string.punctuation:
        vocab.setdefault(c, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return T5TokenizerFast(tokenizer_object=tok, extra_ids=0, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def t5_encoder_config(size: str, vocab_size: int) -> dict[str, Any]:
    """A T5 encoder's config: ``tiny`` test sizes, or ``full`` = T5 v1.1 XXL (LTX-Video, CogVideoX) / UMT5-XXL (Wan:
    the same widths with a 256k vocabulary)."""
    if size == "tiny":
        return dict(vocab_size=vocab_size, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4,
                    relative_attention_num_buckets=8)
    return dict(vocab_size=vocab_size, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                feed_forward_proj="gated-gelu", relative_attention_num_buckets=32, relative_attention_max_distance=128)


# ----------------------------------------------------------------------------- random-weight components
def build_family_components(family: str, size: str, seed: int = 0, dtype: torch.dtype = torch.float32,
                            device: Optional[torch.device | str] = None) -> dict[str, Any]:
    """Randomly initialised components of ``family`` at ``size`` (tiny | full), from ``seed``, built on ``device``
    (None: the CPU; "meta": no memory, for parameter counts). ``family``: an entry of ``videoshop.families.FAMILIES``
    (its ``configs``, ``modules`` and ``scheduler``)."""
    fam = built_family(family)
    cfg = fam.resolve("configs")(size)
    torch.manual_seed(seed)
    with torch.device(device) if device is not None else contextlib.nullcontext():
        comps = fam.resolve("modules")(cfg)
    for k, m in comps.items():
        if isinstance(m, torch.nn.Module):
            comps[k] = m.eval() if str(device) == "meta" or dtype == torch.float32 else m.to(dtype=dtype).eval()
    comps["scheduler"] = fam.resolve("scheduler")(**cfg["scheduler"])
    # the character-level tokenizer also for the full-size random model: prompts are padded to max_sequence_length,
    # so the text encoder's cost is the real one (its outputs are meaningless anyway)
    comps["tokenizer"] = tiny_t5_tokenizer()
    comps.update(cfg.get("pipeline", {}))  # Wan 2.2: boundary_ratio / expand_timesteps (pipeline constructor args)
    return comps


def full_size_parameter_counts(family: str) -> dict[str, int]:
    """Parameters of each full-size component, counted on the ``meta`` device (no memory, about a second)."""
    comps = build_family_components(family, "full", device="meta")
    return {k: sum(p.numel() for p in m.parameters()) for k, m in comps.items() if isinstance(m, torch.nn.Module)}


# ----------------------------------------------------------------------------- pipelines
def pipeline_class(family: str):
    """The Videoshop pipeline class of ``family`` (its ``videoshop.families.FAMILIES`` entry)."""
    return built_family(family).resolve("pipeline")


def load_family_pipeline(model_cfg: dict[str, Any], dtype: torch.dtype, device: torch.device):
    """The Videoshop pipeline of a model mapping with ``family`` set (kind: pretrained | tiny | random)."""
    from .loading import resolve_pretrained

    family, kind = str(model_cfg["family"]), str(model_cfg["kind"])
    fam, cls = built_family(family), pipeline_class(family)
    if kind == "pretrained":
        rev = None if model_cfg.get("path") else model_cfg.get("revision")  # model.revision pins the hub files
        source = resolve_pretrained(model_cfg.get("hub_id"), model_cfg.get("path"),
                                    bool(model_cfg.get("allow_download", True)), rev)
        pipe = cls.from_pretrained(source, torch_dtype=dtype, **({"revision": rev} if rev else {}))
        if fam.sampler is not None:
            pipe.scheduler = fam.resolve("sampler")(pipe.scheduler)
    elif kind in ("tiny", "random"):
        on = None if kind == "tiny" else device
        comps = build_family_components(family, "tiny" if kind == "tiny" else "full", int(model_cfg.get("seed", 0)),
                                        dtype, on)
        pipe = cls(**comps)
    else:
        raise ValueError(f"model.kind={kind!r}: expected one of {', '.join(KINDS)}")
    pipe.model_options = family_options(model_cfg)
    return pipe.to(device)


def build_family_pipeline(model_cfg: dict[str, Any], device: str = "auto", runtime: Optional[dict[str, Any]] = None):
    """``videoshop.models.build_pipeline`` for a model mapping of a family built from configs: device and dtype
    resolved as for SVD; the speed/memory options of conf/runtime/ are SVD-only, so any non-default one is refused
    (one line)."""
    from .loading import resolve_device, resolve_dtype
    from .speed import RuntimeOptions

    options, default = RuntimeOptions.from_dict(dict(runtime or {})), RuntimeOptions()
    changed = [k for k, v in options.to_dict().items() if k != "encode_upcast" and v != getattr(default, k)]
    if changed:
        raise ValueError(f"runtime.{changed[0]}={getattr(options, changed[0])!r} is not supported for "
                         f"model={model_cfg.get('name')} (flow models run with the default runtime options)")
    dev = resolve_device(device)
    dtype = resolve_dtype(str(model_cfg.get("dtype", "auto")), dev)
    return load_family_pipeline(model_cfg, dtype, dev)
