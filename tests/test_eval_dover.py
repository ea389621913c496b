"""DOVER (V2VBench's video quality): the checkpoint's layout, the views against DOVER's sampling rules, the gated
position bias, the fusion formula, and the metric's plumbing (tiny random model)."""

import math

import numpy as np
import pytest
import torch

from videoshop_bench.datasets.schema import Sample
from videoshop_bench.eval.backbones import MissingWeightsError
from videoshop_bench.eval.dover import (DoverScore, dover_views, fuse_scores, load_dover, normalise, spatial_fragments,
                        unified_frame_indices)
from videoshop_bench.eval.dover_model import DOVER, WindowAttention3D, fragment_gate, window_partition


def official_layout():
    """DOVER.pth's keys and shapes as V2VBench's DOVER(**config['model']) defines them: technical = SwinTransformer3D()
    defaults (embed 96, depths 2-2-6-2, heads 3-6-12-24, window (8,7,7), qkv bias, patch norm, frag_biases
    T-T-T-F, relative_position_index buffers), aesthetic = convnext_3d_tiny (3-3-9-3, dims 96-768, inflate '131',
    layer scale gamma, no classifier), two VQAHeads (768 -> 64 -> 1, 1x1x1 convs)."""
    out = {}
    t = "technical_backbone"
    out[f"{t}.patch_embed.proj.weight"], out[f"{t}.patch_embed.proj.bias"] = (96, 3, 2, 4, 4), (96,)
    out[f"{t}.patch_embed.norm.weight"] = out[f"{t}.patch_embed.norm.bias"] = (96,)
    table = 15 * 13 * 13
    for i, (depth, heads, frag) in enumerate(zip((2, 2, 6, 2), (3, 6, 12, 24), (1, 1, 1, 0))):
        d = 96 * 2 ** i
        for j in range(depth):
            p = f"{t}.layers.{i}.blocks.{j}"
            for n in ("norm1", "norm2"):
                out[f"{p}.{n}.weight"] = out[f"{p}.{n}.bias"] = (d,)
            out[f"{p}.attn.relative_position_bias_table"] = (table, heads)
            if frag:
                out[f"{p}.attn.fragment_position_bias_table"] = (table, heads)
            out[f"{p}.attn.relative_position_index"] = (392, 392)
            out[f"{p}.attn.qkv.weight"], out[f"{p}.attn.qkv.bias"] = (3 * d, d), (3 * d,)
            out[f"{p}.attn.proj.weight"], out[f"{p}.attn.proj.bias"] = (d, d), (d,)
            out[f"{p}.mlp.fc1.weight"], out[f"{p}.mlp.fc1.bias"] = (4 * d, d), (4 * d,)
            out[f"{p}.mlp.fc2.weight"], out[f"{p}.mlp.fc2.bias"] = (d, 4 * d), (d,)
        if i < 3:
            out[f"{t}.layers.{i}.downsample.reduction.weight"] = (2 * d, 4 * d)
            out[f"{t}.layers.{i}.downsample.norm.weight"] = out[f"{t}.layers.{i}.downsample.norm.bias"] = (4 * d,)
    out[f"{t}.norm.weight"] = out[f"{t}.norm.bias"] = (768,)
    a, dims = "aesthetic_backbone", (96, 192, 384, 768)
    out[f"{a}.downsample_layers.0.0.weight"], out[f"{a}.downsample_layers.0.0.bias"] = (96, 3, 2, 4, 4), (96,)
    out[f"{a}.downsample_layers.0.1.weight"] = out[f"{a}.downsample_layers.0.1.bias"] = (96,)
    for i in range(3):
        out[f"{a}.downsample_layers.{i + 1}.0.weight"] = out[f"{a}.downsample_layers.{i + 1}.0.bias"] = (dims[i],)
        out[f"{a}.downsample_layers.{i + 1}.1.weight"] = (dims[i + 1], dims[i], 1, 2, 2)
        out[f"{a}.downsample_layers.{i + 1}.1.bias"] = (dims[i + 1],)
    for i, depth in enumerate((3, 3, 9, 3)):
        d = dims[i]
        for j in range(depth):
            p = f"{a}.stages.{i}.{j}"
            out[f"{p}.dwconv.weight"], out[f"{p}.dwconv.bias"] = (d, 1, int("131"[j % 3]), 7, 7), (d,)
            out[f"{p}.norm.weight"] = out[f"{p}.norm.bias"] = (d,)
            out[f"{p}.pwconv1.weight"], out[f"{p}.pwconv1.bias"] = (4 * d, d), (4 * d,)
            out[f"{p}.pwconv2.weight"], out[f"{p}.pwconv2.bias"] = (d, 4 * d), (d,)
            out[f"{p}.gamma"] = (d,)
    out[f"{a}.norm.weight"] = out[f"{a}.norm.bias"] = (768,)
    for h in ("technical_head", "aesthetic_head"):
        out[f"{h}.fc_hid.weight"], out[f"{h}.fc_hid.bias"] = (64, 768, 1, 1, 1), (64,)
        out[f"{h}.fc_last.weight"], out[f"{h}.fc_last.bias"] = (1, 64, 1, 1, 1), (1,)
    return out


