"""The official-code comparison of AnyV2V (and Spacetime where present): the weight layout both sides read, the
pre-processing and random stream the comparison made the project match, offline; the real comparison (marked slow)
only where a clone is given (``OFFICIAL_ANYV2V=DIR``, ``OFFICIAL_SPACETIME=DIR``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch


def test_i2vgen_layout_reloads_bit_for_bit_and_names_what_old_libraries_read(tmp_path):
    from videoshop_bench.baselines.text.i2vgen import build_random_i2vgen, load_i2vgen_components
    from videoshop_bench.experiments.official.weights import checksums, write_i2vgen_layout

    comps = build_random_i2vgen("tiny", seed=0)
    sums = write_i2vgen_layout(tmp_path / "w", comps)
    assert {"unet/diffusion_pytorch_model.bin", "image_encoder/pytorch_model.bin", "text_encoder/pytorch_model.bin",
            "feature_extractor/preprocessor_config.json", "scheduler/scheduler_config.json",
            "tokenizer/vocab.json", "model_index.json"} <= set(sums)
    unet_cfg = json.loads((tmp_path / "w" / "unet" / "config.json").read_text())
    assert unet_cfg["num_attention_heads"] == unet_cfg["attention_head_dim"] == 4  # diffusers 0.26 reads the former
    assert all(k.startswith("text_model.") for k in torch.load(tmp_path / "w" / "text_encoder" / "pytorch_model.bin"))
    proc = json.loads((tmp_path / "w" / "feature_extractor" / "preprocessor_config.json").read_text())
    assert proc["crop_size"] == {"height": 32, "width": 32} and isinstance(proc["resample"], int)
    back = load_i2vgen_components("pretrained", {"path": str(tmp_path / "w")}, allow_download=False)
    for name in ("unet", "vae", "text_encoder", "image_encoder"):
        a, b = getattr(back, name).state_dict(), getattr(comps, name).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert {k: v for k, v in back.scheduler_config.items() if not k.startswith("_")} == comps.scheduler_config
    assert checksums(tmp_path / "w") == sums


def test_pil_lanczos_resize_is_pil_lanczos():
    from PIL import Image

    from videoshop_bench.baselines.text.sd import resize_frames

    frames = np.random.default_rng(1).integers(0, 256, (2, 72, 128, 3), dtype=np.uint8)
    out = resize_frames(frames, 64, 64, filter="pil_lanczos")
    assert np.array_equal(out[1], np.asarray(Image.fromarray(frames[1]).resize((64, 64), resample=Image.LANCZOS)))


def _anyv2v(**kw):
    from videoshop_bench.baselines.anyv2v import AnyV2V

    return AnyV2V(weights="tiny", height=32, width=32, num_inference_steps=2, num_inversion_steps=2, dtype="float32",
                  **kw)


@pytest.mark.parametrize("seeding", ["official", "single_stream"])
def test_anyv2v_seeding_reproduces_the_official_scripts_random_stream(monkeypatch, seeding):
    """``seeding=official``: the inversion's first posterior draw sees the seed's stream advanced by exactly the
    draw of CLIP's class embedding (randn(vision width), made by the official pipeline loading), and the sampling
    phase's first draw (edited first frame) sees the stream restarted at the seed (the official edit script);
    ``single_stream``: one stream from the seed, no skip, no restart."""
    import videoshop_bench.baselines.anyv2v as av
    from videoshop_bench.datasets.synthetic import make_sample

    seen = []
    for name in ("video_latents", "first_frame_latents"):
        orig = getattr(av, name)
        monkeypatch.setattr(av, name, lambda *a, _o=orig, _n=name, **k: seen.append((_n, a[-1].get_state())) or _o(*a, **k))
    method = _anyv2v(seeding=seeding)
    s = make_sample(0, 1, num_frames=3, height=32, width=32)
    s.target_prompt = "a car"
    method.edit(s, torch.Generator().manual_seed(1234))
    fresh = torch.Generator().manual_seed(1234)
    if seeding == "official":
        skipped = torch.Generator().manual_seed(1234)
        torch.randn(method.models.image_encoder.config.hidden_size, generator=skipped)
        assert torch.equal(seen[0][1], skipped.get_state())
        assert seen[2][0] == "first_frame_latents" and torch.equal(seen[2][1], fresh.get_state())  # edited frame
    else:
        assert torch.equal(seen[0][1], fresh.get_state())
        assert not torch.equal(seen[2][1], fresh.get_state())
    with pytest.raises(ValueError, match="method.seeding"):
        _anyv2v(seeding="global")


def _tables_within_rounding(method: str, clone: str) -> None:
    from videoshop_bench.experiments.official_check import check

    tables = check(method, Path(clone), [], None, log=lambda *a: None)
    assert len(tables) == 2 and "16:9" in tables
    for config, table in tables.items():
        assert float(table.split("worst float stage ")[1].split()[0]) < 1e-4, (config, table)
        out_row = next(line for line in table.splitlines() if line.startswith("| output frames (uint8) |"))
        assert int(out_row.split("|")[3].split()[0]) <= 1, (config, out_row)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("OFFICIAL_ANYV2V"), reason="set OFFICIAL_ANYV2V=<clone @bc540be>")
def test_anyv2v_equals_the_official_code_to_float_rounding_with_the_same_seed():
    """Needs the clone and the side environment (created once): both group scripts, seed 8888 on both sides, no
    replayed draw; every float stage within 1e-4 relative, uint8 frames within 1 level, square and 16:9."""
    _tables_within_rounding("anyv2v", os.environ["OFFICIAL_ANYV2V"])


def test_unet3d_layout_reloads_bit_for_bit_without_num_attention_heads(tmp_path):
    """Spacetime's weights for diffusers 0.20 (which refuses ``num_attention_heads`` and hard-codes 32 groups in its
    temporal layers: the comparison's UNet has 32 groups)."""
    from videoshop_bench.baselines.text.t2v_models import load_t2v_components
    from videoshop_bench.experiments.official.spacetime import write_weights

    sums = write_weights(tmp_path / "w")
    cfg = json.loads((tmp_path / "w" / "unet" / "config.json").read_text())
    assert cfg["_class_name"] == "UNet3DConditionModel" and "num_attention_heads" not in cfg
    assert cfg["norm_num_groups"] == 32 and all(c % 32 == 0 for c in cfg["block_out_channels"])
    back = load_t2v_components("pretrained", {"path": str(tmp_path / "w")}, allow_download=False, dtype=torch.float32)
    from videoshop_bench.experiments.official.spacetime import official_tiny_unet

    a, b = back.unet.state_dict(), official_tiny_unet(seed=0).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert "unet/diffusion_pytorch_model.bin" in sums


