"""Speed and memory options against the plain path on the tiny SVD, each with its stated tolerance.

Tolerances are on the final latents (float32 sampler state, 4 inversion + 4 generation steps, values of order 1):
- bit-identical: model offloading on one device, CFG in two passes (same kernels, CPU), restricting SDPA to the
  math kernel on CPU (the kernel PyTorch picks there), encode chunking (the SVD VAE encoder is per frame);
- 1e-4 (float32 reassociation): diffusers' eager attention processor instead of SDPA, channels-last weights;
- 5e-2 relative RMS: bfloat16 weights (8-bit mantissa) against float32.
Decode chunking is NOT an equivalence: SVD's temporal decoder mixes frames within a chunk, so a smaller chunk changes
the output (as in diffusers); the test states that instead.
"""

import numpy as np
import pytest
import torch

from videoshop.speed import RuntimeOptions, apply_runtime_options, attention_kernel

STEPS = dict(num_inference_steps=8)


def _video(seed=0, t=6, h=64, w=112):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def _pipeline(tiny_components, dtype=torch.float32, **runtime):
    from videoshop.models import build_random_components, tiny_component_configs
    from videoshop.pipeline import VideoshopPipeline

    comps = build_random_components(tiny_component_configs(), 0, dtype)  # own copy: options change modules in place
    pipe = VideoshopPipeline(**comps)
    pipe.set_progress_bar_config(disable=True)
    apply_runtime_options(pipe, RuntimeOptions(**runtime))
    return pipe


def _edit(pipe, **opts):
    return pipe(video=_video(), edited_image=_video(1)[0], generator=torch.Generator().manual_seed(5), **STEPS, **opts)


@pytest.fixture(scope="module")
def plain(tiny_components):
    return _edit(_pipeline(tiny_components))


def _max_diff(a, b):
    return float((a.latents - b.latents).abs().max())


def test_cfg_in_two_passes_equals_one_batch(tiny_components, plain):
    out = _edit(_pipeline(tiny_components), cfg_batch=False)
    assert out.nfe == plain.nfe
    assert _max_diff(out, plain) <= 1e-5


def test_model_offload_on_one_device_is_identical(tiny_components, plain):
    pipe = _pipeline(tiny_components, offload="model")
    pipe.execution_device = torch.device("cpu")
    out = _edit(pipe)
    assert torch.equal(out.latents, plain.latents) and np.array_equal(out.frames, plain.frames)


def test_encode_chunking_is_identical_decode_chunking_is_not(tiny_components, plain):
    enc = _edit(_pipeline(tiny_components), encode_chunk_size=2)
    assert _max_diff(enc, plain) <= 1e-5
    dec = _edit(_pipeline(tiny_components), decode_chunk_size=2)
    assert torch.equal(dec.latents, plain.latents)  # same latents: chunking only touches decoding
    assert not np.array_equal(dec.frames, plain.frames)  # the temporal decoder sees 2 frames at a time


def test_eager_attention_and_channels_last_agree(tiny_components, plain):
    eager = _edit(_pipeline(tiny_components, attention="eager"))
    assert _max_diff(eager, plain) <= 1e-4
    cl = _edit(_pipeline(tiny_components, channels_last=True))
    assert _max_diff(cl, plain) <= 1e-4


def test_math_kernel_agrees_and_unavailable_kernels_fail_loudly(tiny_components, plain):
    out = _edit(_pipeline(tiny_components, attention="math"))
    assert _max_diff(out, plain) <= 1e-4
    if not torch.cuda.is_available():  # the cuDNN kernel needs CUDA: an error, never a silent fallback
        with pytest.raises(RuntimeError):
            _edit(_pipeline(tiny_components, attention="cudnn"))


def test_bfloat16_within_tolerance(tiny_components, plain):
    out = _edit(_pipeline(tiny_components, dtype=torch.bfloat16))
    rel = float((out.latents - plain.latents).pow(2).mean().sqrt() / plain.latents.pow(2).mean().sqrt())
    assert out.finite and rel <= 5e-2, rel


def test_unknown_runtime_options_are_refused():
    with pytest.raises(ValueError, match="attention"):
        RuntimeOptions(attention="fastest")
    with pytest.raises(KeyError, match="compiel"):
        RuntimeOptions.from_dict({"compiel": True})


def test_attention_kernel_context_is_a_noop_for_sdpa():
    with attention_kernel("sdpa"):
        pass


