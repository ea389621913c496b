"""The official-code comparison driver (experiments/official_check.py): its comparison table and weight-layout writer
offline; the real comparison only where a clone of the official repository is given (CI has no GitHub)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from videoshop_bench.experiments.official.compare import Stage, compare_stage, compare_stages, first_divergence, format_table
from videoshop_bench.experiments.official.weights import (build_tiny_sd, checksums, legacy_clip_text_keys, legacy_vae_keys,
                                          sd_layout_unet_config, write_sd_layout)

ROOT = Path(__file__).resolve().parents[1]


def test_stage_row_reports_max_abs_rel_and_the_first_divergence():
    off = np.ones((3, 4, 5))
    ours = off.copy()
    ours[1, 2, 0] += 1e-7  # rounding: below the tolerance
    ours[2, 1, 3] += 0.5  # a real divergence at frame 2, step 1
    row = compare_stage(Stage("latents", ours, off, ("frame", "step")))
    assert row.max_abs == pytest.approx(0.5) and row.max_rel == pytest.approx(0.5)
    assert row.first_divergence == "frame 2, step 1"
    same = compare_stage(Stage("same", off + 1e-7, off, ("frame",)))
    assert same.first_divergence == "-" and same.max_abs == pytest.approx(1e-7)
    bad = compare_stage(Stage("shape", np.ones((2, 3)), np.ones((3, 3))))
    assert bad.max_abs == float("inf") and "shape" in bad.first_divergence
    assert first_divergence(np.array(0.3), (), 0.1) == "all"


def test_uint8_stage_counts_levels_and_the_table_has_one_row_per_stage():
    a = np.zeros((2, 4, 4, 3), np.uint8)
    b = a.copy()
    b[1, 0, 0, 0] = 3
    stages = [Stage("frames", a, b, ("frame",), 0.5, True), Stage("x", torch.ones(3), torch.ones(3))]
    rows = compare_stages(stages)
    assert rows[0].max_abs == 3 and rows[0].first_divergence == "frame 1"
    table = format_table(rows, stages)
    lines = table.splitlines()
    assert lines[0].startswith("| stage |") and len(lines) == 2 + len(stages)
    assert "3 levels" in lines[2] and "% of values differ" in lines[2]


def test_legacy_key_renames():
    vae = {"encoder.mid_block.attentions.0.to_q.weight": 1, "encoder.mid_block.attentions.0.to_out.0.bias": 2,
           "encoder.conv_in.weight": 3}
    assert set(legacy_vae_keys(vae)) == {"encoder.mid_block.attentions.0.query.weight",
                                         "encoder.mid_block.attentions.0.proj_attn.bias", "encoder.conv_in.weight"}
    assert set(legacy_clip_text_keys({"embeddings.x": 1, "text_model.y": 2})) == {"text_model.embeddings.x",
                                                                                  "text_model.y"}


def test_sd_layout_unet_has_the_official_attention_order():
    """16 transformer blocks in forward order: down 0-5, mid 6, up 7-15 (Pix2Video's COND_LAYER = 7 = first up)."""
    from diffusers import UNet2DConditionModel

    from videoshop_bench.baselines.text.attention import self_attention_layers

    unet = UNet2DConditionModel(**sd_layout_unet_config(in_channels=5, sd2=True))
    names = self_attention_layers(unet)
    assert len(names) == 16 and names[6].startswith("mid_block") and names[7].startswith("up_blocks.1")


def test_written_layout_reloads_bit_for_bit_with_the_project_loader(tmp_path):
    """The files both sides read: the project's loader (diffusers 0.42 / transformers 5) gets back exactly the
    weights that were written in the old layout; the checksums list every file and are reproducible."""
    from videoshop_bench.baselines.text.models import load_pretrained_sd

    comps = build_tiny_sd(in_channels=5, sd2=True, seed=0)
    sums = write_sd_layout(tmp_path / "w", **comps, scheduler_config={"beta_start": 0.00085})
    assert {"unet/diffusion_pytorch_model.bin", "vae/diffusion_pytorch_model.bin", "text_encoder/pytorch_model.bin",
            "tokenizer/vocab.json", "tokenizer/merges.txt", "model_index.json"} <= set(sums)
    raw = torch.load(tmp_path / "w" / "vae" / "diffusion_pytorch_model.bin")
    assert any(".attentions.0.query." in k for k in raw) and not any(".to_q." in k for k in raw)
    assert all(k.startswith("text_model.") for k in torch.load(tmp_path / "w" / "text_encoder" / "pytorch_model.bin"))
    back = load_pretrained_sd(str(tmp_path / "w"), key="t")
    for name in ("unet", "vae", "text_encoder"):
        a, b = getattr(back, name).state_dict(), comps[name].state_dict()
        assert a.keys() == b.keys(), name
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert back.tokenizer("a red car").input_ids == comps["tokenizer"]("a red car").input_ids
    assert checksums(tmp_path / "w") == sums


def test_uint8_floor_is_numpy_truncation_and_pil_resize_is_pil():
    from PIL import Image

    from videoshop_bench.baselines.text.sd import resize_frames, to_uint8

    x = torch.linspace(-1.2, 1.2, 997).view(1, 1, 1, -1)
    ref = (np.clip(x.numpy() / 2 + 0.5, 0, 1) * 255).astype(np.uint8)
    assert np.array_equal(to_uint8(x, "floor").numpy(), ref)
    assert np.abs(to_uint8(x, "round").numpy().astype(int) - ref.astype(int)).max() == 1
    frames = np.random.default_rng(0).integers(0, 256, (2, 36, 64, 3), dtype=np.uint8)
    out = resize_frames(frames, 32, 32, filter="pil_bicubic")
    assert np.array_equal(out[1], np.asarray(Image.fromarray(frames[1]).resize((32, 32))))
    with pytest.raises(ValueError, match="resize filter"):
        resize_frames(frames, 32, 32, filter="nearest")


def test_cli_refuses_unknown_method_and_missing_clone_in_one_line(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "videoshop_bench.experiments.official_check", *a], cwd=ROOT,
                                    capture_output=True, text=True, timeout=120)
    p = run("pix2video", "--official", str(tmp_path / "nope"))
    assert p.returncode == 2 and "no such directory" in p.stderr and p.stderr.strip().count("\n") == 0
    p = run("nosuch", "--official", str(tmp_path))
    assert p.returncode == 2 and "invalid choice" in p.stderr


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("OFFICIAL_PIX2VIDEO"), reason="set OFFICIAL_PIX2VIDEO=<clone @304d318>")
def test_pix2video_equals_the_official_code_to_float_rounding():
    """Needs the clone and network access for the side environment (created once): every float stage within 1e-4
    relative, uint8 frames within 1 level, at the square and the 16:9 input."""
    from videoshop_bench.experiments.official_check import check

    tables = check("pix2video", Path(os.environ["OFFICIAL_PIX2VIDEO"]), [], None, log=lambda *a: None)
    for config, table in tables.items():
        worst = float(table.split("worst float stage ")[1].split()[0])
        assert worst < 1e-4, (config, table)
        out_row = next(line for line in table.splitlines() if line.startswith("| output frames (uint8) |"))
        assert int(out_row.split("|")[3].split()[0]) <= 1, (config, out_row)


