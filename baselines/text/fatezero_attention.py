"""FateZero's attention machinery (Qi et al., ICCV 2023) on diffusers' attention-processor API.

One processor (``FateZeroAttnProcessor``) sits on every ``Attention`` module of an SD ``UNet2DConditionModel`` whose
batch holds the frames of one clip. It does three things, all driven by one shared ``FateZeroController``:

1. Spatial-temporal self-attention (FateZero's ``SparseCausalAttention`` with index ``['mid']``): in blocks with at
   least ``least_sc_channel`` channels, every frame's queries attend to the keys/values of the clip's middle frame
   (index (F-1)//2); narrower blocks keep per-frame self-attention.
2. Inversion (``mode='invert'``): at every step, the self- and cross-attention of each layer whose query length is at
   most ``max_query_tokens`` (FateZero: 32x32 at 64x64 latents, i.e. every level but the finest) is stored. We store
   the layer's queries and keys rather than the softmax maps: softmax(Q K^T / sqrt(d)) recomputed from them is the
   same map (to float rounding) at a fraction of the memory (the official probability store needs ~100 GB of CPU RAM
   for 8 frames).
3. Editing (``mode='edit'``, batch = [uncond frames; cond frames]): only the conditional half is changed, as the
   official controller does (``attn[h//2:]``):
   - self-attention fusion: for steps < ``self_steps`` the edit's map A_edit is replaced by
     A = M * A_edit + (1 - M) * A_inv, where A_inv is the inversion map of the same timestep and M the blending mask
     (M = 0 everywhere, i.e. full replacement, when no blend words are given);
   - cross-attention (Prompt-to-Prompt): for steps < ``cross_steps`` the target tokens aligned with source tokens take
     the source (inversion) maps, new tokens keep their own (``AttentionRefine``), or all tokens take the source maps
     when the prompts have equal token counts and ``replace`` is chosen (``AttentionReplace``); optional reweighting
     of the new words' columns (``AttentionReweight``, ``equalizer``).
   - the blending mask M: from the stored inversion cross-attention of the down/up layers at the coarsest
     cross-attention resolution (16x16 for SD at 512 px: FateZero's ``down_cross[2:4] + up_cross[:3]``), averaged over
     heads and layers, summed over the blend words' tokens, 3x3 max-pooled, resized to the layer's resolution, divided
     by its per-frame maximum and thresholded (> ``blend_th``) (FateZero ``SpatialBlender``, prompt_choose='source').
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F


def attention_probs(q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
    """softmax(Q K^T * scale) over the keys, computed in float32; q: (..., N, d), k: (..., M, d) -> (..., N, M)."""
    return torch.softmax(torch.matmul(q.float(), k.float().transpose(-1, -2)) * scale, dim=-1)


def fuse_self_attention(a_edit: torch.Tensor, a_inv: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """FateZero's self-attention fusion: M * A_edit + (1 - M) * A_inv (A_inv alone when there is no mask).

    a_edit, a_inv: (F, heads, N, M); mask: (F, N) in {0, 1} (1: keep the edit's map) or None.
    """
    if mask is None:
        return a_inv.to(a_edit.dtype)
    m = mask.to(a_edit.dtype)[:, None, :, None]
    return m * a_edit + (1 - m) * a_inv.to(a_edit.dtype)


def blend_mask(cross_maps: list[torch.Tensor], token_weights: torch.Tensor, latent_hw: tuple[int, int],
               out_hw: tuple[int, int], threshold: float) -> torch.Tensor:
    """FateZero's ``SpatialBlender.get_mask`` (use_pool=True): (F, h*w) float mask in {0, 1} at ``out_hw``.

    cross_maps: inversion cross-attention maps of the blend layers, each (F, heads, n, tokens) at the same n;
    token_weights: (tokens,) with 1 on the blend words' tokens.
    """
    n = cross_maps[0].shape[-2]
    s = math.sqrt(latent_hw[0] * latent_hw[1] / n)
    h, w = round(latent_hw[0] / s), round(latent_hw[1] / s)
    maps = torch.stack([m.float().mean(1) for m in cross_maps], 0).mean(0)  # (F, n, tokens)
    maps = (maps * token_weights.to(maps)).sum(-1).reshape(-1, 1, h, w)
    maps = F.max_pool2d(maps, 3, 1, padding=1)
    maps = F.interpolate(maps, size=out_hw)  # nearest, as the official F.interpolate default
    maps = maps / maps.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    return maps.gt(threshold).float().flatten(1)


@dataclass
class FateZeroController:
    """Shared state of the processors: mode, step, the inversion store and the editing settings.

    Steps count from 0 in each loop; the inversion map for editing step s is the one stored at inversion step
    ``num_steps - 1 - s`` (the same timestep), as FateZero's ``len(store) - cur_step - 1``.
    """

    num_frames: int
    latent_hw: tuple[int, int]
    max_query_tokens: int
    num_steps: int = 50
    self_steps: int = 30  # int(num_steps * self_replace_steps)
    cross_steps: int = 40  # int((num_steps + 1) * cross_replace_steps)
    cross_mode: str = "refine"  # refine | replace | none
    token_map: Optional[torch.Tensor] = None  # (77,) target token -> source token
    token_aligned: Optional[torch.Tensor] = None  # (77,) 1 where the target token is aligned with a source token
    equalizer: Optional[torch.Tensor] = None  # (77,) column weights of the edited cross-attention (1 = unchanged)
    blend_tokens: Optional[torch.Tensor] = None  # (77,) 1 on the source blend words' tokens; None = no mask
    blend_th: float = 0.3
    store_device: Optional[torch.device] = None
    store_dtype: torch.dtype = torch.float16
    mode: str = "off"  # off | invert | edit
    step: int = 0
    debug: bool = False  # keep the last fusion's tensors (tests)
    store: dict = field(default_factory=dict)  # step -> {layer name: (q, k)}
    records: dict = field(default_factory=dict)  # debug: inversion maps, last fusion
    _mask_cache: dict = field(default_factory=dict)

    # ---------------------------------------------------------------- helpers
    def stored(self, step: int) -> dict:
        return self.store.setdefault(step, {})

    def inversion_map(self, name: str, step: int, scale: float, device, dtype=torch.float32) -> torch.Tensor:
        q, k = self.stored(step)[name]
        return attention_probs(q.to(device), k.to(device), scale).to(dtype)

    def blend_layers(self, step: int) -> list[str]:
        """Down/up cross-attention layers at the coarsest resolution that has them (FateZero's 16x16 layers)."""
        cross = {n: qk[0].shape[-2] for n, qk in self.stored(step).items()
                 if n.endswith("attn2.processor") and not n.startswith("mid_block")}
        if not cross:
            return []
        coarsest = min(cross.values())
        return [n for n, length in cross.items() if length == coarsest]

    def mask(self, inv_step: int, n_tokens: int, device) -> Optional[torch.Tensor]:
        """The self-attention blending mask at the resolution with ``n_tokens`` query tokens, (F, n_tokens)."""
        if self.blend_tokens is None:
            return None
        key = (inv_step, n_tokens)
        if key not in self._mask_cache:
            self._mask_cache.clear() if len(self._mask_cache) > 16 else None
            names = self.blend_layers(inv_step)
            maps = [self.inversion_map(n, inv_step, self.scales[n], device) for n in names]
            s = math.sqrt(self.latent_hw[0] * self.latent_hw[1] / n_tokens)
            out_hw = (round(self.latent_hw[0] / s), round(self.latent_hw[1] / s))
            self._mask_cache[key] = blend_mask(maps, self.blend_tokens.to(device), self.latent_hw, out_hw, self.blend_th)
        return self._mask_cache[key]

    @property
    def scales(self) -> dict:
        return self.__dict__.setdefault("_scales", {})

    # ---------------------------------------------------------------- the per-layer decision
    def attend(self, name: str, is_cross: bool, q: torch.Tensor, k: torch.Tensor, scale: float) -> Optional[torch.Tensor]:
        """Attention probabilities to use for this layer, or None to let the processor run plain SDPA.

        q: (B, heads, N, d), k: (B, heads, M, d) with B = frames (invert) or 2 x frames (edit: [uncond; cond]).
        """
        if self.mode == "off" or q.shape[-2] > self.max_query_tokens:
            return None
        self.scales[name] = scale
        if self.mode == "invert":
            dev = self.store_device or q.device
            self.stored(self.step)[name] = (q.detach().to(dev, self.store_dtype), k.detach().to(dev, self.store_dtype))
            probs = attention_probs(q, k, scale)
            if self.debug:
                self.records.setdefault("inversion", {})[(self.step, name)] = probs.detach().clone()
            return probs.to(q.dtype)
        # edit
        probs = attention_probs(q, k, scale)
        f = self.num_frames
        inv_step = self.num_steps - 1 - self.step
        if name not in self.stored(inv_step):
            return probs.to(q.dtype)
        edit = probs[-f:]
        if is_cross:
            if self.step < self.cross_steps and self.cross_mode != "none":
                base = self.inversion_map(name, inv_step, scale, q.device)
                if self.cross_mode == "replace":
                    new = base
                else:  # refine: aligned tokens from the source map, new tokens keep their own
                    mapped = base[..., self.token_map.to(q.device)]
                    a = self.token_aligned.to(q.device, edit.dtype)
                    new = mapped * a + edit * (1 - a)
                if self.equalizer is not None:
                    new = new * self.equalizer.to(q.device, new.dtype)
                probs = torch.cat([probs[:-f], new], 0)
        elif self.step < self.self_steps:
            a_inv = self.inversion_map(name, inv_step, scale, q.device)
            m = self.mask(inv_step, q.shape[-2], q.device)
            fused = fuse_self_attention(edit, a_inv, m)
            if self.debug:
                self.records["fusion"] = dict(name=name, step=self.step, edit=edit.detach().clone(),
                                              inversion=a_inv.detach().clone(), mask=None if m is None else m.clone(),
                                              fused=fused.detach().clone())
            probs = torch.cat([probs[:-f], fused], 0)
        return probs.to(q.dtype)


class FateZeroAttnProcessor:
    """Attention processor: sparse-causal K/V for wide self-attention layers, explicit maps where FateZero needs them."""

    def __init__(self, controller: FateZeroController, name: str, sparse_causal: bool):
        self.controller, self.name, self.sparse_causal = controller, name, sparse_causal

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs):
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            b0, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(b0, channel, height * width).transpose(1, 2)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        batch = hidden_states.shape[0]
        is_cross = encoder_hidden_states is not None
        query = attn.to_q(hidden_states)
        if is_cross:
            context = attn.norm_encoder_hidden_states(encoder_hidden_states) if attn.norm_cross else encoder_hidden_states
        elif self.sparse_causal:
            f = self.controller.num_frames
            clips = hidden_states.view(batch // f, f, *hidden_states.shape[1:])
            mid = clips[:, (f - 1) // 2: (f - 1) // 2 + 1]  # FateZero SparseCausalAttention_index ['mid']
            context = mid.expand_as(clips).reshape_as(hidden_states)
        else:
            context = hidden_states
        key, value = attn.to_k(context), attn.to_v(context)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        probs = self.controller.attend(self.name, is_cross, query, key, attn.scale)
        if probs is None:
            out = F.scaled_dot_product_attention(query, key, value, dropout_p=0.0, is_causal=False)
        else:
            out = torch.matmul(probs.to(value.dtype), value)
        out = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(b0, channel, height, width)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def fatezero_processors(unet, controller: FateZeroController, least_sc_channel: int) -> dict:
    """One processor per attention module of ``unet``; spatial self-attention ('attn1') is sparse-causal in blocks with
    at least ``least_sc_channel`` channels (FateZero model_config.least_sc_channel)."""
    procs = {}
    modules = dict(unet.named_modules())
    for name in unet.attn_processors:
        module = modules[name.rsplit(".processor", 1)[0]]
        channels = module.to_q.in_features
        sparse = name.endswith("attn1.processor") and channels >= least_sc_channel
        procs[name] = FateZeroAttnProcessor(controller, name, sparse)
    return procs


@contextlib.contextmanager
def installed_processors(unet, processors: dict):
    """Install ``processors`` with ``unet.set_attn_processor`` and restore the previous ones afterwards."""
    previous = dict(unet.attn_processors)
    unet.set_attn_processor(processors)
    try:
        yield
    finally:
        unet.set_attn_processor(previous)
