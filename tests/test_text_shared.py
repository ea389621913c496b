"""Shared machinery of the text-driven baselines: DDIM schedule/step/inversion, attention processors, models,
prompts (baselines/text/)."""

import json

import numpy as np
import pytest
import torch

from videoshop_bench.baselines.text.attention import (FrameFeatureBank, attend, cross_frame_processors, installed_processors,
                                      self_attention_layers)
from videoshop_bench.baselines.text.ddim import ddim_invert, ddim_sample, ddim_schedule, ddim_transfer
from videoshop_bench.baselines.text.prompts import (RULE, PromptResolver, apply_prompt_overrides, read_prompt_overrides)
from videoshop_bench.datasets.schema import Sample, SampleError

PIX2VIDEO_SCHED = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                       set_alpha_to_one=False, steps_offset=0)
SD15_SCHED = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                  set_alpha_to_one=False, steps_offset=1)



pytestmark = pytest.mark.usefixtures("one_thread")

# ------------------------------------------------------------------------------------------- DDIM
def test_schedule_matches_the_official_timesteps():
    s = ddim_schedule(PIX2VIDEO_SCHED, 50)
    assert s.timesteps[0] == 980 and s.timesteps[-1] == 0 and len(s) == 50
    s1 = ddim_schedule(SD15_SCHED, 50)
    assert s1.timesteps[0] == 981 and s1.timesteps[-1] == 1
    assert torch.all(s.alpha_prev[:-1] > s.alpha[:-1])  # sampling goes towards less noise
    # Pix2Video's quirk: the last step goes from t = 0 to final_alpha_cumprod = abar_0 (set_alpha_to_one False)
    assert s.alpha_prev[-1] == s.alpha[-1]


def test_ddim_step_equals_diffusers_ddim_scheduler_step():
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(**SD15_SCHED)
    sched.set_timesteps(10)
    s = ddim_schedule(SD15_SCHED, 10)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 8, 8, generator=g, dtype=torch.float64)
    for i, t in enumerate(sched.timesteps):
        eps = torch.randn(x.shape, generator=g, dtype=torch.float64)
        ref = sched.step(eps, t, x, eta=0.0).prev_sample
        ours, _ = ddim_transfer(x, eps, s.alpha[i], s.alpha_prev[i])
        assert torch.allclose(ours, ref, atol=1e-6), i  # diffusers keeps abar in float32
        x = ref


def test_inversion_then_sampling_reconstructs_better_with_more_steps_on_the_analytic_model():
    from videoshop_bench.research.ddim_reconstruction import analytic_case, round_trip_error

    eps, x0 = analytic_case()
    assert len(ddim_invert(eps, x0, ddim_schedule(PIX2VIDEO_SCHED, 7))) == 8  # the trajectory x0, ..., x_T
    steps = [5, 10, 25, 50, 200]
    errors = [round_trip_error(eps, x0, n)[0] for n in steps]
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    # first order in the step size (measured max |error| 0.62, 0.35, 0.18, 0.098, 0.026 for data of std 0.5)
    assert errors[-1] < 0.04 and errors[-1] < errors[0] / 20, errors


def test_sampling_callback_can_replace_the_latent_and_sees_x0():
    s = ddim_schedule(SD15_SCHED, 4)
    seen = []
    out = ddim_sample(lambda x, t, i: (torch.zeros_like(x), torch.ones_like(x)), torch.ones(1, 1, 2, 2), s,
                      guidance_scale=2.0, callback=lambda i, t, xp, x0: seen.append((i, t)) or torch.zeros_like(xp))
    assert seen == [(i, int(t)) for i, t in enumerate(s.timesteps)] and torch.equal(out, torch.zeros(1, 1, 2, 2))


# ------------------------------------------------------------------------------------------- attention
@pytest.fixture(scope="module")
def tiny_sd():
    from videoshop_bench.baselines.text.models import build_random_sd

    return build_random_sd("tiny", in_channels=4)


def test_attn1_layers_in_forward_order_and_prefix_filter(tiny_sd):
    names = self_attention_layers(tiny_sd.unet)
    assert names[0].startswith("down_blocks") and names[1].startswith("mid_block") and names[-1].startswith("up_blocks")
    assert all(n.endswith("attn1.processor") for n in names)
    assert self_attention_layers(tiny_sd.unet, ["up_blocks"]) == [n for n in names if n.startswith("up_blocks")]


