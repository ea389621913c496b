"""Baselines and alternative inversions on the tiny SVD: each runs, is deterministic, and counts its NFE from the
actual UNet calls (svd_no_source, edict, fixed_point, bdia, block-recurrent long videos, AnimateLCM)."""

import math

import numpy as np
import pytest
import torch

from videoshop_bench.datasets.schema import Sample
from videoshop import VideoshopConfig
from videoshop.edm import denoised, edm_coefficients, euler_step, karras_sigmas, truncate_by_strength
from videoshop.method import VideoshopMethod

H, W = 32, 48
STEPS = dict(num_inference_steps=6)  # strength 0.55 -> 3 steps


def _video(seed=0, t=6):
    return np.random.default_rng(seed).integers(0, 256, (t, H, W, 3), dtype=np.uint8)


def _sample(t=6, seed=0):
    v = _video(seed, t)
    return Sample(sample_id=f"s{seed}", source_video=v, edited_image=_video(seed + 100, 1)[0], instruction="x",
                  edit_type="add_object")


def _edit(method, sample, seed=3):
    return method.edit(sample, torch.Generator().manual_seed(seed))


class CountingUNet(torch.nn.Module):
    """Forwards to the tiny UNet and counts forward passes, independently of SVDNetwork.nfe."""

    def __init__(self, unet):
        super().__init__()
        self.inner, self.calls = unet, 0

    def forward(self, *a, **k):
        self.calls += 1
        return self.inner(*a, **k)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.inner, name)


@pytest.fixture()
def counting(tiny_pipeline):
    original = tiny_pipeline.unet
    counter = CountingUNet(original)
    tiny_pipeline.register_modules(unet=counter)
    yield tiny_pipeline, counter
    tiny_pipeline.register_modules(unet=original)


@pytest.mark.parametrize("inversion,extra,inv_nfe,gen_nfe", [
    ("extrapolate", {}, 3, 3), ("naive", {}, 3, 3), ("fixed_point", {"fixed_point_iterations": 4}, 12, 3),
    ("edict", {}, 6, 6), ("bdia", {}, 3, 2)])
def test_each_inversion_runs_deterministically_with_counted_nfe(counting, inversion, extra, inv_nfe, gen_nfe):
    pipe, counter = counting
    method = VideoshopMethod(pipe, height=H, width=W, inversion=inversion, **extra, **STEPS)
    s = _sample()
    a = _edit(method, s)
    assert counter.calls == inv_nfe + gen_nfe == a.nfe  # counted from the UNet's actual forward passes
    b = _edit(method, s)
    assert a.finite and a.frames.shape == (6, H, W, 3) and np.array_equal(a.frames, b.frames)


def test_unknown_inversion_is_refused():
    with pytest.raises(ValueError, match="inversion"):
        VideoshopConfig.from_dict({"inversion": "ddim"})
    with pytest.raises(ValueError, match="fixed_point_iterations"):
        VideoshopConfig.from_dict({"inversion": "fixed_point", "fixed_point_iterations": 0})


def test_default_config_is_unchanged():
    cfg = VideoshopConfig()
    assert (cfg.inversion, cfg.threshold, cfg.num_inference_steps, cfg.strength) == ("extrapolate", 1.0, 25, 0.55)


def test_svd_no_source_ignores_the_source_video(counting):
    from videoshop_bench.baselines.svd_no_source import SVDNoSource

    pipe, counter = counting
    method = SVDNoSource(pipe, height=H, width=W, noise_aug_strength=0.02, min_guidance_scale=1.0,
                         max_guidance_scale=3.0, **STEPS)
    s1, s2 = _sample(seed=0), _sample(seed=1)
    s2.edited_image = s1.edited_image
    a, b = _edit(method, s1), _edit(method, s2)
    assert a.nfe == 6 == counter.calls / 2 and a.frames.shape == (6, H, W, 3)  # full schedule, no inversion
    assert np.array_equal(a.frames, b.frames)


# ----------------------------------------------------------------------------- long videos (Fig. 7b)
def test_block_starts_cover_a_50_frame_video_with_a_14_frame_model():
    from videoshop_bench.baselines.long_video import block_starts, block_video

    assert block_starts(50, 14) == [0, 13, 26, 39]
    assert block_starts(14, 14) == [0] and block_starts(15, 14) == [0, 13]
    frames, real = block_video(np.arange(50)[:, None], 39, 14, "pad")
    assert real == 11 and len(frames) == 14 and (frames[11:] == 49).all()
    assert len(block_video(np.arange(50)[:, None], 39, 14, "short")[0]) == 11


def test_block_recurrent_videoshop_conditions_each_block_on_the_previous_last_edited_frame(tiny_pipeline):
    from videoshop_bench.baselines.long_video import BlockRecurrentVideoshop

    calls = []

    class Spy:
        def __getattr__(self, name):
            return getattr(tiny_pipeline, name)

        def __call__(self, video, edited_image, **kw):
            out = tiny_pipeline(video=video, edited_image=edited_image, **kw)
            calls.append((np.array(video), np.array(edited_image), out.frames))
            return out

    method = BlockRecurrentVideoshop(Spy(), height=H, width=W, block_frames=6, **STEPS)
    assert method.handles_any_length
    s = _sample(t=14)
    res = _edit(method, s)
    assert res.frames.shape == (14, H, W, 3) and res.info["blocks"] == 3 and res.nfe == 3 * 6
    assert np.array_equal(calls[0][1], s.edited_image)
    for k in (1, 2):  # block k: source starts at frame 5k, conditioned on block k-1's last edited frame
        assert np.array_equal(calls[k][0][0], s.source_video[5 * k])
        assert np.array_equal(calls[k][1], calls[k - 1][2][-1])
    assert np.array_equal(res.frames[:6], calls[0][2]) and np.array_equal(res.frames[6:11], calls[1][2][1:])
    assert len(calls[2][0]) == 6  # last block: 4 real frames padded to the model's 6
    assert np.array_equal(res.frames, _edit(method, s).frames)