def test_state_dict_matches_dover_pth_layout(tmp_path):
    with torch.device("meta"):
        m = DOVER()
    assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == official_layout()
    torch.save(load_dover(backbone="tiny").state_dict(), tmp_path / "DOVER.pth")
    with pytest.raises(MissingWeightsError) as e:
        DoverScore(backbone="real", checkpoint=str(tmp_path / "DOVER.pth"), device="cpu")
    assert str(e.value).startswith("metrics.dover.checkpoint:") and "does not fit DOVER" in str(e.value)
    with pytest.raises(MissingWeightsError, match="^metrics.dover.checkpoint: not set"):
        DoverScore(backbone="real", device="cpu")


def test_frame_sampling_follows_unified_frame_sampler():
    tech = unified_frame_indices(24, 32, 3, 2)
    assert len(tech) == 96
    np.testing.assert_array_equal(tech[:32], np.arange(0, 64, 2) % 24)  # wraps round a 24-frame video
    np.testing.assert_array_equal(tech[32:64], (8 + np.arange(0, 64, 2)) % 24)
    np.testing.assert_array_equal(unified_frame_indices(24, 1, 32, 2), np.zeros(32))  # aesthetic: frame 0 x 32
    np.testing.assert_array_equal(unified_frame_indices(64, 1, 32, 2), np.arange(0, 64, 2))
    long = unified_frame_indices(300, 32, 3, 2, rng=np.random.default_rng(1))  # 100-frame segments: random start
    starts = long.reshape(3, 32)[:, 0]
    assert all(100 * i <= s < 100 * i + 100 - 64 for i, s in enumerate(starts))


def test_fragments_are_crops_inside_their_grid_cells():
    t, h, w = 32, 240, 300
    yy, xx = np.mgrid[0:h, 0:w]
    video = torch.from_numpy(np.stack([yy, xx, np.zeros_like(yy)]).astype(np.float32))[:, None].repeat(1, t, 1, 1)
    out = spatial_fragments(video, torch.Generator().manual_seed(0))
    assert out.shape == (3, 32, 224, 224)
    for i in range(7):
        for j in range(7):
            block = out[:, :, 32 * i:32 * i + 32, 32 * j:32 * j + 32]
            y0, x0 = int(block[0, 0, 0, 0]), int(block[1, 0, 0, 0])
            assert h // 7 * i <= y0 <= h // 7 * i + h // 7 - 32 and w // 7 * j <= x0 <= w // 7 * j + w // 7 - 32
            expect = torch.stack(torch.meshgrid(torch.arange(y0, y0 + 32.), torch.arange(x0, x0 + 32.),
                                                indexing="ij"))
            torch.testing.assert_close(block[:2, 5], expect)  # a contiguous crop, same offset for all 32 frames
    small = spatial_fragments(torch.zeros(3, 32, 64, 112), torch.Generator().manual_seed(0))
    assert small.shape == (3, 32, 224, 224)  # upsampled first (short side 64 < 224)


