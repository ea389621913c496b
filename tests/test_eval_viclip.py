"""ViCLIP (V2VBench's video text alignment): the checkpoint's parameter layout, the forward pass against a literal
transcription of the original's token layout, the frame selection and preprocessing, the metric's cosine."""

import math

import numpy as np
import pytest
import torch

from videoshop_bench.datasets.schema import Sample
from videoshop_bench.eval.backbones import MissingWeightsError
from videoshop_bench.eval.viclip import (REAL_CONFIG, ViCLIP, ViCLIPTextAlignment, clip_video_transform, load_viclip,
                         viclip_frame_indices)


def official_shapes(width=1024, layers=24, patch=14, res=224, embed=768, frames=8, tw=768, tl=12, ctx=32, vocab=49408):
    """ViClip-InternVid-10M-FLT.pth's 'model' state dict as the original ViCLIP defines it (clip_joint_l14 +
    clip_text_l14(context_length=32) + temp): nn.MultiheadAttention blocks with ln_1 / mlp.c_fc / mlp.c_proj / ln_2."""
    def blocks(prefix, d, n):
        out = {}
        for i in range(n):
            p = f"{prefix}.transformer.resblocks.{i}"
            out.update({f"{p}.attn.in_proj_weight": (3 * d, d), f"{p}.attn.in_proj_bias": (3 * d,),
                        f"{p}.attn.out_proj.weight": (d, d), f"{p}.attn.out_proj.bias": (d,),
                        f"{p}.ln_1.weight": (d,), f"{p}.ln_1.bias": (d,), f"{p}.ln_2.weight": (d,),
                        f"{p}.ln_2.bias": (d,), f"{p}.mlp.c_fc.weight": (4 * d, d), f"{p}.mlp.c_fc.bias": (4 * d,),
                        f"{p}.mlp.c_proj.weight": (d, 4 * d), f"{p}.mlp.c_proj.bias": (d,)})
        return out

    v = "vision_encoder"
    out = {f"{v}.conv1.weight": (width, 3, 1, patch, patch), f"{v}.class_embedding": (width,),
           f"{v}.positional_embedding": ((res // patch) ** 2 + 1, width), f"{v}.ln_pre.weight": (width,),
           f"{v}.ln_pre.bias": (width,), f"{v}.temporal_positional_embedding": (1, frames, width),
           f"{v}.ln_post.weight": (width,), f"{v}.ln_post.bias": (width,), f"{v}.proj": (width, embed)}
    out.update(blocks(v, width, layers))
    t = "text_encoder"
    out.update({f"{t}.token_embedding.weight": (vocab, tw), f"{t}.positional_embedding": (ctx, tw),
                f"{t}.ln_final.weight": (tw,), f"{t}.ln_final.bias": (tw,), f"{t}.text_projection": (tw, embed),
                "temp": ()})
    out.update(blocks(t, tw, tl))
    return out


def test_parameters_match_the_checkpoint_layout(tmp_path):
    with torch.device("meta"):
        m = ViCLIP(**REAL_CONFIG)
    got = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert got == official_shapes()
    assert 420e6 < sum(math.prod(s) for s in got.values()) < 440e6  # ViT-L/14 vision + CLIP-L text
    tiny = load_viclip(backbone="tiny")
    torch.save({"model": tiny.state_dict(), "epoch": 3}, tmp_path / "viclip.pth")
    with pytest.raises(MissingWeightsError) as e:  # the real-size model refuses the tiny file, in one line
        ViCLIPTextAlignment(backbone="real", checkpoint=str(tmp_path / "viclip.pth"), device="cpu")
    assert str(e.value).startswith("metrics.viclip_text.checkpoint:") and "does not fit ViCLIP" in str(e.value)
    assert "\n" not in str(e.value)


def official_vision_forward(enc, video):
    """The original VisionTransformer.forward, transcribed: (B*T) frames, patch tokens in (patch, frame) order."""
    x = enc.conv1(video)
    b, c, t, h, w = x.shape
    x = x.permute(0, 2, 3, 4, 1).reshape(b * t, h * w, c)
    x = torch.cat([enc.class_embedding + torch.zeros(x.shape[0], 1, c), x], dim=1) + enc.positional_embedding
    cls = x[:b, :1, :]
    x = x[:, 1:].reshape(b, t, h * w, c).permute(0, 2, 1, 3).reshape(b * h * w, t, c)
    x = x + enc.temporal_positional_embedding
    x = x.reshape(b, h * w * t, c)
    x = torch.cat((cls, x), dim=1)
    x = enc.transformer(enc.ln_pre(x).permute(1, 0, 2))
    return enc.ln_post(x)[0] @ enc.proj


def test_video_embedding_matches_the_original_token_layout():
    m = load_viclip(backbone="tiny")
    torch.manual_seed(0)
    with torch.no_grad():
        m.vision_encoder.temporal_positional_embedding.normal_()  # zero-initialised: make it matter
        video = torch.randn(1, 8, 3, 32, 32)
        ours = m.encode_video(video)
        ref = official_vision_forward(m.vision_encoder, video.permute(0, 2, 1, 3, 4))
        m.vision_encoder.temporal_positional_embedding.zero_()
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_frame_selection_and_preprocessing():
    np.testing.assert_array_equal(viclip_frame_indices(24), [0, 3, 6, 9, 12, 15, 18, 21])  # V2VBench's stride 3
    np.testing.assert_array_equal(viclip_frame_indices(14), [0, 2, 4, 6, 7, 9, 11, 13])
    np.testing.assert_array_equal(viclip_frame_indices(4), [0, 0, 1, 1, 2, 2, 3, 3])
    import sys
    sys.path.insert(0, "tests")
    from test_eval_v2vbench import CLIP_MEAN, CLIP_STD, _video, reference_pixels

    v = _video(4, t=2)
    torch.testing.assert_close(clip_video_transform(v, 32), reference_pixels(v, 32, 32, CLIP_MEAN, CLIP_STD),
                               atol=1e-5, rtol=0)


def test_metric_is_the_cosine_of_text_and_video_embeddings():
    src = np.random.default_rng(0).integers(0, 256, (14, 40, 56, 3), dtype=np.uint8)
    ed = np.random.default_rng(1).integers(0, 256, (14, 40, 56, 3), dtype=np.uint8)
    s = Sample("s", src, src[0], instruction="make it red", target_prompt="a red ball " * 30)  # > 32 tokens
    metric = ViCLIPTextAlignment(backbone="tiny", device="cpu")
    value = metric.score(s, ed)["viclip_text"]
    m = load_viclip(backbone="tiny")
    from open_clip.tokenizer import tokenize

    ids = tokenize([s.target_prompt], context_length=32)
    assert ids.shape == (1, 32) and int(ids[0, -1]) == 49407  # truncated, <end> kept last
    with torch.no_grad():
        t = m.text_encoder(ids)[0].numpy()
        v = m.encode_video(clip_video_transform(ed[viclip_frame_indices(14)], 32)[None])[0].numpy()
    assert value == pytest.approx(float(t @ v / np.linalg.norm(t) / np.linalg.norm(v)), abs=1e-5)
    assert -1.0 <= value <= 1.0
    strict = ViCLIPTextAlignment(backbone="tiny", device="cpu", prompt_fields=["target_prompt"])
    assert strict.score(Sample("s", src, src[0]), ed) == {"viclip_text": None}
    assert "tiny" in metric.protocol()["viclip_text"]


def test_missing_checkpoint_one_line():
    with pytest.raises(MissingWeightsError) as e:
        ViCLIPTextAlignment(backbone="real", device="cpu")
    assert str(e.value).startswith("metrics.viclip_text.checkpoint: not set") and "\n" not in str(e.value)