def test_short_video_is_one_block_equal_to_videoshop(tiny_pipeline):
    from videoshop_bench.baselines.long_video import BlockRecurrentVideoshop

    s = _sample(t=6)
    long = _edit(BlockRecurrentVideoshop(tiny_pipeline, height=H, width=W, block_frames=6, **STEPS), s)
    plain = _edit(VideoshopMethod(tiny_pipeline, height=H, width=W, **STEPS), s)
    assert np.array_equal(long.frames, plain.frames) and long.nfe == plain.nfe


# ----------------------------------------------------------------------------- AnimateLCM (Fig. 7a)
def test_animatelcm_sigmas_follow_the_reference_schedule():
    from videoshop_bench.baselines.animatelcm import animatelcm_sigmas

    s = animatelcm_sigmas(4)
    assert len(s) == 5 and s[-1] == 0 and math.isclose(float(s[0]), 700.0)
    ramp30 = karras_sigmas(40, 0.002, 700.0)[30]  # index 30 of the 40-level Karras ladder
    assert math.isclose(float(s[3]), float(ramp30), rel_tol=1e-9)
    assert torch.all(s[:-1] > s[1:])


def test_deterministic_consistency_step_is_the_euler_step():
    """x_t = D + sigma_t (x - D) / sigma_{t+1}  (consistency step with z := the model's noise estimate) == Eq. 3."""
    g = torch.Generator().manual_seed(0)
    x, F = torch.randn(3, 5, generator=g, dtype=torch.float64) * 9, torch.randn(3, 5, generator=g, dtype=torch.float64)
    D = denoised(x, F, edm_coefficients(9.0))
    assert torch.allclose(D + 2.5 * (x - D) / 9.0, euler_step(x, F, 9.0, 2.5), atol=1e-12)


def test_animatelcm_refuses_the_stochastic_sampler_with_the_reason(tiny_pipeline):
    from videoshop_bench.baselines.animatelcm import AnimateLCMVideoshop

    with pytest.raises(ValueError, match="fresh noise"):
        AnimateLCMVideoshop(tiny_pipeline, sampler="stochastic")


def test_animatelcm_deterministic_edit_runs_on_the_tiny_stand_in(counting):
    from videoshop_bench.baselines.animatelcm import AnimateLCMVideoshop, animatelcm_sigmas

    pipe, counter = counting
    method = AnimateLCMVideoshop(pipe, height=H, width=W, num_inference_steps=8, min_guidance_scale=1.0,
                                 max_guidance_scale=1.0)
    assert method.weights is None  # tiny UNet: 'auto' loads nothing
    assert torch.equal(method.sigmas, truncate_by_strength(animatelcm_sigmas(8), 0.55))
    s = _sample()
    a, b = _edit(method, s), _edit(method, s)
    assert a.nfe == 8 == counter.calls / 2 and np.array_equal(a.frames, b.frames) and a.finite
    bdia = AnimateLCMVideoshop(pipe, height=H, width=W, inversion="bdia", num_inference_steps=8)
    assert _edit(bdia, s).nfe == 4 + 3


def test_animatelcm_missing_weights_fail_fast_in_one_line(tiny_pipeline, tmp_path):
    from videoshop_bench.baselines.animatelcm import AnimateLCMVideoshop
    from videoshop.models import MissingWeightsError

    with pytest.raises(MissingWeightsError) as e:
        AnimateLCMVideoshop(tiny_pipeline, weights=str(tmp_path))
    assert "\n" not in str(e.value) and "method.weights" in str(e.value)
    with pytest.raises(MissingWeightsError) as e:
        AnimateLCMVideoshop(tiny_pipeline, weights="wangfuyun/AnimateLCM-SVD-xt", allow_download=False)
    assert "\n" not in str(e.value)


def test_animatelcm_weights_load_strictly_into_the_unet(tiny_pipeline, tmp_path):
    """A state dict saved from the same architecture loads (and changes outputs); a mismatching one fails."""
    from safetensors.torch import save_file

    from videoshop_bench.baselines.animatelcm import load_animatelcm_unet
    from videoshop.models import MissingWeightsError, build_random_components, tiny_component_configs

    other = build_random_components(tiny_component_configs(), seed=11)["unet"]
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(path))
    unet = build_random_components(tiny_component_configs(), seed=0)["unet"]
    load_animatelcm_unet(unet, str(path))
    assert all(torch.equal(a, b) for a, b in zip(unet.state_dict().values(), other.state_dict().values()))
    bad = tmp_path / "bad.safetensors"
    save_file({"nope": torch.zeros(1)}, str(bad))
    with pytest.raises(MissingWeightsError):
        load_animatelcm_unet(unet, str(bad))


def test_consistency_generation_is_seeded(tiny_pipeline):
    from videoshop_bench.baselines.animatelcm import animatelcm_sigmas

    img = _video(5, 1)[0]
    run = lambda seed: tiny_pipeline.generate(img, 6, height=H, width=W, sigmas=animatelcm_sigmas(4),  # noqa: E731
                                              sampler="consistency", generator=torch.Generator().manual_seed(seed))
    a, b, c = run(1), run(1), run(2)
    assert a.nfe == 4 and np.array_equal(a.frames, b.frames) and not np.array_equal(a.frames, c.frames)
