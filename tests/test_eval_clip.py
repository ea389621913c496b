"""CLIP metrics against a direct open_clip computation (tiny seeded random ViT, offline)."""

import numpy as np
import pytest
import torch
from PIL import Image

from videoshop_bench.datasets.schema import Sample
from videoshop_bench.eval.backbones import MissingWeightsError, TINY_CLIP_NAME, _register_tiny_clip, load_clip
from videoshop_bench.eval.base import MetricInputError
from videoshop_bench.eval.clip import CLIPSource, CLIPTarget, CLIPTemporal


def _video(seed, t=6, h=40, w=56):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def _sample():
    src = _video(0)
    masks = np.zeros(src.shape[:3], bool)
    for t in range(src.shape[0]):
        masks[t, 8:24, 10 + 2 * t:30 + 2 * t] = True
    return Sample("s", src, _video(1)[0], edit_mask=masks[0], gt_masks=masks)


@pytest.fixture(scope="module")
def direct():
    """Embeddings computed with open_clip directly: same tiny config, same seed, its own preprocess."""
    import open_clip

    _register_tiny_clip()
    torch.manual_seed(0)
    model, _, pre = open_clip.create_model_and_transforms(TINY_CLIP_NAME, pretrained=None)
    model.eval()

    def embed(images):
        with torch.no_grad():
            e = model.encode_image(torch.stack([pre(Image.fromarray(np.ascontiguousarray(i))) for i in images]))
        return e / e.norm(dim=-1, keepdim=True)

    return embed


KW = dict(backbone="tiny", device="cpu")


def test_clip_metrics_match_direct_open_clip(direct):
    s, edited = _sample(), _video(2)
    tgt = CLIPTarget(**KW).score(s, edited)
    e, t = direct(list(edited)), direct([s.edited_image])
    assert tgt["clip_tgt"] == pytest.approx(100 * float((e @ t[0]).mean()), abs=1e-4)
    # CLIP_tgt+ (crop mode): bbox of the per-frame region vs the frame-0 region of the target image
    crops = [f[m.any(1)][:, m.any(0)] for f, m in zip(edited, s.gt_masks)]
    t_crop = direct([s.edited_image[s.gt_masks[0].any(1)][:, s.gt_masks[0].any(0)]])
    assert tgt["clip_tgt_plus"] == pytest.approx(100 * float((direct(crops) @ t_crop[0]).mean()), abs=1e-4)

    src = CLIPSource(**KW).score(s, edited)
    es = direct(list(s.source_video))
    assert src["clip_src"] == pytest.approx(100 * float((e * es).sum(-1).mean()), abs=1e-4)
    fs, fe = s.source_video.copy(), edited.copy()
    fs[s.gt_masks], fe[s.gt_masks] = 0, 0
    assert src["clip_src_plus"] == pytest.approx(100 * float((direct(list(fe)) * direct(list(fs))).sum(-1).mean()),
                                                 abs=1e-4)

    tc = CLIPTemporal(**KW).score(s, edited)
    assert tc["clip_tc"] == pytest.approx(100 * float((e[:-1] * e[1:]).sum(-1).mean()), abs=1e-4)
    n = len(e)
    allp = np.mean([float(e[i] @ e[j]) for i in range(n) for j in range(i + 1, n)])
    assert CLIPTemporal(pairs="all", **KW).score(s, edited)["clip_tc"] == pytest.approx(100 * allp, abs=1e-4)


def test_identical_videos_give_100(tmp_path):
    s = _sample()
    out = CLIPSource(cache_dir=str(tmp_path), **KW).score(s, s.source_video.copy())
    assert out["clip_src"] == pytest.approx(100.0, abs=1e-3)
    assert out["clip_src_plus"] == pytest.approx(100.0, abs=1e-3)
    assert list(tmp_path.glob("clip/*.safetensors"))  # source embeddings cached on disk (no pickles)


def test_update_compute_and_shape_error():
    s = _sample()
    m = CLIPTemporal(**KW)
    m.update(s, _video(2))
    m.update(s, _video(3))
    assert float(m.compute()["clip_tc"]) == pytest.approx(
        np.mean([CLIPTemporal(**KW).score(s, _video(k))["clip_tc"] for k in (2, 3)]), abs=1e-6)
    with pytest.raises(MetricInputError, match="differ in length or size"):
        CLIPSource(**KW).score(s, _video(2, t=5))
    assert "tiny" in CLIPTarget(**KW).protocol()["clip_tgt_plus"]


def test_missing_clip_weights_one_line():
    with pytest.raises(MissingWeightsError) as e:
        load_clip("ViT-B-32", "openai", backbone="real", config_key="metrics.clip_tgt")
    msg = str(e.value)
    assert "\n" not in msg and "metrics.clip_tgt.checkpoint=PATH" in msg and "ViT-B-32/openai" in msg
