"""Cross-frame attention through diffusers' attention-processor API (``unet.set_attn_processor``), never a forked
UNet. Processors are installed for a block of code and the previous ones restored afterwards
(``installed_processors``).

What is here:
- ``self_attention_layers``: the UNet's spatial self-attention (``attn1``) processor names in forward order
  (down blocks, mid block, up blocks), optionally filtered by name prefix.
- ``attend``: the arithmetic of diffusers' ``AttnProcessor2_0`` with keys/values taken from other tokens.
- ``FrameFeatureBank`` + ``CrossFrameAttnProcessor``: self-attention whose keys and values are computed from
  features of other frames (Pix2Video's injection: the first frame and the previous frame, Ceylan et al. 2023,
  Sec. 3.2; Text2Video-Zero's first-frame attention is the ``anchor`` variant).
- ``attention_probabilities``: softmax(QK^T / sqrt(d)) as SDPA does not return it (for methods that store or
  replace attention maps, such as FateZero).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Optional, Sequence

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def self_attention_layers(unet, prefixes: Optional[Sequence[str]] = None) -> list[str]:
    """``attn1`` processor names in the UNet's forward order (down, mid, up); only those starting with one of
    ``prefixes`` when given (e.g. ``["up_blocks"]``: every decoder self-attention)."""
    names = [n for n in unet.attn_processors if n.endswith("attn1.processor")]
    order = {"down_blocks": 0, "mid_block": 1, "up_blocks": 2}
    names.sort(key=lambda n: (order.get(n.split(".")[0], 3), [int(p) if p.isdigit() else 0 for p in n.split(".")]))
    if prefixes is not None:
        names = [n for n in names if any(n.startswith(p) for p in prefixes)]
    return names


@contextmanager
def installed_processors(unet, processors: dict[str, Any]) -> Iterator[None]:
    """Install ``processors`` (name -> processor) on ``unet`` for the block, then restore the previous ones."""
    original = dict(unet.attn_processors)
    unknown = set(processors) - set(original)
    if unknown:
        raise KeyError(f"no attention layer named {sorted(unknown)[0]!r} in this UNet")
    unet.set_attn_processor({**original, **processors})
    try:
        yield
    finally:
        unet.set_attn_processor(original)


def _heads(attn, x: Tensor) -> Tensor:
    b = x.shape[0]
    return x.view(b, -1, attn.heads, x.shape[-1] // attn.heads).transpose(1, 2)


def attend(attn, hidden_states: Tensor, kv_states: Tensor, attention_mask: Optional[Tensor] = None) -> Tensor:
    """Attention output with queries from ``hidden_states`` and keys/values from ``kv_states`` (B, N_kv, C), the
    arithmetic of diffusers' ``AttnProcessor2_0`` for token inputs (B, N, C) (what Transformer2DModel passes)."""
    residual = hidden_states
    if attention_mask is not None:
        attention_mask = attn.prepare_attention_mask(attention_mask, kv_states.shape[1], hidden_states.shape[0])
        attention_mask = attention_mask.view(hidden_states.shape[0], attn.heads, -1, attention_mask.shape[-1])
    if attn.group_norm is not None:
        hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
    q, k, v = _heads(attn, attn.to_q(hidden_states)), _heads(attn, attn.to_k(kv_states)), _heads(attn, attn.to_v(kv_states))
    if attn.norm_q is not None:
        q, k = attn.norm_q(q), attn.norm_k(k)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask, dropout_p=0.0, is_causal=False)
    out = out.transpose(1, 2).reshape(out.shape[0], -1, attn.heads * q.shape[-1]).to(q.dtype)
    out = attn.to_out[1](attn.to_out[0](out))
    if attn.residual_connection:
        out = out + residual
    return out / attn.rescale_output_factor


