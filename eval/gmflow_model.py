"""GMFlow (Xu et al., "GMFlow: Learning optical flow via global matching", CVPR 2022) in V2VBench's configuration.

Written from reading haofeixu/gmflow (as vendored by wenhao728/awesome-diffusion-v2v, third_party/gmflow) so that the
official ``gmflow_sintel-0c07dcb3.pth`` (``torch.load(path)['model']``) loads with identical parameter names:
one scale (features at 1/8), a ResNet-style CNN encoder (InstanceNorm without affine parameters), a 6-block
Transformer of single-head self- and cross-attention on 2x2 split windows, shifted on odd blocks (Swin), with a
sine position encoding added per window; global correlation -> softmax matching -> flow (Eq. 3-4 of the paper);
flow propagation by global self-attention on frame-0 features; convex 8x upsampling (RAFT's mask).
Only the inference path of V2VBench's call (``attn_splits_list=[2], corr_radius_list=[-1],
prop_radius_list=[-1]``) is implemented: multi-scale refinement and local matching are not.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class ResidualBlock(nn.Module):
    """Two 3x3 convs with InstanceNorm + ReLU, a strided 1x1 projection when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm1, self.norm2 = nn.InstanceNorm2d(c_out), nn.InstanceNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.norm3 = nn.InstanceNorm2d(c_out)
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride), self.norm3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm2(self.conv2(F.relu(self.norm1(self.conv1(x))))))
        return F.relu((x if self.downsample is None else self.downsample(x)) + y)


class CNNEncoder(nn.Module):
    """7x7/2 stem, three stages of two residual blocks (strides 1, 2, 2: features at 1/8), 1x1 to ``out_dim``."""

    def __init__(self, out_dim: int = 128, dims: Sequence[int] = (64, 96, 128)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, dims[0], 7, stride=2, padding=3, bias=False)
        self.norm1 = nn.InstanceNorm2d(dims[0])
        c = dims[0]
        for i, (d, s) in enumerate(zip(dims, (1, 2, 2)), start=1):
            setattr(self, f"layer{i}", nn.Sequential(ResidualBlock(c, d, s), ResidualBlock(d, d)))
            c = d
        self.conv2 = nn.Conv2d(c, out_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.norm1(self.conv1(x)))
        return self.conv2(self.layer3(self.layer2(self.layer1(x))))


