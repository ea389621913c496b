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
    from videoshop.toy import edm_loss_weight, sample_training_sigmas

    s = sample_training_sigmas(100_000, torch.Generator().manual_seed(0), p_mean=0.7, p_std=1.6)
    assert abs(float(s.log().mean()) - 0.7) < 0.02 and abs(float(s.log().std()) - 1.6) < 0.02
    # v-prediction with sigma_data = 1: lambda(sigma) * c_out^2 = 1 (the effective F-target loss is unweighted)
    sig = torch.tensor([0.01, 1.0, 50.0])
    assert torch.allclose(edm_loss_weight(sig) * sig**2 / (sig**2 + 1), torch.ones(3))


def test_train_toy_runs_and_is_deterministic(tmp_path):
    """Two short runs of the real training entry point (shrunk config) give identical losses and weights."""
    from experiments.train_toy import run_train

    results = []
    for k in range(2):
        cfg = _cfg(["experiment=train_toy", "task=train_toy", "train.num_videos=2", "train.vae_steps=1",
                    "train.vae_batch=1", "train.unet_steps=2", "train.unet_batch=2", "train.decoder_steps=2",
                    f"train.output_dir={tmp_path / str(k)}"])
        summary = run_train(cfg)
        results.append(summary)
        assert (tmp_path / str(k) / "MODEL_CARD.md").is_file()
        assert (tmp_path / str(k) / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert results[0]["final_vae_loss"] == results[1]["final_vae_loss"]
    assert results[0]["final_unet_loss"] == results[1]["final_unet_loss"]
    assert np.isfinite(results[0]["final_unet_loss"])
    a = (tmp_path / "0" / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    assert a == (tmp_path / "1" / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()


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
