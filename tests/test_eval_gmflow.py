"""GMFlow (V2VBench's motion alignment): parameter names/shapes of the official checkpoint, the parts against
independent references, and the metric against a direct EPE computation."""

import math

import numpy as np
import pytest
import torch

from videoshop_bench.datasets.schema import Sample
from videoshop_bench.eval.backbones import MissingWeightsError
from videoshop_bench.eval.gmflow_model import (GMFlow, global_matching_flow, sine_position, shifted_window_mask, split_windows,
                               window_attention)
from videoshop_bench.eval.motion_alignment import GMFlowBackbone, MotionAlignment, load_gmflow, pad_to_multiple


def official_state_dict_shapes(c=128, layers=6, expansion=4, dims=(64, 96, 128), k=8):
    """The parameters of haofeixu/gmflow's GMFlow(num_scales=1, feature_channels=128, num_transformer_layers=6,
    ffn_dim_expansion=4, num_head=1), listed from its code: CNNEncoder (InstanceNorm2d without affine, 1x1 downsample
    conv with bias where stride or width changes), TransformerBlock = self_attn (no ffn) + cross_attn_ffn,
    FeatureFlowAttention (biased q/k), upsampler conv3x3 -> conv1x1 (K*K*9)."""
    out = {"backbone.conv1.weight": (dims[0], 3, 7, 7)}
    c_in = dims[0]
    for i, (d, s) in enumerate(zip(dims, (1, 2, 2)), start=1):
        for j in range(2):
            src = c_in if j == 0 else d
            out[f"backbone.layer{i}.{j}.conv1.weight"] = (d, src, 3, 3)
            out[f"backbone.layer{i}.{j}.conv2.weight"] = (d, d, 3, 3)
            if j == 0 and (s != 1 or src != d):
                out[f"backbone.layer{i}.{j}.downsample.0.weight"] = (d, src, 1, 1)
                out[f"backbone.layer{i}.{j}.downsample.0.bias"] = (d,)
        c_in = d
    out["backbone.conv2.weight"], out["backbone.conv2.bias"] = (c, dims[2], 1, 1), (c,)
    for i in range(layers):
        for part in ("self_attn", "cross_attn_ffn"):
            p = f"transformer.layers.{i}.{part}"
            for proj in ("q_proj", "k_proj", "v_proj", "merge"):
                out[f"{p}.{proj}.weight"] = (c, c)
            out[f"{p}.norm1.weight"], out[f"{p}.norm1.bias"] = (c,), (c,)
            if part == "cross_attn_ffn":
                out[f"{p}.mlp.0.weight"] = (2 * c * expansion, 2 * c)
                out[f"{p}.mlp.2.weight"] = (c, 2 * c * expansion)
                out[f"{p}.norm2.weight"], out[f"{p}.norm2.bias"] = (c,), (c,)
    for proj in ("q_proj", "k_proj"):
        out[f"feature_flow_attn.{proj}.weight"], out[f"feature_flow_attn.{proj}.bias"] = (c, c), (c,)
    out["upsampler.0.weight"], out["upsampler.0.bias"] = (256, 2 + c, 3, 3), (256,)
    out["upsampler.2.weight"], out["upsampler.2.bias"] = (k * k * 9, 256, 1, 1), (k * k * 9,)
    return out