def test_callback_on_step_end_reads_replaces_and_stops(tiny_components, plain):
    pipe = _pipeline(tiny_components)
    seen = []

    def record(p, i, sigma, kw):
        seen.append((i, sigma, kw["latents"].clone()))
        return {}

    out = _edit(pipe, callback_on_step_end=record)
    assert torch.equal(out.latents, plain.latents)  # reading changes nothing
    assert [s[0] for s in seen] == list(range(4)) and seen[-1][1] == 0.0
    seen.clear()
    unscaled = _edit(pipe, callback_on_step_end=record, rescale=False)
    assert torch.equal(seen[-1][2], unscaled.latents)  # the last step's latents are the output (before Eq. 8)

    def zero_at_last(p, i, sigma, kw):
        return {"latents": torch.zeros_like(kw["latents"])} if sigma == 0.0 else {}

    assert float(_edit(pipe, callback_on_step_end=zero_at_last, rescale=False).latents.abs().max()) == 0.0

    calls = []

    def stop_after_two(p, i, sigma, kw):
        calls.append(i)
        if i == 1:
            p._interrupt = True
        return {}

    stopped = _edit(pipe, callback_on_step_end=stop_after_two)
    assert calls == [0, 1] and not torch.equal(stopped.latents, plain.latents)


def test_timings_cover_every_stage(plain):
    assert set(plain.timings) == {"encode", "invert", "generate", "decode"}
    assert all(t > 0 for t in plain.timings.values())


@pytest.mark.slow
def test_compiled_unet_agrees(tiny_components, plain):
    out = _edit(_pipeline(tiny_components, compile=True))
    assert _max_diff(out, plain) <= 1e-4


def test_benchmark_edit_times_every_stage_against_diffusers_at_equal_work(tmp_path):
    """research/benchmark_edit.py composed like run.py (tiny model): every stage timed, the reference ran the
    same UNet passes per batch size (the script raises otherwise), a ratio is reported."""
    from pathlib import Path

    from hydra import compose, initialize_config_dir

    from videoshop_bench.research.benchmark_edit import benchmark, to_markdown

    conf = str(Path(__file__).resolve().parents[1] / "conf")
    with initialize_config_dir(config_dir=conf, version_base="1.3"):
        cfg = compose("benchmark_edit", overrides=[
            "model=tiny", "model.num_frames=4", "model.height=64", "model.width=64", "method.num_inference_steps=4",
            "metrics=default", "bench.repeats=1", "bench.warmup=1", f"bench.out={tmp_path}",
            f"paths.cache={tmp_path}/cache"])
    r = benchmark(cfg)
    assert r["unet_passes_by_batch"] == {1: 2, 2: 2}  # strength 0.55 of 4 steps: 2 inversion + 2 CFG generation
    for stage in ("prepare", "encode", "invert", "generate", "decode", "edit", "metrics", "write", "overhead"):
        assert r["ours"][stage]["median"] >= 0, stage
    assert r["ours"]["nfe"]["median"] == 4 and r["reference"]["total"]["median"] > 0
    assert r["ratio_edit_to_reference_median"] > 0 and "edit / reference" in to_markdown(r)


def test_a_batch_of_edits_equals_one_edit_per_video(tiny_components):
    """Two videos in one call (every UNet pass of batch 2, or 4 with CFG), one generator per video: each output equals
    that video's edit alone within 1e-4 (batched kernels may reassociate sums); NFE is per call, not per video."""
    pipe = _pipeline(tiny_components)
    videos, images = [_video(0), _video(2)], [_video(1)[0], _video(3)[0]]
    singles = [pipe(video=v, edited_image=e, generator=torch.Generator().manual_seed(10 + i), **STEPS)
               for i, (v, e) in enumerate(zip(videos, images))]
    batch = pipe(video=videos, edited_image=images, **STEPS,
                 generator=[torch.Generator().manual_seed(10), torch.Generator().manual_seed(11)])
    assert batch.frames.shape == (2, *singles[0].frames.shape) and batch.nfe == singles[0].nfe
    for b, one in enumerate(singles):
        assert float((batch.latents[b] - one.latents[0]).abs().max()) <= 1e-4
        assert np.abs(batch.frames[b].astype(int) - one.frames.astype(int)).max() <= 1
    with pytest.raises(ValueError, match="one per video"):
        pipe(video=videos, edited_image=images, generator=[torch.Generator()], **STEPS)
