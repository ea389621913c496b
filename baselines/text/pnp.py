"""Plug-and-play feature injection (Tumanyan et al. 2023) as AnyV2V applies it to I2VGen-XL (Ku et al. 2024, Sec. 3.3;
official code TIGER-AI-Lab/AnyV2V, i2vgen-xl/pnp_utils.py), through diffusers' attention-processor API and one
forward hook, never a forked UNet.

The UNet runs one batch of chunks [source ; edited (uncond) ; edited (cond)] (two chunks without CFG): the source
chunk is the DDIM-inverted source latent at the same timestep. At an *injection step*:
- convolution injection: the output of ``up_blocks[b].resnets[r].conv2`` (the residual branch of that decoder
  ResNet block, before the skip is added) of every edited chunk is replaced by the source chunk's;
- spatial / temporal attention injection: in the chosen decoder self-attentions (``attn1`` of
  ``up_blocks[b].attentions[i]`` / ``.temp_attentions[i]``) the queries and keys of every edited chunk are replaced
  by the source chunk's (the values stay the chunk's own).
Each kind has its own step range: the first int(N * fraction) of the N sampling timesteps (``injection_steps``).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Optional, Sequence

import torch
import torch.nn.functional as F

from .attention import _heads, installed_processors

Tensor = torch.Tensor
KINDS = ("conv", "spatial", "temporal")


def injection_steps(num_steps: int, fraction: float) -> set[int]:
    """Step indices (0 = noisiest) with injection: the first int(num_steps * fraction) (AnyV2V ``init_pnp``:
    ``scheduler.timesteps[:int(n_steps * pnp_t)]`` of the full schedule, whatever step sampling starts at)."""
    return set(range(max(0, min(num_steps, int(num_steps * float(fraction))))))


def attention_layer_names(kind: str, layers: Sequence[Sequence[int]]) -> list[str]:
    """Processor names of the self-attentions (``attn1``) at ``layers`` = [[up block, index], ...] of the spatial
    (``attentions``) or temporal (``temp_attentions``) transformers."""
    group = {"spatial": "attentions", "temporal": "temp_attentions"}[kind]
    return [f"up_blocks.{int(b)}.{group}.{int(i)}.transformer_blocks.0.attn1.processor" for b, i in layers]


@dataclass
class InjectionState:
    """What the processors read at each UNet pass: the number of chunks in the batch (1 = no source chunk: plain
    attention), the kinds active at this step, the step index; ``trace`` (a list) records every call for tests."""

    chunks: int = 1
    active: set = field(default_factory=set)
    step: int = -1
    trace: Optional[list] = None

    def inject(self, kind: str) -> bool:
        return self.chunks > 1 and kind in self.active


def replace_with_source(x: Tensor, chunks: int) -> Tensor:
    """Every chunk after the first (batch split into ``chunks`` equal parts) set to the first (the source)."""
    n = x.shape[0] // chunks
    return torch.cat([x[:n]] * chunks)


class PnPAttnProcessor:
    """``attn1`` processor: diffusers' ``AttnProcessor2_0`` arithmetic on token inputs, with the queries and keys of
    the edited chunks replaced by the source chunk's when this layer's kind is active."""

    def __init__(self, name: str, kind: str, state: InjectionState):
        self.name, self.kind, self.state = name, kind, state

    def __call__(self, attn, hidden_states: Tensor, encoder_hidden_states: Optional[Tensor] = None,
                 attention_mask: Optional[Tensor] = None, temb: Optional[Tensor] = None, *args, **kwargs) -> Tensor:
        if encoder_hidden_states is not None or hidden_states.ndim != 3:
            raise ValueError(f"{self.name}: PnPAttnProcessor is for token self-attention (attn1) only")
        residual, b = hidden_states, hidden_states.shape[0]
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, hidden_states.shape[1], b)
            attention_mask = attention_mask.view(b, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        q, k, v = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        injected = self.state.inject(self.kind)
        if injected:
            q, k = replace_with_source(q, self.state.chunks), replace_with_source(k, self.state.chunks)
        if self.state.trace is not None:
            self.state.trace.append(dict(layer=self.name, kind=self.kind, step=self.state.step, injected=injected,
                                         chunks=self.state.chunks, q=q, k=k, v=v))
        q, k, v = _heads(attn, q), _heads(attn, k), _heads(attn, v)
        if attn.norm_q is not None:
            q, k = attn.norm_q(q), attn.norm_k(k)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask, dropout_p=0.0, is_causal=False)
        out = out.transpose(1, 2).reshape(b, -1, attn.heads * q.shape[-1]).to(q.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def conv_injection_hook(state: InjectionState, name: str):
    """Forward hook for a ResNet block's ``conv2``: its output (the residual branch before the skip is added, where
    AnyV2V's modified ``ResnetBlock2D.forward`` injects) of the edited chunks replaced by the source chunk's."""

    def hook(_module, _inputs, out):
        injected = state.inject("conv")
        if state.trace is not None:
            state.trace.append(dict(layer=name, kind="conv", step=state.step, injected=injected, chunks=state.chunks,
                                    out=replace_with_source(out, state.chunks) if injected else out))
        return replace_with_source(out, state.chunks) if injected else out

    return hook


@contextmanager
def pnp_installed(unet, state: InjectionState, conv_layers: Sequence[Sequence[int]],
                  spatial_layers: Sequence[Sequence[int]], temporal_layers: Sequence[Sequence[int]]) -> Iterator[None]:
    """Install the PnP processors and conv hooks for the block, then restore the UNet as it was."""
    procs = {n: PnPAttnProcessor(n, kind, state) for kind, layers in (("spatial", spatial_layers),
                                                                     ("temporal", temporal_layers))
             for n in attention_layer_names(kind, layers)}
    handles = []
    try:
        for b, r in conv_layers:
            site = unet.up_blocks[int(b)].resnets[int(r)].conv2
            handles.append(site.register_forward_hook(conv_injection_hook(state, f"up_blocks.{b}.resnets.{r}.conv2")))
        with installed_processors(unet, procs):
            yield
    finally:
        for h in handles:
            h.remove()