def test_parameters_match_official_checkpoint_layout(tmp_path):
    m = torch.device("meta")
    with m:
        model = GMFlow()
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == official_state_dict_shapes()
    assert sum(math.prod(s) for s in got.values()) == 4_680_288  # GMFlow's 4.7M parameters (paper, Table 5)
    # a checkpoint in the release's layout ({'model': state_dict}) loads strictly
    ref = GMFlow(feature_channels=32, num_transformer_layers=2, ffn_dim_expansion=2, encoder_dims=(16, 16, 32))
    sd = {k: torch.randn_like(v) for k, v in ref.state_dict().items()}
    torch.save({"model": sd}, tmp_path / "ck.pth")
    loaded = torch.load(tmp_path / "ck.pth", weights_only=True)["model"]
    ref.load_state_dict(loaded, strict=True)
    with pytest.raises(MissingWeightsError) as e:  # the real-size GMFlow refuses it, naming the key
        MotionAlignment(backbone="real", checkpoint=str(tmp_path / "ck.pth"), device="cpu")
    assert str(e.value).startswith("metrics.gmflow_motion.checkpoint:") and "does not fit GMFlow" in str(e.value)
    # a real-size checkpoint in the release's layout loads (on meta, then the file's tensors) and computes the same
    real = GMFlow().eval()
    torch.save({"model": real.state_dict(), "step": 100000}, tmp_path / "gmflow_sintel.pth")
    loaded = load_gmflow(str(tmp_path / "gmflow_sintel.pth"), backbone="real")
    x0, x1 = torch.rand(1, 3, 32, 32) * 255, torch.rand(1, 3, 32, 32) * 255
    with torch.no_grad():
        torch.testing.assert_close(loaded(x0, x1), real(x0, x1))


def test_window_attention_matches_per_window_reference():
    torch.manual_seed(0)
    b, h, w, c, k = 2, 8, 12, 4, 2
    q, kk, v = (torch.randn(b, h * w, c) for _ in range(3))
    out = window_attention(q, kk, v, h, w, k, shift=False, mask=None).view(b, h, w, c)
    wh, ww = h // k, w // k
    for i in range(k):
        for j in range(k):
            sl = (slice(None), slice(i * wh, (i + 1) * wh), slice(j * ww, (j + 1) * ww))
            qq, kw, vv = (t.view(b, h, w, c)[sl].reshape(b, -1, c) for t in (q, kk, v))
            ref = torch.softmax(qq @ kw.transpose(1, 2) / c ** 0.5, -1) @ vv
            torch.testing.assert_close(out[sl].reshape(b, -1, c), ref)
    # shifted windows: after a cyclic shift, tokens attend only within their own region (Swin's mask)
    mask = shifted_window_mask(h, w, k, torch.device("cpu"))
    outs = window_attention(q, kk, v, h, w, k, shift=True, mask=mask).view(b, h, w, c)
    sh, sw = wh // 2, ww // 2
    region = np.zeros((h, w), int)
    region[h - wh:h - sh, :] += 3
    region[h - sh:, :] += 6
    region[:, w - ww:w - sw] += 1
    region[:, w - sw:] += 2
    rolled = [torch.roll(t.view(b, h, w, c), (-sh, -sw), (1, 2)) for t in (q, kk, v)]
    ref = torch.zeros(b, h, w, c)
    for i in range(k):
        for j in range(k):
            ys, xs = slice(i * wh, (i + 1) * wh), slice(j * ww, (j + 1) * ww)
            qq, kw, vv = (t[:, ys, xs].reshape(b, -1, c) for t in rolled)
            r = torch.from_numpy(region[ys, xs].reshape(-1))
            s = (qq @ kw.transpose(1, 2) / c ** 0.5).masked_fill(r[:, None] != r[None, :], float("-inf"))
            ref[:, ys, xs] = (torch.softmax(s, -1) @ vv).view(b, wh, ww, c)
    torch.testing.assert_close(outs, torch.roll(ref, (sh, sw), (1, 2)), atol=1e-5, rtol=1e-5)


def test_global_matching_recovers_a_translation():
    torch.manual_seed(0)
    f1 = torch.randn(1, 64, 10, 12) * 6.0  # distinctive features: the softmax is one-hot
    f0 = torch.roll(f1, shifts=(-2, -3), dims=(2, 3))  # frame 0 at p == frame 1 at p + (3, 2)
    flow = global_matching_flow(f0, f1)
    inner = flow[0, :, :-2, :-3]  # positions whose match lies inside frame 1
    torch.testing.assert_close(inner[0], torch.full_like(inner[0], 3.0), atol=1e-3, rtol=0)
    torch.testing.assert_close(inner[1], torch.full_like(inner[1], 2.0), atol=1e-3, rtol=0)