def test_attend_with_own_tokens_equals_the_default_processor(tiny_sd):
    attn = tiny_sd.unet.up_blocks[1].attentions[0].transformer_blocks[0].attn1
    x = torch.randn(2, 16, attn.to_q.in_features, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(attend(attn, x, x), attn(x), atol=1e-5)


def test_installed_processors_are_restored_and_cross_frame_keys_come_from_the_bank(tiny_sd):
    unet = tiny_sd.unet
    before = {k: type(v) for k, v in unet.attn_processors.items()}
    trace = []
    bank = FrameFeatureBank("anchor_prev", trace=trace)
    procs = cross_frame_processors(unet, bank, ["up_blocks"])
    x = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    ctx = torch.randn(1, 77, 32, generator=torch.Generator().manual_seed(2))
    outs = []
    with installed_processors(unet, procs):
        for f in range(3):
            bank.begin_frame(f, "record" if f == 0 else "inject")
            outs.append(unet(x[f:f + 1], 500, encoder_hidden_states=ctx).sample)
            bank.end_frame(is_anchor=f == 0)
    assert {k: type(v) for k, v in unet.attn_processors.items()} == before
    plain = unet(x[2:3], 500, encoder_hidden_states=ctx).sample
    assert not torch.allclose(outs[2], plain, atol=1e-4)  # injection changed frame 2
    first = {r["layer"]: r["query_input"] for r in trace if r["frame"] == 0}
    second = {r["layer"]: r["query_input"] for r in trace if r["frame"] == 1}
    for r in (r for r in trace if r["frame"] == 2):
        n = first[r["layer"]].shape[1]
        assert torch.equal(r["kv_input"][:, :n], first[r["layer"]])  # frame 0's tokens reach frame 2
        assert torch.equal(r["kv_input"][:, n:], second[r["layer"]])  # and the previous frame's
    with pytest.raises(KeyError):
        with installed_processors(unet, {"nope.processor": None}):
            pass


# ------------------------------------------------------------------------------------------- models
def test_missing_weights_fail_with_one_line_naming_the_key(tmp_path):
    from videoshop_bench.baselines.text.models import resolve_source
    from videoshop.models import MissingWeightsError

    with pytest.raises(MissingWeightsError, match=r"^method\.controlnet\.path=.* holds no config.json") as e:
        resolve_source("lllyasviel/control_v11f1p_sd15_depth", str(tmp_path), "method.controlnet")
    assert "\n" not in str(e.value)
    with pytest.raises(MissingWeightsError, match=r"^method\.base: some/never-cached-model is not cached"):
        resolve_source("some/never-cached-model", None, "method.base", allow_download=True)


def test_tiny_clip_tokenizer_round_trips_text():
    from videoshop_bench.baselines.text.models import tiny_clip_tokenizer

    tok = tiny_clip_tokenizer()
    ids = tok("a cat running", padding="max_length", max_length=77).input_ids
    assert len(ids) == 77 and tok.decode(ids, skip_special_tokens=True).replace(" ", "") == "acatrunning"


# ------------------------------------------------------------------------------------------- prompts
def _sample(sid="s0", instruction="make the cat blue", src="a cat on a mat", tgt=None):
    v = np.zeros((2, 32, 32, 3), np.uint8)
    return Sample(sample_id=sid, source_video=v, edited_image=v[0], instruction=instruction, source_prompt=src,
                  target_prompt=tgt)


def test_dataset_prompts_win_and_the_override_file_wins_over_them(tmp_path):
    r = PromptResolver(backbone="tiny", cache_dir=str(tmp_path / "c"))
    p = r.resolve(_sample(tgt="a blue cat on a mat"))
    assert (p.source_prompt, p.target_prompt, p.source_how, p.target_how) == \
        ("a cat on a mat", "a blue cat on a mat", "dataset", "dataset")
    assert not r._models  # no model loaded when the dataset gives both prompts
    f = tmp_path / "p.csv"
    f.write_text("id,source_prompt,target_prompt\ns0,,a red cat\n")
    s = apply_prompt_overrides(_sample(tgt="a blue cat on a mat"), read_prompt_overrides(str(f)), str(f))
    p = r.resolve(s)
    assert p.target_prompt == "a red cat" and p.target_how == "override:p.csv"
    assert p.source_prompt == "a cat on a mat" and p.source_how == "dataset"
    j = tmp_path / "p.json"
    j.write_text(json.dumps({"s0": {"source_prompt": "a dog", "target_prompt": "a cat"}}))
    p = r.resolve(apply_prompt_overrides(_sample(), read_prompt_overrides(str(j)), str(j)))
    assert (p.source_prompt, p.target_prompt, p.source_how) == ("a dog", "a cat", "override:p.json")


def test_missing_prompts_are_derived_and_cached_and_the_rule_is_recorded(tmp_path):
    r = PromptResolver(backbone="tiny", cache_dir=str(tmp_path))
    p = r.resolve(_sample(src=None))
    assert p.source_how.startswith("caption:tiny-random(") and p.target_how.startswith(("rewrite:", "rule"))
    again = PromptResolver(backbone="tiny", cache_dir=str(tmp_path))
    assert again.resolve(_sample(src=None)) == p and not again._models  # from the JSON cache
    rule = PromptResolver(backbone="tiny", rewriter=None, target_fallback="rule")
    p = rule.resolve(_sample())
    assert p.target_prompt == "a cat on a mat, make the cat blue" and p.target_how == RULE


def test_reconstruction_uses_the_source_prompt_as_target():
    p = PromptResolver(backbone="tiny").resolve(_sample(tgt="a blue cat").as_reconstruction())
    assert (p.target_prompt, p.target_how) == ("a cat on a mat", "reconstruction:source_prompt")


def test_no_instruction_and_no_prompts_is_a_one_line_error_naming_the_field():
    with pytest.raises(SampleError, match=r"s0: no target_prompt and no instruction .*field 'instruction'") as e:
        PromptResolver(backbone="tiny").resolve(_sample(instruction="", src=None))
    assert "\n" not in str(e.value)


def test_bad_override_files_fail_with_one_line_naming_the_file(tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text("name,prompt\nx,y\n")
    with pytest.raises(ValueError, match="dataset.prompts=.*bad.csv: CSV needs columns"):
        read_prompt_overrides(str(f))
    with pytest.raises(FileNotFoundError, match="dataset.prompts=.*missing.json: no such file"):
        read_prompt_overrides(str(tmp_path / "missing.json"))


def test_full_size_random_architectures_match_the_real_checkpoints_parameter_counts():
    """``weights=random`` (GPU timing without downloads) builds the real architectures: parameter counts of
    SD2-depth's UNet (865.9M), SD1.5's UNet (859.5M), ControlNet v1.1 (361.3M), the SD VAE (83.7M), OpenCLIP-H's
    text tower (340.4M), CLIP-L's (123.1M), DPT-Hybrid (122.4M, Intel/dpt-hybrid-midas ~123M). Built on the meta
    device: no memory, no weights."""
    from videoshop_bench.baselines.text.models import build_random_sd

    with torch.device("meta"):
        p2v = build_random_sd("full", in_channels=5, sd2=True, depth="dpt")
        rave = build_random_sd("full", controlnet=True)
    millions = lambda m: round(sum(p.numel() for p in m.parameters()) / 1e6, 1)  # noqa: E731
    assert [millions(m) for m in (p2v.unet, p2v.vae, p2v.text_encoder, p2v.depth_estimator)] == [865.9, 83.7, 340.4, 122.4]
    assert [millions(m) for m in (rave.unet, rave.controlnet, rave.text_encoder)] == [859.5, 361.3, 123.1]
    assert p2v.unet.config.in_channels == 5 and p2v.unet.config.cross_attention_dim == 1024


def test_tiny_clip_tokenizer_builds_concurrently():
    """Each build writes its vocabulary into a private temp dir: builds in parallel never read a half-written file
    (a shared dir raced under concurrent test runs and SLURM workers on one node)."""
    from concurrent.futures import ThreadPoolExecutor

    from videoshop.tokenizers import tiny_clip_tokenizer

    with ThreadPoolExecutor(8) as pool:
        toks = list(pool.map(lambda _: tiny_clip_tokenizer(), range(16)))
    ids = {tuple(t("a red ball on grass").input_ids) for t in toks}
    assert len(ids) == 1 and len(toks[0].get_vocab()) == 2 * 256 + 2
