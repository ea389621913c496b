"""DOVER (Wu et al., "Exploring video quality assessment on user generated contents from aesthetic and technical
perspectives", ICCV 2023) as V2VBench configures it (third_party/dover/config.yaml, models/*.py of
wenhao728/awesome-diffusion-v2v @ 20afc6f, from VQAssessment/DOVER), written from reading that code so that
``DOVER.pth`` (``torch.load(path)``, loaded strictly there) loads with identical names:
  * ``technical_backbone``: the Swin-T 3D of FAST-VQA with gated relative position bias ("swin_tiny_grpb"):
    patch (2, 4, 4) -> 96 channels, stages [2, 2, 6, 2] x heads [3, 6, 12, 24], windows (8, 7, 7), shifted on odd
    blocks; in stages 1-3 a second table (``fragment_position_bias_table``) is mixed in by the fragment gate
    g = |delta fragment index| between two tokens: bias = rpb * g + fpb * (1 - g) (tokens of one 32x32 fragment
    use the fragment table, g = 0);
  * ``aesthetic_backbone``: ConvNeXt-T inflated to 3D (stem (2, 4, 4), depthwise kernels (1|3, 7, 7) in the pattern
    1-3-1, layer scale), the channels-last LayerNorm on the output map;
  * ``technical_head`` / ``aesthetic_head``: VQAHead, 1x1x1 convs 768 -> 64 -> GELU -> 1 on the feature map.
Each head returns a score map; V2VBench averages each map to one number (see eval/dover.py for views and fusion).
"""

from __future__ import annotations

from functools import lru_cache, reduce
from operator import mul
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

Size3 = tuple[int, int, int]