def test_sine_position_is_detrs_formula():
    h, w, c = 3, 5, 8
    pos = sine_position(h, w, c, torch.device("cpu")).numpy()
    n = c // 2
    dim_t = 10000 ** (2 * (np.arange(n) // 2) / n)
    y = np.arange(1, h + 1) / (h + 1e-6) * 2 * np.pi
    x = np.arange(1, w + 1) / (w + 1e-6) * 2 * np.pi
    for i in range(n):
        fy, fx = (np.sin if i % 2 == 0 else np.cos), (np.sin if i % 2 == 0 else np.cos)
        np.testing.assert_allclose(pos[i], np.repeat(fy(y / dim_t[i])[:, None], w, 1), atol=1e-5)
        np.testing.assert_allclose(pos[n + i], np.repeat(fx(x / dim_t[i])[None, :], h, 0), atol=1e-5)


def test_convex_upsampling_of_constant_flow():
    m = load_gmflow(backbone="tiny")
    flow = torch.full((1, 2, 4, 6), 1.5)
    up = m.convex_upsample(flow, torch.randn(1, 32, 4, 6))
    assert up.shape == (1, 2, 32, 48)
    # interior pixels: a convex mix of equal neighbours (borders mix in the zero padding)
    torch.testing.assert_close(up[..., 8:-8, 8:-8], torch.full_like(up[..., 8:-8, 8:-8], 12.0))


def _video(seed, t=4, h=40, w=56):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def test_metric_is_minus_epe_of_direct_flows():
    src, ed = _video(0), _video(1)
    s = Sample("s", src, src[0])
    metric = MotionAlignment(backbone="tiny", device="cpu")
    value = metric.score(s, ed)["gmflow_motion"]
    model = load_gmflow(backbone="tiny")

    def flows(v):  # pad 40x56 -> 48x64 (replicate, split evenly), run pair by pair, crop back
        x = torch.from_numpy(v).permute(0, 3, 1, 2).float()
        x = torch.nn.functional.pad(x, (4, 4, 4, 4), mode="replicate")
        with torch.no_grad():
            return np.stack([model(x[i:i + 1], x[i + 1:i + 2])[0, :, 4:44, 4:60].numpy() for i in range(len(v) - 1)])

    fs, fe = flows(src), flows(ed)
    assert fs.shape == (3, 2, 40, 56)
    ref = -float(np.sqrt(((fe - fs) ** 2).sum(1)).mean())
    assert value == pytest.approx(ref, rel=1e-4)
    assert metric.score(s, src)["gmflow_motion"] == 0.0
    assert metric.cache.hits >= 1  # source flow computed once
    assert "tiny" in metric.protocol()["gmflow_motion"]


def test_padding_and_downscaling_give_source_pixels():
    x = torch.zeros(2, 3, 40, 56)
    y, pad = pad_to_multiple(x, 16)
    assert y.shape[-2:] == (48, 64) and pad == (4, 4, 4, 4)
    g = GMFlowBackbone(backbone="tiny", device="cpu", max_side=32)  # 40x56 -> 23x32 working copy
    f = g(_video(2, t=3))
    assert f.shape == (2, 2, 40, 56)


def test_missing_checkpoint_one_line(tmp_path):
    with pytest.raises(MissingWeightsError) as e:
        MotionAlignment(backbone="real", checkpoint=str(tmp_path / "gmflow_sintel-0c07dcb3.pth"), device="cpu")
    assert str(e.value).startswith("metrics.gmflow_motion.checkpoint:") and "\n" not in str(e.value)
    with pytest.raises(MissingWeightsError):
        MotionAlignment(backbone="real", device="cpu")
    assert split_windows(torch.zeros(1, 4, 6, 2), 2).shape == (4, 2, 3, 2)
