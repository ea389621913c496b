"""DDIM inversion then DDIM sampling with the same prompt and no guidance: reconstruction error per step count.

    python -m videoshop_bench.research.ddim_reconstruction [--steps 10 50 250 1000]

Two models: the analytic Gaussian one (data x0 ~ N(mu, s^2 I), exact eps; the error is the DDIM-inversion
approximation alone and falls about linearly with the step size) and Pix2Video's tiny random SD2-depth stand-in
(a random network is no score model: its eps changes a lot between neighbouring timesteps, so the error stays
large; real weights could not be checked here). Prints max |error| and RMSE of the latents.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from videoshop_bench.baselines.text.ddim import ddim_invert, ddim_sample, ddim_schedule

PIX2VIDEO_SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                           set_alpha_to_one=False, steps_offset=0)


def round_trip_error(eps_fn, x0: torch.Tensor, steps: int, scheduler_config=PIX2VIDEO_SCHEDULER) -> tuple[float, float]:
    """(max |x0_rec - x0|, RMSE) after ``ddim_invert`` + ``ddim_sample`` over ``steps`` DDIM steps."""
    s = ddim_schedule(scheduler_config, steps)
    with torch.no_grad():
        rec = ddim_sample(eps_fn, ddim_invert(eps_fn, x0, s)[-1], s)
    return float((rec - x0).abs().max()), float((rec - x0).pow(2).mean().sqrt())


def gaussian_eps(mu: torch.Tensor, s: float, alphas_cumprod: torch.Tensor):
    """Exact eps for x0 ~ N(mu, s^2 I): E[eps | x_t] = sqrt(1-a)(x - sqrt(a) mu) / (a s^2 + 1 - a)."""
    ac = alphas_cumprod.double()

    def eps(x, t, i):
        a = ac[t]
        return (1 - a).sqrt() * (x - a.sqrt() * mu) / (a * s ** 2 + 1 - a)
    return eps


def analytic_case(seed: int = 0):
    from diffusers import DDIMScheduler

    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(1, 4, 6, 6, generator=g, dtype=torch.float64)
    x0 = mu + 0.5 * torch.randn(mu.shape, generator=g, dtype=torch.float64)
    return gaussian_eps(mu, 0.5, DDIMScheduler(**PIX2VIDEO_SCHEDULER).alphas_cumprod), x0


def tiny_pix2video_case():
    from videoshop_bench.baselines.pix2video import Pix2Video
    from videoshop_bench.baselines.text.sd import depth_condition, encode_prompts, frames_to_tensor, predicted_depth, vae_encode

    m = Pix2Video(weights="tiny", scheduler=PIX2VIDEO_SCHEDULER, height=64, width=64, prompts={"cache_dir": None})
    c = m.models
    frames = np.random.default_rng(0).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    x0 = vae_encode(c.vae, frames_to_tensor(frames, "cpu", torch.float32)).double()
    d = depth_condition(predicted_depth(c.depth_estimator, c.depth_processor, frames, "cpu"), tuple(x0.shape[-2:]))
    ctx = encode_prompts(c.tokenizer, c.text_encoder, ["a cat"], "cpu").double()
    c.unet.double()
    return (lambda x, t, i: c.unet(torch.cat([x, d.double()], 1), t, encoder_hidden_states=ctx).sample), x0


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, nargs="+", default=[10, 50, 250, 1000])
    args = p.parse_args(argv)
    for name, (eps, x0) in (("analytic", analytic_case()), ("tiny-pix2video", tiny_pix2video_case())):
        print(f"{name}: latent RMS {float(x0.pow(2).mean().sqrt()):.4g}")
        for n in args.steps:
            mx, rmse = round_trip_error(eps, x0, n)
            print(f"  {n:5d} steps  max|err| {mx:.4g}  RMSE {rmse:.4g}")


if __name__ == "__main__":
    main()