def test_clip_group_norm_is_groupnorm_over_the_whole_clip():
    """FateZero's inflated ResNets normalise (b, c, f, h, w): ClipGroupNorm on the (b f) c h w batch equals
    torch's GroupNorm on the 5-D clip, and differs from the per-frame norm of a 2-D UNet."""
    from torch import nn

    from videoshop_bench.baselines.text.inflation import ClipGroupNorm, clip_group_norms, clip_norm_names

    torch.manual_seed(0)
    gn = nn.GroupNorm(4, 8)
    nn.init.normal_(gn.weight)
    nn.init.normal_(gn.bias)
    x = torch.randn(2 * 3, 8, 5, 5) * torch.arange(1, 7).view(6, 1, 1, 1)  # 2 clips of 3 frames, unequal scales
    clip = x.view(2, 3, 8, 5, 5).transpose(1, 2)
    ref = gn(clip).transpose(1, 2).reshape_as(x)
    torch.testing.assert_close(ClipGroupNorm(gn, 3)(x), ref)
    assert (gn(x) - ref).abs().max() > 0.1
    from diffusers import UNet2DConditionModel

    from videoshop_bench.baselines.text.t2v_models import tiny_fatezero_unet

    unet = tiny_fatezero_unet()
    names = clip_norm_names(unet)
    assert "conv_norm_out" in names and all(".resnets." in n or n == "conv_norm_out" for n in names)
    assert not any(".attentions." in n for n in names)
    with clip_group_norms(unet, 3):
        assert isinstance(unet.get_submodule(names[0]), ClipGroupNorm)
    assert isinstance(unet.get_submodule(names[0]), nn.GroupNorm) and isinstance(unet, UNet2DConditionModel)


def test_refinement_mapper_maps_padding_to_the_same_position():
    """Prompt-to-Prompt's get_mapper: positions after the target prompt take the source map at the same position."""
    from videoshop_bench.baselines.text.fatezero import token_alignment
    from videoshop_bench.baselines.text.models import tiny_clip_tokenizer

    tok = tiny_clip_tokenizer()
    src, tgt = "a red car", "a blue sports car"
    mapper, aligned = token_alignment(tok, src, tgt)
    n = len(tok(tgt).input_ids)
    assert torch.equal(mapper[n:], torch.arange(n, 77)) and bool(aligned[n:].all())
    assert int(mapper[n - 1]) == len(tok(src).input_ids) - 1  # end token aligned with the source's end token