def test_views_normalisation_and_fusion():
    v = np.full((14, 64, 112, 3), 128, np.uint8)
    views = dover_views(v)
    assert views["technical"].shape == (3, 3, 32, 224, 224) and views["aesthetic"].shape == (1, 3, 32, 224, 224)
    expect = (128 - torch.tensor([123.675, 116.28, 103.53])) / torch.tensor([58.395, 57.12, 57.375])
    torch.testing.assert_close(views["aesthetic"][0, :, 0, 100, 100], expect)
    frames = torch.arange(6.0).view(1, 6, 1, 1).repeat(3, 1, 1, 1) * 58.395 + 123.675  # (C, T=6, 1, 1)
    clips = normalise(frames, 3)
    assert clips.shape == (3, 3, 2, 1, 1)  # clip k = frames 2k, 2k+1
    torch.testing.assert_close(clips[:, 0].flatten(1), torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]))
    assert fuse_scores(0.1107, -0.08285) == 0.5
    x = 0.6104 * (0.3 - 0.1107) / 0.07355 + 0.3896 * (0.05 + 0.08285) / 0.03774
    assert fuse_scores(0.3, 0.05) == pytest.approx(1 / (1 + math.exp(-x)))


def test_fragment_gate_and_gated_bias():
    gate = fragment_gate(8, 14, 14, (8, 7, 7), (4, 3, 3), torch.device("cpu"))
    fr = torch.stack(torch.meshgrid(torch.arange(1), torch.arange(7), torch.arange(7), indexing="ij")).float()
    coords = torch.nn.functional.interpolate(fr[None], size=(8, 14, 14)).long().permute(0, 2, 3, 4, 1)
    wc = window_partition(torch.roll(coords, (-4, -3, -3), (1, 2, 3)), (8, 7, 7))
    torch.testing.assert_close(gate, (wc[:, None, :] - wc[:, :, None]).abs().sum(-1).float())  # the original's
    attn = WindowAttention3D(4, (2, 2, 2), 1, frag_bias=True)
    with torch.no_grad():
        attn.relative_position_bias_table.fill_(5.0)
        attn.fragment_position_bias_table.fill_(-5.0)
    x = torch.randn(1, 8, 4)
    same, apart = torch.zeros(1, 8, 8), torch.ones(1, 8, 8)
    nobias = WindowAttention3D(4, (2, 2, 2), 1, frag_bias=False)
    nobias.load_state_dict({k: v for k, v in attn.state_dict().items() if "fragment" not in k})
    # uniform bias cancels in the softmax: gate 0 (fpb) and gate 1 (rpb) both equal the unbiased attention
    torch.testing.assert_close(attn(x, None, same), nobias(x, None, same))
    torch.testing.assert_close(attn(x, None, apart), nobias(x, None, apart))
    half = torch.zeros(1, 8, 8)
    half[0, :, 4:] = 1  # keys 4-7 from another fragment: rpb +5 for them, fpb -5 for keys 0-3
    with torch.no_grad():
        q, k, v = attn.qkv(x).reshape(1, 8, 3, 1, 4).permute(2, 0, 3, 1, 4)
        s = (q * 0.5) @ k.transpose(-2, -1) + torch.where(half[:, None] > 0, 5.0, -5.0)
        ref = attn.proj((s.softmax(-1) @ v).transpose(1, 2).reshape(1, 8, 4))
    torch.testing.assert_close(attn(x, None, half), ref)


def test_metric_fuses_the_two_head_means_deterministically():
    v = np.random.default_rng(0).integers(0, 256, (6, 48, 80, 3), dtype=np.uint8)
    metric = DoverScore(backbone="tiny", device="cpu")
    value = metric.score(Sample("s", v, v[0]), v)["dover"]
    views = dover_views(v, seed=0)
    with torch.no_grad():
        t, a = load_dover(backbone="tiny")(views["technical"], views["aesthetic"])
    assert t.shape[:2] == (3, 1) and a.shape[:2] == (1, 1)
    assert value == pytest.approx(fuse_scores(float(t.mean()), float(a.mean())), rel=1e-6)
    assert 0 < value < 1 and "tiny" in metric.protocol()["dover"]