def window_partition(x: torch.Tensor, w: Size3) -> torch.Tensor:
    """(B, D, H, W, C) -> (B * windows, Wd*Wh*Ww, C), windows in (d, h, w) order."""
    b, d, h, ww_, c = x.shape
    x = x.view(b, d // w[0], w[0], h // w[1], w[1], ww_ // w[2], w[2], c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, reduce(mul, w), c)


def window_reverse(windows: torch.Tensor, w: Size3, b: int, d: int, h: int, wd: int) -> torch.Tensor:
    x = windows.view(b, d // w[0], h // w[1], wd // w[2], w[0], w[1], w[2], -1)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, d, h, wd, -1)


def clipped_window(size: Size3, window: Size3, shift: Size3) -> tuple[Size3, Size3]:
    """A window no larger than the input along each axis (no shift along an axis it covers whole)."""
    win, sh = list(window), list(shift)
    for i in range(3):
        if size[i] <= window[i]:
            win[i], sh[i] = size[i], 0
    return tuple(win), tuple(sh)  # type: ignore[return-value]


@lru_cache(maxsize=16)
def shift_mask(d: int, h: int, w: int, window: Size3, shift: Size3, device) -> torch.Tensor:
    """Swin's mask for shifted windows (-100 between tokens of different regions): (windows, N, N). Regions are cut
    exactly as the original (slices ``[:-win]``, ``[-win:-shift]``, ``[-shift:]`` per axis)."""
    img = torch.zeros(1, d, h, w, 1, device=device)
    cnt = 0
    cuts = [(slice(-window[i]), slice(-window[i], -shift[i]), slice(-shift[i], None)) for i in range(3)]
    for sd in cuts[0]:
        for shh in cuts[1]:
            for sw in cuts[2]:
                img[:, sd, shh, sw, :] = cnt
                cnt += 1
    m = window_partition(img, window).squeeze(-1)
    diff = m[:, None, :] - m[:, :, None]
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


@lru_cache(maxsize=16)
def fragment_gate(d: int, h: int, w: int, window: Size3, shift: Size3, device) -> torch.Tensor:
    """g[window, i, j] = sum |fragment index of token j - of token i| over (d, h, w), where the (1, Wh, Ww) grid of
    fragment indices is stretched (nearest) over the padded feature map and shifted like the tokens (float32;
    cached per shape, as the original caches it)."""
    fr = torch.stack(torch.meshgrid(torch.arange(1), torch.arange(window[1]), torch.arange(window[2]),
                                    indexing="ij")).float()
    coords = F.interpolate(fr[None].to(device), size=(d, h, w)).long().permute(0, 2, 3, 4, 1)
    coords = torch.roll(coords, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
    wc = window_partition(coords, window).float()  # (windows, N, 3)
    gate = torch.zeros(wc.shape[0], wc.shape[1], wc.shape[1], device=device)
    for k in range(3):  # one axis at a time: no (windows, N, N, 3) intermediate
        gate += (wc[:, None, :, k] - wc[:, :, None, k]).abs()
    return gate


def relative_position_index(window: Size3) -> torch.Tensor:
    """Swin's (N, N) index into the (2Wd-1)(2Wh-1)(2Ww-1) bias table."""
    coords = torch.stack(torch.meshgrid(*(torch.arange(s) for s in window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    rel = rel + torch.tensor([s - 1 for s in window])
    return rel[..., 0] * (2 * window[1] - 1) * (2 * window[2] - 1) + rel[..., 1] * (2 * window[2] - 1) + rel[..., 2]


class WindowAttention3D(nn.Module):
    def __init__(self, dim: int, window: Size3, heads: int, frag_bias: bool) -> None:
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        n = (2 * window[0] - 1) * (2 * window[1] - 1) * (2 * window[2] - 1)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(n, heads))
        if frag_bias:
            self.fragment_position_bias_table = nn.Parameter(torch.zeros(n, heads))
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor], gate: torch.Tensor) -> torch.Tensor:
        bw, n, c = x.shape
        q, k, v = self.qkv(x).reshape(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        idx = self.relative_position_index[:n, :n].reshape(-1)
        bias = self.relative_position_bias_table[idx].reshape(n, n, -1).permute(2, 0, 1)[None]  # (1, nH, N, N)
        if hasattr(self, "fragment_position_bias_table"):
            fbias = self.fragment_position_bias_table[idx].reshape(n, n, -1).permute(2, 0, 1)
            g = gate[:, None].to(attn.dtype)
            bias = bias * g + fbias * (1 - g)  # (windows, nH, N, N)
        nw = gate.shape[0]
        attn = (attn.view(bw // nw, nw, self.heads, n, n) + bias[None]).view(-1, self.heads, n, n)
        if mask is not None:
            attn = (attn.view(bw // nw, nw, self.heads, n, n) + mask[None, :, None]).view(-1, self.heads, n, n)
        return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(bw, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwinBlock3D(nn.Module):
    def __init__(self, dim: int, heads: int, window: Size3, shift: Size3, frag_bias: bool) -> None:
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = WindowAttention3D(dim, window, heads, frag_bias)
        self.mlp = Mlp(dim, 4 * dim)

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        b, d, h, w, c = x.shape
        win, sh = clipped_window((d, h, w), self.window, self.shift)
        pads = [(win[i] - s % win[i]) % win[i] for i, s in enumerate((d, h, w))]
        x = F.pad(self.norm1(x), (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))
        dp, hp, wp = x.shape[1:4]
        shifted = any(s > 0 for s in sh)
        if shifted:
            x = torch.roll(x, shifts=tuple(-s for s in sh), dims=(1, 2, 3))
        mask = shift_mask(dp, hp, wp, win, sh, x.device) if shifted else None
        gate = fragment_gate(dp, hp, wp, win, sh, x.device)
        out = window_reverse(self.attn(window_partition(x, win), mask, gate), win, b, dp, hp, wp)
        if shifted:
            out = torch.roll(out, shifts=sh, dims=(1, 2, 3))
        return out[:, :d, :h, :w]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attend(x)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """2x2 spatial neighbours concatenated (order (0,0), (1,0), (0,1), (1,1)), LayerNorm, linear 4C -> 2C."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:4]
        if h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat([x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x))


class BasicLayer(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, window: Size3, frag_bias: bool, downsample: bool) -> None:
        super().__init__()
        shift = tuple(s // 2 for s in window)
        self.blocks = nn.ModuleList(SwinBlock3D(dim, heads, window, (0, 0, 0) if i % 2 == 0 else shift, frag_bias)
                                    for i in range(depth))
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, D, H, W)
        x = x.permute(0, 2, 3, 4, 1)
        for blk in self.blocks:
            x = blk(x)
        if self.downsample is not None:
            x = self.downsample(x)
        return x.permute(0, 4, 1, 2, 3)


class PatchEmbed3D(nn.Module):
    def __init__(self, patch: Size3, dim: int) -> None:
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv3d(3, dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d, h, w = x.shape[2:]
        p = self.patch
        x = F.pad(x, (0, (-w) % p[2], 0, (-h) % p[1], 0, (-d) % p[0]))
        x = self.proj(x)
        return self.norm(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)


class SwinTransformer3D(nn.Module):
    """FAST-VQA's Swin-T 3D (``swin_tiny_grpb``): (B, 3, T, H, W) -> (B, 8C, T/2, H/32, W/32), LayerNorm-ed."""

    def __init__(self, embed_dim: int = 96, depths: Sequence[int] = (2, 2, 6, 2),
                 heads: Sequence[int] = (3, 6, 12, 24), window: Size3 = (8, 7, 7),
                 frag_biases: Sequence[bool] = (True, True, True, False), patch: Size3 = (2, 4, 4)) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed3D(patch, embed_dim)
        n = len(depths)
        self.layers = nn.ModuleList(BasicLayer(embed_dim * 2 ** i, depths[i], heads[i], window, frag_biases[i],
                                               downsample=i < n - 1) for i in range(n))
        self.norm = nn.LayerNorm(embed_dim * 2 ** (n - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        return self.norm(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)


class ChannelsFirstLayerNorm(nn.Module):
    """LayerNorm over dim 1 of (B, C, ...) (ConvNeXt's channels_first LayerNorm, eps 1e-6)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight, self.bias, self.eps = nn.Parameter(torch.ones(dim)), nn.Parameter(torch.zeros(dim)), eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.movedim(1, -1), (x.shape[1],), self.weight, self.bias, self.eps).movedim(-1, 1)


class ConvNeXtBlock3D(nn.Module):
    def __init__(self, dim: int, temporal: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv3d(dim, dim, (temporal, 7, 7), padding=(temporal // 2, 3, 3), groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1, self.act, self.pwconv2 = nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(1e-6 * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pwconv2(self.act(self.pwconv1(self.norm(self.dwconv(x).permute(0, 2, 3, 4, 1)))))
        return x + (self.gamma * y).permute(0, 4, 1, 2, 3)


class ConvNeXt3D(nn.Module):
    """DOVER's ``convnext_3d_tiny``: (B, 3, T, H, W) -> (B, 768, T/2, H/32, W/32), LayerNorm-ed, no pooling."""

    def __init__(self, depths: Sequence[int] = (3, 3, 9, 3), dims: Sequence[int] = (96, 192, 384, 768),
                 inflate: str = "131") -> None:
        super().__init__()
        self.downsample_layers = nn.ModuleList([nn.Sequential(nn.Conv3d(3, dims[0], (2, 4, 4), stride=(2, 4, 4)),
                                                              ChannelsFirstLayerNorm(dims[0]))])
        for i in range(3):
            self.downsample_layers.append(nn.Sequential(ChannelsFirstLayerNorm(dims[i]),
                                                        nn.Conv3d(dims[i], dims[i + 1], (1, 2, 2), stride=(1, 2, 2))))
        self.stages = nn.ModuleList(
            nn.Sequential(*(ConvNeXtBlock3D(dims[i], int(inflate[j % len(inflate)])) for j in range(depths[i])))
            for i in range(4))
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x))
        return self.norm(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)


class VQAHead(nn.Module):
    """Per-position quality: 1x1x1 conv C -> hidden, GELU, -> 1 (dropouts idle at evaluation)."""

    def __init__(self, in_channels: int = 768, hidden: int = 64) -> None:
        super().__init__()
        self.fc_hid = nn.Conv3d(in_channels, hidden, 1)
        self.fc_last = nn.Conv3d(hidden, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_last(F.gelu(self.fc_hid(x)))


class DOVER(nn.Module):
    """``forward(technical, aesthetic)`` -> (technical score map, aesthetic score map)."""

    def __init__(self, swin: Optional[dict] = None, convnext: Optional[dict] = None, head_hidden: int = 64) -> None:
        super().__init__()
        self.technical_backbone = SwinTransformer3D(**(swin or {}))
        self.aesthetic_backbone = ConvNeXt3D(**(convnext or {}))
        c_t = self.technical_backbone.norm.normalized_shape[0]
        c_a = self.aesthetic_backbone.norm.normalized_shape[0]
        self.technical_head = VQAHead(c_t, head_hidden)
        self.aesthetic_head = VQAHead(c_a, head_hidden)

    def forward(self, technical: torch.Tensor, aesthetic: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.technical_head(self.technical_backbone(technical)),
                self.aesthetic_head(self.aesthetic_backbone(aesthetic)))