def test_short_side_center_crop_is_fatezero_frame_preparation():
    from videoshop_bench.baselines.text.sd import short_side_center_crop

    frames = np.random.default_rng(0).integers(0, 256, (2, 72, 128, 3), dtype=np.uint8)
    out = short_side_center_crop(frames, 64, 64)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255 * 2 - 1
    scaled = torch.nn.functional.interpolate(x, size=(64, int(64 / 72 * 128)), mode="bilinear", antialias=True)
    left = (scaled.shape[-1] - 64) // 2
    torch.testing.assert_close(out, scaled[..., left:left + 64])
    same = short_side_center_crop(frames[:, :64, :64], 64, 64)
    torch.testing.assert_close(same, x[..., :64, :64])


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("OFFICIAL_FATEZERO"), reason="set OFFICIAL_FATEZERO=<clone @9b6cb7b>")
def test_fatezero_equals_the_official_code_to_float_rounding():
    from videoshop_bench.experiments.official_check import check

    tables = check("fatezero", Path(os.environ["OFFICIAL_FATEZERO"]), ["square", "16:9"], None, log=lambda *a: None)
    for config, table in tables.items():
        assert float(table.split("worst float stage ")[1].split()[0]) < 1e-4, (config, table)


def test_rave_grid_resize_is_the_official_whole_grid_resize():
    """RAVE's prepare_video_to_grid: the tiled grid (float / 255, mul(255).byte()) resized as one PIL image."""
    from PIL import Image

    from videoshop_bench.baselines.rave import grid_resize_frames, tile, untile

    frames = np.random.default_rng(1).integers(0, 256, (5, 36, 64, 3), dtype=np.uint8)
    out = grid_resize_frames(frames, 2, 24, 40)
    assert out.shape == (5, 24, 40, 3) and out.dtype == np.uint8
    x = torch.from_numpy(frames[:4]).permute(0, 3, 1, 2).float().div(255)
    grid = tile(x, 2).mul(255).byte()[0].permute(1, 2, 0).numpy()
    ref = np.asarray(Image.fromarray(grid).resize((80, 48)))
    cells = untile(torch.from_numpy(ref).permute(2, 0, 1)[None], 2).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(out[:4], cells)


def test_rave_shuffles_compose_with_the_current_arrangement():
    """Official shuffle_latents: indices = indices[randperm]: arrangement k = arrangement k-1 composed with draw k,
    so the same seed gives the official arrangements (tested beside the official code by experiments/official_check)."""
    import videoshop_bench.baselines.rave as rv

    method = rv.RAVE(weights="tiny", grid_size=2, num_inference_steps=3, num_inversion_steps=3, dtype="float32")
    z = torch.zeros(6, 4, 4, 4)
    control = torch.zeros(6, 3, 32, 32)
    cond = uncond = torch.zeros(1, 77, 32)
    seen = []
    orig = rv.arrange_grids
    rv.arrange_grids = lambda x, perm, g: (seen.append(perm.clone()) if x.shape[1] == 4 else None) or orig(x, perm, g)
    try:
        method.denoise(z, control, cond, uncond, torch.Generator().manual_seed(0), rv.NFECounter())
    finally:
        rv.arrange_grids = orig
    g = torch.Generator().manual_seed(0)
    expected, arrangement = [], torch.arange(6)
    for _ in range(3):
        arrangement = arrangement[torch.randperm(6, generator=g)]
        expected.append(arrangement)
    assert all(torch.equal(a, b) for a, b in zip(seen[1:], expected)) and len(seen) == 4


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("OFFICIAL_RAVE"), reason="set OFFICIAL_RAVE=<clone @3a64224>")
def test_rave_equals_the_official_code_to_float_rounding_with_the_same_seed():
    from videoshop_bench.experiments.official_check import check

    tables = check("rave", Path(os.environ["OFFICIAL_RAVE"]), [], None, log=lambda *a: None)
    for config, table in tables.items():
        assert float(table.split("worst float stage ")[1].split()[0]) < 1e-4, (config, table)


def test_side_scripts_import_nothing_of_the_project():
    """The side scripts run in the official code's old environments: at module level they import the standard library
    and side_common only (side_common the standard library only), and they parse their arguments through
    side_common (one declaration of --official/--weights/--inputs/--out/--compat)."""
    import ast

    sides = ROOT / "experiments" / "official" / "sides"
    project = {"videoshop", "datasets", "eval", "experiments", "baselines", "research", "videoshop_bench"}
    for path in sorted(sides.glob("*.py")):
        tree = ast.parse(path.read_text())
        top = {(n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
               for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
               for a in (n.names if isinstance(n, ast.Import) else [n])}
        allowed = set(sys.stdlib_module_names) | {"__future__"}
        if path.stem != "side_common":
            allowed.add("side_common")
        assert top <= allowed, f"{path.name} imports {sorted(top - allowed)} at module level"
        every = {(n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0] for n in ast.walk(tree)
                 if isinstance(n, (ast.Import, ast.ImportFrom)) and (not isinstance(n, ast.ImportFrom) or n.level == 0)
                 for a in (n.names if isinstance(n, ast.Import) else [n])}
        assert not every & project, f"{path.name} imports the project: {sorted(every & project)}"
        if path.stem != "side_common":
            assert "start_side" in path.read_text() and "ArgumentParser" not in path.read_text(), path.name