def split_windows(x: torch.Tensor, k: int) -> torch.Tensor:
    """(B, H, W, C) -> (B*k*k, H/k, W/k, C): k x k non-overlapping windows, row-major."""
    b, h, w, c = x.shape
    return x.view(b, k, h // k, k, w // k, c).permute(0, 1, 3, 2, 4, 5).reshape(b * k * k, h // k, w // k, c)


def merge_windows(x: torch.Tensor, k: int) -> torch.Tensor:
    """Inverse of ``split_windows``."""
    bk, hk, wk, c = x.shape
    b = bk // (k * k)
    return x.view(b, k, k, hk, wk, c).permute(0, 1, 3, 2, 4, 5).reshape(b, k * hk, k * wk, c)


def sine_position(h: int, w: int, channels: int, device: torch.device) -> torch.Tensor:
    """DETR's normalised sine encoding of a (h, w) grid: (channels, h, w), y then x, sin/cos interleaved."""
    n = channels // 2
    ys = torch.arange(1, h + 1, dtype=torch.float32, device=device) / (h + 1e-6) * 2 * math.pi
    xs = torch.arange(1, w + 1, dtype=torch.float32, device=device) / (w + 1e-6) * 2 * math.pi
    dim_t = 10000 ** (2 * (torch.arange(n, dtype=torch.float32, device=device) // 2) / n)

    def enc(v: torch.Tensor) -> torch.Tensor:
        p = v[:, None] / dim_t
        return torch.stack((p[:, 0::2].sin(), p[:, 1::2].cos()), dim=2).flatten(1)  # (len, n)

    py, px = enc(ys), enc(xs)
    return torch.cat((py[:, None, :].expand(h, w, n), px[None, :, :].expand(h, w, n)), dim=2).permute(2, 0, 1)


def add_window_position(f: torch.Tensor, splits: int) -> torch.Tensor:
    """Add the sine encoding of one window's grid to every window of (B, C, H, W) features."""
    b, c, h, w = f.shape
    pos = sine_position(h // splits, w // splits, c, f.device).repeat(1, splits, splits)
    return f + pos[None]


def shifted_window_mask(h: int, w: int, splits: int, device: torch.device) -> torch.Tensor:
    """Swin's additive mask (-100 between tokens from different regions after the cyclic shift): (k*k, N, N)."""
    wh, ww = h // splits, w // splits
    region = torch.zeros(1, h, w, 1, device=device)
    cnt = 0
    for hs in (slice(0, -wh), slice(-wh, -(wh // 2)), slice(-(wh // 2), None)):
        for ws in (slice(0, -ww), slice(-ww, -(ww // 2)), slice(-(ww // 2), None)):
            region[:, hs, ws, :] = cnt
            cnt += 1
    r = split_windows(region, splits).view(-1, wh * ww)
    diff = r[:, None, :] - r[:, :, None]
    return torch.where(diff != 0, torch.tensor(-100.0, device=device), torch.tensor(0.0, device=device))


def window_attention(q, k, v, h: int, w: int, splits: int, shift: bool, mask) -> torch.Tensor:
    """Single-head attention inside ``splits`` x ``splits`` windows of (B, H*W, C) tokens (shifted: Swin)."""
    b, _, c = q.shape
    q, k, v = (t.view(b, h, w, c) for t in (q, k, v))
    sh, sw = (h // splits) // 2, (w // splits) // 2
    if shift:
        q, k, v = (torch.roll(t, shifts=(-sh, -sw), dims=(1, 2)) for t in (q, k, v))
    qs, ks, vs = (split_windows(t, splits).flatten(1, 2) for t in (q, k, v))
    scores = qs @ ks.transpose(1, 2) / c ** 0.5
    if shift:
        scores = scores + mask.repeat(b, 1, 1)
    out = merge_windows((scores.softmax(-1) @ vs).view(-1, h // splits, w // splits, c), splits)
    if shift:
        out = torch.roll(out, shifts=(sh, sw), dims=(1, 2))
    return out.reshape(b, h * w, c)


class TransformerLayer(nn.Module):
    """Attention (q from ``source``, k/v from ``target``), merge, LayerNorm; with_ffn: MLP on [source, message]."""

    def __init__(self, d: int, with_ffn: bool, expansion: int = 4, shift: bool = False) -> None:
        super().__init__()
        self.shift = shift
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(d, d, bias=False) for _ in range(3))
        self.merge = nn.Linear(d, d, bias=False)
        self.norm1 = nn.LayerNorm(d)
        self.with_ffn = with_ffn
        if with_ffn:
            self.mlp = nn.Sequential(nn.Linear(2 * d, 2 * d * expansion, bias=False), nn.GELU(),
                                     nn.Linear(2 * d * expansion, d, bias=False))
            self.norm2 = nn.LayerNorm(d)

    def forward(self, source, target, h, w, splits, mask):
        q, k, v = self.q_proj(source), self.k_proj(target), self.v_proj(target)
        if splits > 1:
            msg = window_attention(q, k, v, h, w, splits, self.shift, mask)
        else:
            msg = (q @ k.transpose(1, 2) / q.shape[-1] ** 0.5).softmax(-1) @ v
        msg = self.norm1(self.merge(msg))
        if self.with_ffn:
            msg = self.norm2(self.mlp(torch.cat([source, msg], dim=-1)))
        return source + msg


class TransformerBlock(nn.Module):
    def __init__(self, d: int, expansion: int, shift: bool) -> None:
        super().__init__()
        self.self_attn = TransformerLayer(d, with_ffn=False, expansion=expansion, shift=shift)
        self.cross_attn_ffn = TransformerLayer(d, with_ffn=True, expansion=expansion, shift=shift)

    def forward(self, source, target, h, w, splits, mask):
        source = self.self_attn(source, source, h, w, splits, mask)
        return self.cross_attn_ffn(source, target, h, w, splits, mask)


class FeatureTransformer(nn.Module):
    """Blocks updating both frames' features symmetrically (frame 0 attends to 1 and 1 to 0, batched)."""

    def __init__(self, layers: int = 6, d: int = 128, expansion: int = 4) -> None:
        super().__init__()
        self.layers = nn.ModuleList(TransformerBlock(d, expansion, shift=i % 2 == 1) for i in range(layers))

    def forward(self, f0: torch.Tensor, f1: torch.Tensor, splits: int):
        b, c, h, w = f0.shape
        mask = shifted_window_mask(h, w, splits, f0.device) if splits > 1 else None
        x0 = torch.cat((f0, f1)).flatten(2).transpose(1, 2)
        for layer in self.layers:
            x1 = torch.cat(x0.chunk(2)[::-1])
            x0 = layer(x0, x1, h, w, splits, mask)
        a, bb = x0.chunk(2)
        return (t.transpose(1, 2).reshape(b, c, h, w) for t in (a, bb))


class FeatureFlowAttention(nn.Module):
    """Flow propagation: softmax(q k^T / sqrt(C)) flow, with q = q_proj(f0) and k = k_proj(q) (as the checkpoint
    was trained: the key projection is applied to the projected query)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.q_proj, self.k_proj = nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, f0: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        b, c, h, w = f0.shape
        q = self.q_proj(f0.flatten(2).transpose(1, 2))
        k = self.k_proj(q)
        prob = (q @ k.transpose(1, 2) / c ** 0.5).softmax(-1)
        return (prob @ flow.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(b, 2, h, w)


def global_matching_flow(f0: torch.Tensor, f1: torch.Tensor) -> torch.Tensor:
    """Eq. 3-4: softmax over all frame-1 positions of <f0(p), f1(q)> / sqrt(C); flow = E[q] - p (x, y order)."""
    b, c, h, w = f0.shape
    corr = f0.flatten(2).transpose(1, 2) @ f1.flatten(2) / c ** 0.5  # (B, HW, HW)
    ys, xs = torch.meshgrid(torch.arange(h, device=f0.device, dtype=f0.dtype),
                            torch.arange(w, device=f0.device, dtype=f0.dtype), indexing="ij")
    grid = torch.stack((xs, ys)).view(1, 2, h * w)  # (1, 2, HW)
    match = corr.softmax(-1) @ grid.transpose(1, 2)  # (B, HW, 2)
    return match.transpose(1, 2).reshape(b, 2, h, w) - grid.view(1, 2, h, w)


class GMFlow(nn.Module):
    """GMFlow, one scale. ``forward(img0, img1)`` on (B, 3, H, W) pixels in [0, 255], H and W divisible by
    ``8 * attn_splits``; returns the (B, 2, H, W) flow from img0 to img1 in pixels (x, y)."""

    def __init__(self, feature_channels: int = 128, num_transformer_layers: int = 6, ffn_dim_expansion: int = 4,
                 upsample_factor: int = 8, encoder_dims: Sequence[int] = (64, 96, 128)) -> None:
        super().__init__()
        self.upsample_factor, self.feature_channels = upsample_factor, feature_channels
        self.backbone = CNNEncoder(feature_channels, encoder_dims)
        self.transformer = FeatureTransformer(num_transformer_layers, feature_channels, ffn_dim_expansion)
        self.feature_flow_attn = FeatureFlowAttention(feature_channels)
        self.upsampler = nn.Sequential(nn.Conv2d(2 + feature_channels, 256, 3, 1, 1), nn.ReLU(inplace=True),
                                       nn.Conv2d(256, upsample_factor ** 2 * 9, 1))

    def convex_upsample(self, flow: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        """RAFT's convex upsampling: each fine pixel a softmax-weighted mix of the 3x3 coarse neighbours' flow x K."""
        k = self.upsample_factor
        b, _, h, w = flow.shape
        mask = self.upsampler(torch.cat((flow, feature), 1)).view(b, 1, 9, k, k, h, w).softmax(2)
        nb = F.unfold(k * flow, 3, padding=1).view(b, 2, 9, 1, 1, h, w)
        up = (mask * nb).sum(2)  # (B, 2, K, K, H, W)
        return up.permute(0, 1, 4, 2, 5, 3).reshape(b, 2, k * h, k * w)

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, attn_splits: int = 2) -> torch.Tensor:
        mean = torch.tensor(IMAGENET_MEAN, device=img0.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=img0.device).view(1, 3, 1, 1)
        x = (torch.cat((img0, img1)) / 255.0 - mean) / std
        f0, f1 = self.backbone(x).chunk(2)
        if attn_splits > 1:
            f0, f1 = add_window_position(f0, attn_splits), add_window_position(f1, attn_splits)
        else:
            pos = sine_position(f0.shape[2], f0.shape[3], f0.shape[1], f0.device)[None]
            f0, f1 = f0 + pos, f1 + pos
        f0, f1 = self.transformer(f0, f1, attn_splits)
        flow = self.feature_flow_attn(f0, global_matching_flow(f0, f1))
        return self.convex_upsample(flow, f0)