def test_spacetime_official_seeding_draws_the_initial_noise_from_the_seed_and_continues_the_stream(monkeypatch):
    """``seeding=official``: the high-frequency noise of the initial latent is N(0, I) from a generator at the run's
    seed (DMT's config seed), and the restart noise continues the stream right after the VAE posterior draws (DMT's
    global RNG after its draws); ``single_stream`` draws them in order from one stream."""
    import videoshop_bench.baselines.text.spacetime as st
    from videoshop_bench.baselines.text.spacetime import Spacetime
    from videoshop_bench.datasets.synthetic import make_sample

    seen = {}
    orig_initial, orig_noise = Spacetime.initial_latent, Spacetime.restart_noise

    def initial_latent(self, z0, inverted, t_first, generator):
        seen.setdefault("initial", generator.get_state())
        return orig_initial(self, z0, inverted, t_first, generator)

    def restart_noise(self, shape, generator):
        seen.setdefault("restart", generator.get_state())
        return orig_noise(self, shape, generator)

    def source_latents(self, frames, generator, _o=Spacetime.source_latents):
        out = _o(self, frames, generator)
        seen["after_vae"] = generator.get_state()
        return out

    monkeypatch.setattr(Spacetime, "initial_latent", initial_latent)
    monkeypatch.setattr(Spacetime, "restart_noise", restart_noise)
    monkeypatch.setattr(Spacetime, "source_latents", source_latents)
    s = make_sample(0, 2, num_frames=3, height=32, width=56)
    s.source_prompt, s.target_prompt = "a car", "a truck"
    for seeding in ("official", "single_stream"):
        seen.clear()
        m = Spacetime(weights="tiny", height=32, width=56, num_inference_steps=2, inversion_steps=2,
                      optimization_steps=1, dtype="float32", seeding=seeding)
        m.edit(s, torch.Generator().manual_seed(99))
        fresh = torch.Generator().manual_seed(99).get_state()
        assert torch.equal(seen["initial"], fresh) == (seeding == "official")
        assert torch.equal(seen["restart"], seen["after_vae"]) == (seeding == "official")
    assert st.SEEDING == ("official", "single_stream")


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("OFFICIAL_SPACETIME"), reason="set OFFICIAL_SPACETIME=<clone @da9d4c3>")
def test_spacetime_equals_the_official_code_to_float_rounding():
    """Needs the clone and the side environment (created once): both scripts; the official restart noise (unseeded)
    replayed; every float stage within 1e-4 relative, uint8 frames within 1 level, native and 16:9 input."""
    _tables_within_rounding("spacetime", os.environ["OFFICIAL_SPACETIME"])
