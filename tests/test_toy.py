"""The toy world's model: its training code runs deterministically, and the shipped weights load offline."""

import json
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir

CONF = str(Path(__file__).resolve().parents[1] / "conf")


def _cfg(overrides):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("config", overrides=overrides + ["paths.output=.", "logger=none"])


def test_edm_training_loss_pieces():
    from videoshop_bench.research.toy_training import edm_loss_weight, sample_training_sigmas

    s = sample_training_sigmas(100_000, torch.Generator().manual_seed(0), p_mean=0.7, p_std=1.6)
    assert abs(float(s.log().mean()) - 0.7) < 0.02 and abs(float(s.log().std()) - 1.6) < 0.02
    # v-prediction with sigma_data = 1: lambda(sigma) * c_out^2 = 1 (the effective F-target loss is unweighted)
    sig = torch.tensor([0.01, 1.0, 50.0])
    assert torch.allclose(edm_loss_weight(sig) * sig**2 / (sig**2 + 1), torch.ones(3))


def test_train_toy_runs_and_is_deterministic(tmp_path):
    """Two short runs of the real training entry point (shrunk config) give identical losses and weights: one
    from scratch (checkpointing stage 1), one resuming from that checkpoint (stages 2-3 in a later invocation)."""
    from videoshop_bench.research.train_toy import run_train

    results = []
    for k, extra in enumerate([f"train.stage1_dir={tmp_path / 'stage1'}", f"train.vae_from={tmp_path / 'stage1'}"]):
        cfg = _cfg(["experiment=train_toy", "task=train_toy", "train.num_videos=2", "train.vae_steps=1",
                    "train.vae_batch=1", "train.unet_steps=2", "train.unet_batch=2", "train.decoder_steps=2",
                    f"train.output_dir={tmp_path / str(k)}", extra])
        summary = run_train(cfg)
        results.append(summary)
        assert (tmp_path / str(k) / "MODEL_CARD.md").is_file()
        assert (tmp_path / str(k) / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert results[0]["final_vae_loss"] == results[1]["final_vae_loss"]
    assert results[0]["final_unet_loss"] == results[1]["final_unet_loss"]
    assert np.isfinite(results[0]["final_unet_loss"])
    for part in ("unet", "vae"):
        a = (tmp_path / "0" / part / "diffusion_pytorch_model.safetensors").read_bytes()
        assert a == (tmp_path / "1" / part / "diffusion_pytorch_model.safetensors").read_bytes()


def test_stage3_resumed_from_saved_stages_1_2_equals_one_full_run(tmp_path):
    """The shipped model's recipe: stages 1-2 with decoder_steps=0, then stage 3 alone (train.resume_from, with
    latent jitter) gives the same weights as one run of all three stages; the summary counts one stage 3 only."""
    from videoshop_bench.research.train_toy import run_train

    base = ["experiment=train_toy", "task=train_toy", "train.num_videos=2", "train.vae_steps=1", "train.vae_batch=1",
            "train.unet_steps=2", "train.unet_batch=2", "train.decoder_latent_noise=0.5"]
    full = run_train(_cfg(base + ["train.decoder_steps=2", f"train.output_dir={tmp_path / 'full'}"]))
    first = run_train(_cfg(base + ["train.decoder_steps=0", f"train.output_dir={tmp_path / 'stage12'}"]))
    resumed = run_train(_cfg(base + ["train.decoder_steps=2", f"train.resume_from={tmp_path / 'stage12'}",
                                     f"train.output_dir={tmp_path / 'stage3'}"]))
    for part in ("unet", "vae"):
        a = (tmp_path / "full" / part / "diffusion_pytorch_model.safetensors").read_bytes()
        assert a == (tmp_path / "stage3" / part / "diffusion_pytorch_model.safetensors").read_bytes(), part
    assert resumed["final_decoder_loss"] == full["final_decoder_loss"]
    t0, t1 = first["times"], resumed["times"]
    assert abs(t1["total_s"] - (t0["total_s"] - t0.get("decoder_s", 0.0) + t1["decoder_s"] + t1["render_s"])) < 1e-6
    assert "jitter" in (tmp_path / "stage3" / "MODEL_CARD.md").read_text()


def test_retraining_the_unet_on_a_kept_vae_reproduces_that_runs_stage_2(tmp_path):
    """train.retrain_unet_from keeps the saved run's VAE byte for byte and trains stage 2 alone. From a run whose
    stages 1 and 3 drew nothing (0 steps), the retrained UNet equals that run's UNet: same init, batches, noise."""
    from videoshop_bench.research.train_toy import run_train

    base = ["experiment=train_toy", "task=train_toy", "train.num_videos=2", "train.vae_steps=0", "train.unet_steps=3",
            "train.unet_batch=2", "train.decoder_steps=0"]
    first = run_train(_cfg(base + [f"train.output_dir={tmp_path / 'run'}"]))
    again = run_train(_cfg(base + [f"train.retrain_unet_from={tmp_path / 'run'}", f"train.output_dir={tmp_path / 're'}"]))
    for part in ("unet", "vae"):
        a = (tmp_path / "run" / part / "diffusion_pytorch_model.safetensors").read_bytes()
        assert a == (tmp_path / "re" / part / "diffusion_pytorch_model.safetensors").read_bytes(), part
    assert again["final_unet_loss"] == first["final_unet_loss"] and again["unet_steps"] == 3
    assert again["unet_device"] == "CPU" and again["command"].startswith(first["command"] + " && ")
    card = (tmp_path / "re" / "MODEL_CARD.md").read_text()
    assert "retrain_unet_from" in card


def test_retraining_a_wider_unet_keeps_the_vae_and_its_stage_3_figures(tmp_path):
    from videoshop_bench.research.train_toy import run_train

    base = ["experiment=train_toy", "task=train_toy", "train.num_videos=2", "train.vae_steps=1", "train.vae_batch=1",
            "train.unet_steps=1", "train.unet_batch=2", "train.decoder_steps=2"]
    first = run_train(_cfg(base + [f"train.output_dir={tmp_path / 'run'}"]))
    again = run_train(_cfg(base + ["train.num_videos=3", "train.unet_attention=[true,true]",
                                   f"train.retrain_unet_from={tmp_path / 'run'}", f"train.output_dir={tmp_path / 're'}"]))
    a = (tmp_path / "run" / "vae" / "diffusion_pytorch_model.safetensors").read_bytes()
    assert a == (tmp_path / "re" / "vae" / "diffusion_pytorch_model.safetensors").read_bytes()
    assert again["unet_params"] > first["unet_params"]
    for k in ("final_decoder_loss", "final_decoder_l1", "decoder_steps", "final_vae_loss", "scaling_factor"):
        assert again[k] == first[k], k
    assert again["vae_num_videos"] == 2 and again["train"]["num_videos"] == 3
    assert "the VAE was trained on the first 2 of them" in (tmp_path / "re" / "MODEL_CARD.md").read_text()
    losses = np.load(tmp_path / "re" / "loss_history.npz")
    assert len(losses["unet"]) == 1 and len(losses["decoder"]) == 2


def test_a_warm_restart_starts_from_the_saved_unet_and_continues_its_loss_history(tmp_path):
    import pytest

    from videoshop_bench.research.train_toy import run_train

    base = ["experiment=train_toy", "task=train_toy", "train.num_videos=2", "train.vae_steps=0", "train.unet_steps=2",
            "train.unet_batch=2", "train.decoder_steps=0"]
    run_train(_cfg(base + [f"train.output_dir={tmp_path / 'run'}"]))
    keep = ["train.unet_steps=0", f"train.retrain_unet_from={tmp_path / 'run'}", f"train.unet_init_from={tmp_path / 'run'}"]
    same = run_train(_cfg(base + keep + [f"train.output_dir={tmp_path / 'same'}"]))
    a = (tmp_path / "run" / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    assert a == (tmp_path / "same" / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()  # 0 new steps
    more = run_train(_cfg(base + keep[1:] + ["train.unet_steps=3", f"train.output_dir={tmp_path / 'more'}"]))
    assert more["unet_steps"] == 5 and more["unet_warm_start_steps"] == 2 and same["unet_steps"] == 2
    old, new = np.load(tmp_path / "run" / "loss_history.npz")["unet"], np.load(tmp_path / "more" / "loss_history.npz")["unet"]
    assert len(new) == 5 and (new[:2] == old).all()
    assert "warm restart" in (tmp_path / "more" / "MODEL_CARD.md").read_text()
    assert more["command"].startswith(same["command"].rsplit(" && ", 1)[0] + " && ")  # the chain: run && warm restart
    with pytest.raises(ValueError, match="another architecture"):
        run_train(_cfg(base + keep + ["train.unet_attention=[true,true]", f"train.output_dir={tmp_path / 'x'}"]))
    with pytest.raises(ValueError, match="train.retrain_unet_from too"):
        run_train(_cfg(base + [keep[2], f"train.output_dir={tmp_path / 'y'}"]))


def test_retrain_unet_from_a_folder_without_a_run_fails_naming_it(tmp_path):
    import pytest

    from videoshop_bench.research.train_toy import run_train

    cfg = _cfg(["experiment=train_toy", "task=train_toy", "train.num_videos=1", f"train.retrain_unet_from={tmp_path}",
                f"train.output_dir={tmp_path / 'out'}"])
    with pytest.raises(FileNotFoundError, match="train.retrain_unet_from"):
        run_train(cfg)


def test_a_time_budget_anneals_the_learning_rate_as_the_steps_would():
    from videoshop_bench.research.toy_stages import _lr

    base, total = 1e-3, 1000
    assert _lr(500, total, base, 100, 0.1) == _lr(500, total, base, 100, 0.1, 0.0)  # no budget: steps alone
    assert _lr(150, total, base, 100, 0.1, 1.0) == base * 0.1  # budget spent: the final rate
    assert _lr(150, total, base, 100, 0.1, 2.0) == base * 0.1  # overrun: clamped
    mid = _lr(150, total, base, 100, 0.1, 0.5)
    assert abs(mid - base * 0.55) < 1e-12  # half the budget: half way down the cosine
    assert _lr(50, total, base, 100, 0.1, 0.9) == base * 51 / 100  # warm-up is by steps


def test_ema_update_is_decay_times_ema_plus_the_rest_times_the_model():
    from videoshop_bench.research.toy_training import ema_update

    torch.manual_seed(0)
    model, ema = torch.nn.Linear(5, 3), torch.nn.Linear(5, 3)
    ref = [pe.detach().clone() * 0.9 + pm.detach() * (1 - 0.9) for pe, pm in zip(ema.parameters(), model.parameters())]
    ema_update(ema, model, 0.9)
    for r, pe in zip(ref, ema.parameters()):
        assert torch.allclose(pe, r, atol=1e-7, rtol=0)


def test_toy_latent_channels_set_the_vae_and_unet_widths():
    from videoshop_bench.research.toy_training import toy_component_configs

    c = toy_component_configs(8, latent_channels=8)
    assert c["vae"]["latent_channels"] == 8
    assert (c["unet"]["in_channels"], c["unet"]["out_channels"]) == (16, 8)  # noisy latent + first-frame latent


def test_vae_from_without_a_checkpoint_fails_naming_the_path(tmp_path):
    import pytest

    from videoshop_bench.research.train_toy import run_train

    cfg = _cfg(["experiment=train_toy", "train.num_videos=1", f"train.vae_from={tmp_path}",
                f"train.output_dir={tmp_path / 'out'}"])
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        run_train(cfg)


def test_bootstrap_interval_covers_samples_and_seeds():
    import pandas as pd

    from videoshop_bench.research.evaluate_toy import bootstrap_ci

    rng = np.random.default_rng(0)
    rows = [dict(sample_id=f"s{i}", seed=k, x=float(i) + 0.1 * k) for i in range(40) for k in range(2)]
    m, lo, hi = bootstrap_ci(pd.DataFrame(rows), "x")
    assert lo < m < hi and abs(m - 19.55) < 1e-9
    assert 2 < hi - lo < 12  # sd of 0..39 is 11.5, so the mean's 95 % interval is about 2 x 1.96 x 11.5/sqrt(40)
    const = pd.DataFrame([dict(sample_id=f"s{i}", seed=0, x=3.0) for i in range(10)])
    assert bootstrap_ci(const, "x") == (3.0, 3.0, 3.0)
    # seed-only variation widens the interval of a per-sample-constant quantity
    noisy = pd.DataFrame([dict(sample_id=f"s{i}", seed=k, x=3.0 + rng.normal()) for i in range(10) for k in range(3)])
    m, lo, hi = bootstrap_ci(noisy, "x")
    assert hi - lo > 0.3
    nan = pd.DataFrame([dict(sample_id="s0", seed=0, x=float("nan"))])
    assert all(np.isnan(v) for v in bootstrap_ci(nan, "x"))


def test_vae_crop_is_one_aligned_window_shared_by_all_frames():
    import pytest

    from videoshop_bench.research.toy_stages import random_crop

    clips = torch.arange(2 * 3 * 3 * 32 * 56, dtype=torch.float32).view(2, 3, 3, 32, 56)
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(20):
        c = random_crop(clips, 16, 24, g)
        assert c.shape == (2, 3, 3, 16, 24)
        y, x = divmod(int(c[0, 0, 0, 0, 0]), 56)
        assert y % 4 == 0 and x % 4 == 0
        assert torch.equal(c, clips[..., y : y + 16, x : x + 24])
        seen.add((y, x))
    assert len(seen) > 5
    with pytest.raises(ValueError, match="vae_crop"):
        random_crop(clips, 40, 24, g)


def test_shipped_toy_model_loads_offline_and_generates():
    from videoshop.models import build_pipeline

    cfg = _cfg(["model=toy"])
    root = Path(__file__).resolve().parents[1] / cfg.model.path
    size = sum(f.stat().st_size for f in root.rglob("*.safetensors"))
    assert size <= 50 * 2**20
    card = json.loads((root / "training_summary.json").read_text())
    assert card["unet_steps"] > 0
    pipe = build_pipeline(cfg.model, "cpu")
    pipe.set_progress_bar_config(disable=True)
    image = np.full((cfg.model.height, cfg.model.width, 3), 128, np.uint8)
    out = pipe.generate(image, int(cfg.model.num_frames), num_inference_steps=2,
                        generator=torch.Generator().manual_seed(0))
    assert out.frames.shape == (cfg.model.num_frames, cfg.model.height, cfg.model.width, 3)
    assert out.finite


def test_a_toy_with_8_latent_channels_trains_on_crops_and_edits(tmp_path):
    """The pipeline and Videoshop's method take the latent width from the weights (no 4-channel assumption)."""
    from hydra.utils import instantiate

    from videoshop_bench.datasets.synthetic import SyntheticDataset
    from videoshop_bench.research.train_toy import run_train
    from videoshop.models import build_pipeline

    cfg = _cfg(["experiment=train_toy", "train.num_videos=2", "train.vae_steps=1", "train.vae_batch=1",
                "train.unet_steps=1", "train.unet_batch=2", "train.decoder_steps=1", "train.latent_channels=8",
                "train.vae_crop=[16,24]", f"train.output_dir={tmp_path}"])
    run_train(cfg)
    mcfg = _cfg(["model=toy", f"model.path={tmp_path}", "method=videoshop", "method.num_inference_steps=4"])
    pipe = build_pipeline(mcfg.model, "cpu")
    pipe.set_progress_bar_config(disable=True)
    assert pipe.vae.config.latent_channels == 8 and pipe.unet.config.in_channels == 16
    method = instantiate(mcfg.method, pipeline=pipe, _convert_="all")
    ds = SyntheticDataset(1, 8, 32, 56, seed=1000, difficulty="easy")
    res = method.edit(ds.load(ds.sample_ids()[0]), torch.Generator().manual_seed(0))
    assert res.frames.shape == (8, 32, 56, 3) and res.finite


def test_paired_differences_subtract_the_reference_on_the_same_samples_and_seeds(tmp_path):
    import pandas as pd

    from videoshop_bench.research.evaluate_toy import paired_differences

    ref = [dict(sample_id=f"s{i}", seed=k, psnr=20.0 + i, psnr_in=10.0, psnr_out=30.0, ssim=50.0)
           for i in range(6) for k in (42, 43)]
    pd.DataFrame(ref).to_csv(tmp_path / "videoshop.csv", index=False)
    # the ablation has only seed 42 of four samples, each exactly 1 dB below the reference
    abl = [dict(r, psnr=r["psnr"] - 1.0) for r in ref if r["seed"] == 42 and r["sample_id"] < "s4"]
    pd.DataFrame(abl).to_csv(tmp_path / "videoshop_no_norm.csv", index=False)
    lines = paired_differences(tmp_path, ["videoshop_no_norm", "absent"])
    row = [ln for ln in lines if ln.startswith("| videoshop_no_norm")]
    assert len(row) == 1 and "-1.00 [-1.00, -1.00]" in row[0] and "| 4 x 1 |" in row[0]


def test_zero_initialised_residual_branches_make_every_vae_block_the_identity():
    """After videoshop_bench.research.toy_training.zero_init_residual_branches each resnet and attention block of SVD's VAE returns its
    input exactly (and does not before); nothing else changes."""
    from diffusers import AutoencoderKLTemporalDecoder

    from videoshop_bench.research.toy_training import VAE_BRANCH_OUTPUTS, toy_component_configs, zero_init_residual_branches

    cfgs = toy_component_configs(num_frames=4, latent_channels=8)
    torch.manual_seed(0)
    vae = AutoencoderKLTemporalDecoder(**cfgs["vae"]).eval()
    x = torch.randn(4, 64, 8, 14)  # 4 frames at the encoder's and decoder's last width (64)
    ind = torch.zeros(1, 4)
    enc_res, enc_attn = vae.encoder.mid_block.resnets[0], vae.encoder.mid_block.attentions[0]
    dec_res, dec_attn = vae.decoder.mid_block.resnets[0], vae.decoder.mid_block.attentions[0]

    def identities():
        with torch.no_grad():
            return [torch.equal(enc_res(x, None), x), torch.equal(dec_res(x, image_only_indicator=ind), x),
                    torch.allclose(enc_attn(x), x, atol=0), torch.allclose(dec_attn(x), x, atol=0)]

    assert not any(identities())
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    assert zero_init_residual_branches(vae, VAE_BRANCH_OUTPUTS) == 21
    assert all(identities())
    zeroed = tuple(f"{s}.{w}" for s in VAE_BRANCH_OUTPUTS for w in ("weight", "bias"))
    for name, v in vae.state_dict().items():  # those layers are zero, nothing else was touched
        assert torch.equal(v, torch.zeros_like(v) if name.endswith(zeroed) else before[name]), name


def test_vae_subclips_are_consecutive_frames():
    import pytest

    from videoshop_bench.research.toy_stages import random_subclip

    clips = torch.arange(3 * 8, dtype=torch.float32).view(3, 8, 1, 1, 1).expand(3, 8, 3, 4, 4)
    g = torch.Generator().manual_seed(0)
    starts = set()
    for _ in range(20):
        c = random_subclip(clips, 2, g)
        assert c.shape == (3, 2, 3, 4, 4)
        s = int(c[0, 0, 0, 0, 0])
        assert torch.equal(c, clips[:, s : s + 2])
        starts.add(s)
    assert starts == set(range(7))
    with pytest.raises(ValueError, match="vae_frames=9"):
        random_subclip(clips, 9, g)


def test_an_unknown_vae_posterior_is_refused_in_one_line():
    import pytest
    from omegaconf import OmegaConf

    from videoshop_bench.research.toy_stages import train_vae

    with pytest.raises(ValueError, match="train.vae_posterior='means'"):
        train_vae(None, torch.zeros(1), OmegaConf.create({"vae_posterior": "means"}), torch.Generator(), [])


def test_toy_unet_widths_and_attention_levels_build_svds_blocks():
    """unet_channels / unet_attention choose the real SVD UNet's widths and, per level, transformer or resnet-only
    blocks (mirrored on the way up); the defaults are the tiny stand-in's UNet; a mismatch is refused in one line."""
    import pytest
    from diffusers import UNetSpatioTemporalConditionModel

    from videoshop.models import tiny_component_configs
    from videoshop_bench.research.toy_training import toy_component_configs

    default = toy_component_configs(8, latent_channels=8)["unet"]
    tiny = tiny_component_configs()["unet"]
    for k in ("block_out_channels", "down_block_types", "up_block_types", "num_attention_heads"):
        assert tuple(default[k]) == tuple(tiny[k]), k
    c = toy_component_configs(4, 8, unet_channels=(64, 128), unet_attention=(True, True))["unet"]
    assert c["down_block_types"] == ("CrossAttnDownBlockSpatioTemporal",) * 2
    assert c["up_block_types"] == ("CrossAttnUpBlockSpatioTemporal",) * 2 and c["num_attention_heads"] == (4, 8)
    c = toy_component_configs(4, 8, unet_channels=(64, 128), unet_attention=(False, True))["unet"]
    assert c["up_block_types"] == ("CrossAttnUpBlockSpatioTemporal", "UpBlockSpatioTemporal")
    unet = UNetSpatioTemporalConditionModel(**c)
    assert [type(b).__name__ for b in unet.down_blocks] == ["DownBlockSpatioTemporal", "CrossAttnDownBlockSpatioTemporal"]
    out = unet(torch.randn(1, 4, 16, 8, 14), torch.tensor([1.0]), encoder_hidden_states=torch.randn(1, 1, 32),
               added_time_ids=torch.randn(1, 3)).sample
    assert out.shape == (1, 4, 8, 8, 14)
    with pytest.raises(ValueError, match="one entry per level"):
        toy_component_configs(8, 8, unet_channels=(64, 128), unet_attention=(True,))


def test_frame_difference_loss_sees_flicker_not_a_constant_error():
    """frame_difference_l1 is 0 for an error that is the same in every frame (a static offset), and equals the
    mean |change of the error between frames| for one that flickers."""
    from videoshop_bench.research.toy_training import frame_difference_l1

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 3, 4, 6, generator=g)
    offset = torch.randn(2, 1, 3, 4, 6, generator=g)
    assert abs(frame_difference_l1(x + offset, x).item()) < 1e-6
    flicker = torch.randn(2, 5, 3, 4, 6, generator=g)
    expected = np.mean([np.abs(flicker[b, t + 1].numpy() - flicker[b, t].numpy()).mean()
                        for b in range(2) for t in range(4)])
    assert abs(frame_difference_l1(x + flicker, x).item() - expected) < 1e-5


def test_decoder_loss_adds_the_weighted_frame_difference_term():
    from diffusers import AutoencoderKLTemporalDecoder

    from videoshop_bench.research.toy_training import decoder_loss, toy_component_configs

    torch.manual_seed(0)
    vae = AutoencoderKLTemporalDecoder(**toy_component_configs(3, 4)["vae"]).eval()
    px = torch.rand(1, 3, 3, 32, 56, generator=torch.Generator().manual_seed(1)) * 2 - 1
    base, parts = decoder_loss(vae, px)
    weighted, parts2 = decoder_loss(vae, px, temporal_weight=2.0)
    assert parts["dt"] > 0 and parts2["dt"] == parts["dt"]
    assert abs(weighted.item() - (base.item() + 2.0 * parts["dt"])) < 1e-5
    assert abs(base.item() - (parts["l1"] + parts["l2"])) < 1e-5  # weight 0 is the plain reconstruction loss


def test_decoder_loss_latent_noise_decodes_jittered_latents_against_clean_pixels():
    """latent_noise s decodes z + s / scaling_factor * eps (eps from the generator, per frame) and scores it
    against the clean pixels; s = 0 draws nothing, so runs without it keep their random stream."""
    from diffusers import AutoencoderKLTemporalDecoder

    from videoshop_bench.research.toy_training import decoder_loss, toy_component_configs

    torch.manual_seed(0)
    vae = AutoencoderKLTemporalDecoder(**toy_component_configs(3, 4)["vae"]).eval()
    vae.config.scaling_factor = 2.0
    px = torch.rand(1, 3, 3, 32, 56, generator=torch.Generator().manual_seed(1)) * 2 - 1
    g = torch.Generator().manual_seed(7)
    _, clean = decoder_loss(vae, px, latent_noise=0.0, generator=g)
    assert torch.equal(g.get_state(), torch.Generator().manual_seed(7).get_state())
    _, noisy = decoder_loss(vae, px, latent_noise=0.5, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        z = vae.encode(px.flatten(0, 1)).latent_dist.mode()
        eps = torch.randn(z.shape, generator=torch.Generator().manual_seed(7))
        rec = vae.decode(z + 0.5 / 2.0 * eps, num_frames=3).sample
    assert abs(noisy["l1"] - (rec - px.flatten(0, 1)).abs().mean().item()) < 1e-6
    assert noisy["l1"] != clean["l1"]


def test_the_gpu_stage_2_script_runs_its_recipe_end_to_end_on_the_cpu(tmp_path):
    """research/train_toy_gpu.sh (the shipped model's stage 2: a run, then a warm restart) as a CPU dry run:
    both runs keep the shipped VAE byte for byte and the second continues the first's steps."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, DEVICE="cpu", NUM_VIDEOS="3", MIN1="0.005", MIN2="0.005", PYTHON=sys.executable)
    subprocess.run(["bash", "research/train_toy_gpu.sh", str(tmp_path)], cwd=root, env=env, check=True,
                   capture_output=True)
    first = json.loads((tmp_path / "gpu1" / "training_summary.json").read_text())
    second = json.loads((tmp_path / "gpu2" / "training_summary.json").read_text())
    assert second["unet_warm_start_steps"] == first["unet_steps"] >= 1
    assert second["unet_steps"] > first["unet_steps"] and second["unet_seed"] == 1
    shipped = (root / "videoshop" / "assets" / "toy" / "vae" / "diffusion_pytorch_model.safetensors").read_bytes()
    assert (tmp_path / "gpu2" / "vae" / "diffusion_pytorch_model.safetensors").read_bytes() == shipped


def test_training_stripes_change_only_the_objects_surface():
    """train.stripe_prob: at 0 the training videos are the world's own source videos (bit for bit); at 1 every
    object is striped and the scenes (background, shapes, paths) are the same, so only object pixels change; an
    out-of-range value names the key."""
    import pytest

    from videoshop_bench.datasets.synthetic import object_coverage, random_scene, render
    from videoshop_bench.research.toy_stages import render_training_videos

    plain = render_training_videos(7, 4, 4, 32, 56)
    for i in range(4):
        scene = random_scene(np.random.default_rng([7, i]), 4, "easy")
        assert np.array_equal(plain[i], render(scene, 32, 56, 4)[0])
    assert np.array_equal(render_training_videos(7, 4, 4, 32, 56, stripe_prob=0.0), plain)
    striped = render_training_videos(7, 4, 4, 32, 56, stripe_prob=1.0)
    for i in range(4):
        scene = random_scene(np.random.default_rng([7, i]), 4, "easy")
        objects = np.array([[object_coverage(o, t, 32, 56) > 0 for o in scene.objects] for t in range(4)]).any(1)
        differs = (striped[i] != plain[i]).any(-1)
        assert differs.any() and not (differs & ~objects).any()
        # a striped object has two shades where the plain one has one
        k = render(scene, 32, 56, 1)[1][-1][0]
        assert len(np.unique(striped[i, 0][k], axis=0)) > len(np.unique(plain[i, 0][k], axis=0))
    with pytest.raises(ValueError, match="train.stripe_prob"):
        render_training_videos(7, 1, 2, 32, 56, stripe_prob=1.5)


def test_vae_ceiling_is_the_truths_own_round_trip():
    """evaluate_toy's vae_ceiling part scores the ground-truth edit's encode/decode round trip against the truth,
    equal to the same round trip written with diffusers' VAE API directly (posterior mode, temporal decode)."""
    from videoshop_bench.datasets.synthetic import SyntheticDataset
    from videoshop_bench.eval.fidelity import psnr
    from videoshop_bench.research.evaluate_toy import _part_rows, build

    ds = SyntheticDataset(2, 8, 32, 56, seed=1000, difficulty="easy")
    samples = [ds.load(i) for i in ds.sample_ids()]
    rows = _part_rows("vae_ceiling", samples, "toy", 42)
    _, pipe, _ = build("videoshop", "toy")
    for r, s in zip(rows, samples):
        x = torch.from_numpy(s.gt_edited_video).permute(0, 3, 1, 2).float() / 127.5 - 1
        with torch.no_grad():
            rec = pipe.vae.decode(pipe.vae.encode(x).latent_dist.mode(), num_frames=8).sample
        ref = ((rec.clamp(-1, 1) + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
        assert abs(r["psnr"] - psnr(ref, s.gt_edited_video)) < 0.05
        assert r["sample_id"] == s.sample_id and {"psnr_in", "psnr_out", "ssim"} <= set(r)
        assert 20 < r["psnr"] < 60


def test_per_edit_type_table_pairs_each_seed_with_the_seedless_source(tmp_path):
    import pandas as pd

    from videoshop_bench.research.evaluate_toy import per_edit_type

    types = ["add_object", "remove_object"]
    src = [dict(sample_id=f"s{i}", edit_type=types[i % 2], psnr=20.0 + i, ssim=80.0, seed=42) for i in range(6)]
    pd.DataFrame(src).to_csv(tmp_path / "source.csv", index=False)
    vs = [dict(r, seed=k, psnr=r["psnr"] + (3.0 if r["edit_type"] == "add_object" else -1.0), ssim=82.0)
          for r in src for k in (42, 43)]
    pd.DataFrame(vs).to_csv(tmp_path / "videoshop.csv", index=False)
    lines = per_edit_type(tmp_path)
    add = next(ln for ln in lines if ln.startswith("| add_object"))
    rem = next(ln for ln in lines if ln.startswith("| remove_object"))
    assert "3.00 [3.00, 3.00]" in add and "2.00 [2.00, 2.00]" in add and "| 3 x 2 |" in add
    assert "-1.00 [-1.00, -1.00]" in rem and "| - |" in rem  # no vae_ceiling.csv: the ceiling column is empty
    assert per_edit_type(tmp_path / "absent") == []


def test_full_gpu_recipe_dry_run_on_the_cpu(tmp_path):
    """research/train_toy_gpu_full.sh (all three stages, then a warm restart of the UNet) as a CPU dry run: the
    VAE has the recipe's 2x downsampling, the card records it and the striped training data, and the restart keeps
    the full run's VAE byte for byte and continues its UNet steps."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, DEVICE="cpu", NUM_VIDEOS="4", VAE_STEPS="2", DECODER_STEPS="2", UNET_BATCH="2",
               MIN1="0.005", MIN2="0.005", PYTHON=sys.executable)
    subprocess.run(["bash", "research/train_toy_gpu_full.sh", str(tmp_path)], cwd=root, env=env, check=True,
                   capture_output=True)
    full = json.loads((tmp_path / "full" / "training_summary.json").read_text())
    restart = json.loads((tmp_path / "restart" / "training_summary.json").read_text())
    assert full["vae_steps"] == 2 and full["decoder_steps"] == 2 and full["train"]["stripe_prob"] == 0.5
    assert restart["unet_warm_start_steps"] == full["unet_steps"] >= 1 and restart["unet_steps"] > full["unet_steps"]
    vae_cfg = json.loads((tmp_path / "restart" / "vae" / "config.json").read_text())
    assert list(vae_cfg["block_out_channels"]) == [32, 64]
    name = "diffusion_pytorch_model.safetensors"
    assert (tmp_path / "restart" / "vae" / name).read_bytes() == (tmp_path / "full" / "vae" / name).read_bytes()
    card = (tmp_path / "full" / "MODEL_CARD.md").read_text()
    assert "(2x downsampling" in card and "striped with probability 0.5" in card


def test_contact_sheet_rows_are_the_videos_enlarged_in_order():
    """toy_contact_sheet: each video is one row of its frames (nearest-enlarged, ``gap`` px apart), rows in the
    order given (source, truth, truth via VAE, output), so the sheet shows exactly the scored videos."""
    from videoshop_bench.research.toy_contact_sheet import sheet_rows

    rng = np.random.default_rng(0)
    videos = [rng.integers(0, 256, (3, 4, 5, 3), dtype=np.uint8) for _ in range(4)]
    img = sheet_rows(videos, scale=2, gap=2)
    assert img.shape == (4 * 8 + 3 * 2, 3 * 10 + 2 * 2, 3)
    for r, v in enumerate(videos):
        for t in range(3):
            block = img[r * 10 : r * 10 + 8, t * 12 : t * 12 + 10]
            assert np.array_equal(block, v[t].repeat(2, 0).repeat(2, 1))
    assert (img[8:10] == 255).all() and (img[:, 10:12] == 255).all()