def attention_probabilities(attn, hidden_states: Tensor, kv_states: Tensor) -> Tensor:
    """softmax(Q K^T / sqrt(d)) per head, shape (B * heads, N_q, N_kv) (diffusers' ``get_attention_scores``)."""
    q = attn.head_to_batch_dim(attn.to_q(hidden_states))
    k = attn.head_to_batch_dim(attn.to_k(kv_states))
    return attn.get_attention_scores(q, k, None)


class FrameFeatureBank:
    """State shared by the cross-frame processors while frames are denoised one after another at one step.

    ``mode``: ``off`` (plain self-attention, nothing stored), ``record`` (plain self-attention; each layer's input
    tokens are kept as this frame's features), ``inject`` (record, and attend with keys/values computed from the
    features of other frames at the same layer instead of the frame's own tokens).
    ``sources``: ``anchor_prev`` = [first frame ; previous frame] concatenated along tokens (Pix2Video's default),
    ``anchor`` = first frame only (Pix2Video's ``use_keyframe_only``).
    ``trace``: a list to append (layer, frame, query input, key/value input) to, for tests and inspection.
    """

    def __init__(self, sources: str = "anchor_prev", trace: Optional[list] = None):
        if sources not in ("anchor_prev", "anchor"):
            raise ValueError(f"cross-frame sources={sources!r}: expected anchor_prev or anchor")
        self.sources, self.trace = sources, trace
        self.mode = "off"
        self.frame: int = 0
        self.anchor: dict[str, Tensor] = {}
        self.prev: dict[str, Tensor] = {}
        self.current: dict[str, Tensor] = {}

    def begin_frame(self, frame: int, mode: str) -> None:
        if mode not in ("off", "record", "inject"):
            raise ValueError(f"mode={mode!r}")
        self.frame, self.mode, self.current = frame, mode, {}

    def end_frame(self, is_anchor: bool) -> None:
        """The frame just processed becomes the previous frame (and the anchor when ``is_anchor``)."""
        if self.mode == "off":
            return
        if is_anchor:
            self.anchor = self.current
        self.prev, self.current = self.current, {}

    def kv_source(self, layer: str) -> Tensor:
        if self.sources == "anchor":
            return self.anchor[layer]
        return torch.cat([self.anchor[layer], self.prev[layer]], dim=1)


class CrossFrameAttnProcessor:
    """Self-attention processor for one ``attn1`` layer that records its input tokens in a ``FrameFeatureBank`` and,
    in ``inject`` mode, replaces the keys/values with ``to_k``/``to_v`` of the bank's other-frame features
    (queries stay the current frame's), as Pix2Video's modified ``CrossAttention.forward`` does."""

    def __init__(self, name: str, bank: FrameFeatureBank):
        self.name, self.bank = name, bank

    def __call__(self, attn, hidden_states: Tensor, encoder_hidden_states: Optional[Tensor] = None,
                 attention_mask: Optional[Tensor] = None, temb: Optional[Tensor] = None, *args, **kwargs) -> Tensor:
        bank = self.bank
        if encoder_hidden_states is not None or hidden_states.ndim != 3:
            raise ValueError(f"{self.name}: CrossFrameAttnProcessor is for token self-attention (attn1) only")
        if bank.mode == "off":
            return attend(attn, hidden_states, hidden_states, attention_mask)
        bank.current[self.name] = hidden_states
        kv = hidden_states if bank.mode == "record" else bank.kv_source(self.name)
        if bank.trace is not None:
            bank.trace.append(dict(layer=self.name, frame=bank.frame, mode=bank.mode, query_input=hidden_states,
                                   kv_input=kv))
        return attend(attn, hidden_states, kv, attention_mask)


def cross_frame_processors(unet, bank: FrameFeatureBank, prefixes: Optional[Sequence[str]] = None) -> dict[str, Any]:
    """One ``CrossFrameAttnProcessor`` per selected ``attn1`` layer, all sharing ``bank``."""
    return {name: CrossFrameAttnProcessor(name, bank) for name in self_attention_layers(unet, prefixes)}
