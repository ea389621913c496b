"""Spacetime: Space-Time Diffusion Features for zero-shot text-driven motion transfer (Yatim et al., CVPR 2024).

Official code: diffusion-motion-transfer/diffusion-motion-transfer (preprocess_video_ddim.py, run.py,
utilities/guidance_utils.py, utilities/initialize_latent.py); defaults from configs/guidance_config.yaml.
1. Source frames -> Zeroscope VAE latents z0 (``latent_dist.sample()``), DDIM inversion with the source prompt
   (conditional, ``inversion_steps`` = 999 in the official preprocessing), keeping the latent at every timestep.
2. Initial latent: eps = (z_T - sqrt(a_T) z0) / sqrt(1 - a_T) from the noisiest inverted latent, z = add_noise(z0, eps,
   t_first), then its high frequencies replaced by seeded noise: z <- lowpass(z) + (n - lowpass(n)), lowpass =
   bilinear antialiased down/up sampling by ``downsample_factor`` (4).
3. Sampling with the target prompt, DDIM 50 steps, CFG 10 against the official negative prompt; on the first 20 steps
   (``max/min_guidance_timestep`` 1 / 0.6) the latent is first optimised for ``optimization_steps`` (10) Adam steps
   with lr = linspace(0.007, 0.004, 20)[i] on the space-time feature loss (``feature_loss``) between the features of
   the current latent (target prompt, no CFG) and those of the inverted source latent at the same t (source prompt).
   Feature sites (``up_res_dict {1: [1]}``): Zeroscope ``up_blocks[1]``: ``resnets[1]`` before the residual add,
   ``temp_convs[1]``, ``upsamplers[0]``; during optimisation the UNet stops after ``up_blocks[1]``.
4. Restart sampling: after every step but the last, the latent is re-noised back to the step's timestep by
   1000/50 single-step forward-diffusion updates and that step is denoised again.
NFE counts every UNet pass: inversion steps, the reference and optimisation passes (truncated UNet), the sampling
and restart passes (a CFG pair is one batched pass).
Deviations (docs/baselines.md): the restart noise is drawn from the run's generator (official: unseeded); the
feature loss leaves out the i = j pairs of the official mean (their cosine is 0 and constant), which shifts it by
-1/F so that identical features give 0 and leaves every gradient, hence the optimisation, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from videoshop.method import EditResult
from videoshop.options import MAX_BATCH, MAX_FRAMES, MAX_ITERATIONS, MAX_STEPS, build_options, option

from .ddim import classifier_free_guidance, ddim_invert, ddim_schedule, ddim_transfer
from .method import TextDrivenMethod, TextMethodOptions, frame_windows
from .sd import RESIZE_FILTERS, encode_prompts, frames_to_tensor, resize_frames, vae_decode
from .t2v_models import ZEROSCOPE_SCHEDULER, load_t2v_components

SEEDING = ("official", "single_stream")
NEGATIVE = "bad quality, distortions, unrealistic, distorted image, watermark, signature"


def feature_loss(target: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """DMT's space-time feature loss at one site (features_diff_loss, global_averaging), self-pairs left out.

    target, reference: (F, C, h, w) features of the optimised and the source latent. With SMM s_i = mean_{h,w}:
    L = (1/F^2) sum_i sum_{j != i} [1 - cos_C(s_j^tgt - s_i^tgt, s_j^ref - s_i^ref)]  (= official loss - 1/F).
    """
    t = target.float().mean(dim=(2, 3))
    r = reference.float().detach().mean(dim=(2, 3))
    f = t.shape[0]
    dt = t[None, :, :] - t[:, None, :]  # [i, j] = s_j - s_i
    dr = r[None, :, :] - r[:, None, :]
    cos = F.cosine_similarity(dt, dr, dim=-1)
    off = ~torch.eye(f, dtype=torch.bool, device=t.device)
    return ((1 - cos) * off).sum() / f ** 2


def lowpass(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Bilinear antialiased downsampling by ``factor`` and back (DMT high_freqs_replacement_downsampling)."""
    h, w = x.shape[-2:]
    down = F.interpolate(x, size=(h // factor, w // factor), mode="bilinear", align_corners=True, antialias=True)
    return F.interpolate(down, size=(h, w), mode="bilinear", align_corners=True, antialias=True)


class _StopForward(Exception):
    pass


class SpaceTimeFeatures:
    """Forward hooks on the feature sites of ``unet.up_blocks[block]``; optionally stops the UNet after that block."""

    def __init__(self, unet, block: int = 1, resnet: int = 1, conv: bool = True, temp_conv: bool = True,
                 upsampler: bool = True, before_residual: bool = True):
        self.features: dict[str, torch.Tensor] = {}
        self.cut = False
        self.handles = []
        up = unet.up_blocks[block]
        if conv:
            site = up.resnets[resnet].conv2 if before_residual else up.resnets[resnet]
            self._hook(site, f"up{block}.resnets{resnet}.conv")
        if temp_conv:
            self._hook(up.temp_convs[resnet], f"up{block}.temp_convs{resnet}")
        if upsampler and up.upsamplers is not None:
            self._hook(up.upsamplers[0], f"up{block}.upsampler0")
        self.handles.append(up.register_forward_hook(self._maybe_stop))

    def _hook(self, module, name):
        def hook(_m, _inp, out):
            self.features[name] = out
        self.handles.append(module.register_forward_hook(hook))

    def _maybe_stop(self, _m, _inp, _out):
        if self.cut:
            raise _StopForward

    def remove(self):
        for h in self.handles:
            h.remove()

    def run(self, unet, x, t, emb, cut: bool = True) -> dict[str, torch.Tensor]:
        """Features of one latent (1, C, F, h, w) at timestep t: {site: (F, C', h', w')}."""
        self.features, self.cut = {}, cut
        try:
            unet(x, t, encoder_hidden_states=emb)
        except _StopForward:
            pass
        finally:
            self.cut = False
        return dict(self.features)


@dataclass
class SpacetimeOptions(TextMethodOptions):
    """Spacetime's options; defaults are the official code's (configs/guidance_config.yaml, preprocess_config.yaml)."""

    base: dict = option({"hub_id": "cerspense/zeroscope_v2_576w", "path": None}, "dict",
                        "the TextToVideoSDPipeline checkpoint the official code loads (hub_id) or a local one (path)")
    native: dict = option({w: {"height": 320, "width": 576, "inversion_steps": 999, "optimization_steps": 10}
                           for w in ("pretrained", "random")}
                          | {"tiny": {"height": 64, "width": 112, "inversion_steps": 5, "optimization_steps": 2}},
                          "official sizes per weights; the YAML sets height, width, inversion_steps and "
                          "optimization_steps from it (the tiny stand-in runs small to keep tests fast)")
    height: int = option(320, "int", "official resolution 576x320 (plain resize)", min=8, max=4096)
    width: int = option(576, "int", "see height", min=8, max=4096)
    max_frames: int = option(24, "int", "official maximum; longer videos are generated in consecutive chunks",
                             min=1, max=MAX_FRAMES)
    num_inference_steps: int = option(50, "int", "n_timesteps of sampling", min=1, max=MAX_STEPS)
    inversion_steps: int = option(999, "int", "official 999 (preprocess_config n_timesteps): DDIM inversion keeping "
                                  "every timestep's latent", min=1, max=MAX_STEPS)
    guidance_scale: float = option(10, "float", "CFG of the sampling passes", min=0)
    negative_prompt: str = option(NEGATIVE, "str", "negative prompt of the sampling passes")
    prompt_prefix: str = option("Amazing quality, masterpiece, ", "str",
                                "README tip, used by the official example prompts")
    optimization_steps: int = option(10, "int", "official 10 Adam steps on the latent per guided timestep",
                                     min=0, max=MAX_ITERATIONS)
    with_lr_decay: bool = option(True, "bool", "lr = linspace(scale_range[0], scale_range[1], n_guided)[i]")
    optim_lr: float = option(0.01, "float", "lr when with_lr_decay is false", min=0)
    scale_range: list = option([0.007, 0.004], "list", "first and last learning rate of the decay")
    max_guidance_timestep: float = option(1.0, "float", "guided steps: the first int(50 * (max - min)) = 20",
                                          min=0, max=1)
    min_guidance_timestep: float = option(0.6, "float", "see max_guidance_timestep", min=0, max=1)
    features_diff_loss_weight: float = option(1, "float", "the space-time (SMM pairwise-difference) loss; "
                                              "features_loss_weight 0 is not built", min=0)
    up_block: int = option(1, "int", "up_res_dict {1: [1]}: features of up_blocks[1]", min=0)
    up_block_resnet: int = option(1, "int", "the resnet / temp_conv index within up_block", min=0)
    use_conv_features: bool = option(True, "bool", "resnets[1] output")
    use_temp_conv_features: bool = option(True, "bool", "temp_convs[1] output")
    use_upsampler_features: bool = option(True, "bool", "upsamplers[0] output")
    guidance_before_res: bool = option(True, "bool", "the resnet feature before its residual add")
    restart_sampling: bool = option(True, "bool", "re-noise by 20 single steps and denoise each step again")
    high_freq_replacement_init: bool = option(True, "bool", "initial latent: the source's high frequencies with "
                                              "fresh low frequencies")
    random_init: bool = option(False, "bool", "initial latent: pure noise")
    downsample_factor: int = option(4, "int", "low-pass of the initial latent", min=1)
    latent_sample: bool = option(True, "bool", "VAE latent_dist.sample() (official) or the mean")
    decode_chunk_size: int = option(8, "int", "frames per VAE decode call", min=1, max=MAX_BATCH)
    resize: str = option("pil_bicubic", "str", "pil_bicubic: PIL's default resize to width x height, as the official "
                         "Image.open(f).resize((576, 320)) | antialias_bilinear (the project's video resize)",
                         choices=RESIZE_FILTERS)
    uint8_rounding: str = option("floor", "str", "decoded frames to uint8 by truncation, as the official tensor2vid",
                                 choices=("floor", "round"))
    seeding: str = option("official", "str", "official: the initial noise from the seed's own generator, the rest "
                          "(VAE posterior, restart noise) one stream from the seed, as the official scripts with "
                          "their global RNG seeded | single_stream: everything from one stream in draw order",
                          choices=SEEDING)


SAMPLING_OPTIONS = ("seed", "height", "width", "max_frames", "num_inference_steps", "inversion_steps",
                    "guidance_scale", "negative_prompt", "prompt_prefix", "optimization_steps", "with_lr_decay",
                    "optim_lr", "scale_range", "max_guidance_timestep", "min_guidance_timestep",
                    "features_diff_loss_weight", "up_block", "up_block_resnet", "use_conv_features",
                    "use_temp_conv_features", "use_upsampler_features", "guidance_before_res", "restart_sampling",
                    "high_freq_replacement_init", "random_init", "downsample_factor", "latent_sample",
                    "decode_chunk_size", "resize", "uint8_rounding", "seeding")  # what edit() reads from self.opts


class Spacetime(TextDrivenMethod):
    """``method=spacetime``: see the module docstring; every option is declared once, in ``SpacetimeOptions``
    (conf/method/spacetime.yaml only ties weights and sizes to ``model=``)."""

    options = SpacetimeOptions

    def __init__(self, name: str = "spacetime", device: str = "cpu", **options):
        o = build_options(SpacetimeOptions, options, owner="videoshop_bench.baselines.text.spacetime.Spacetime")
        opts = {k: getattr(o, k) for k in SAMPLING_OPTIONS}
        opts["scale_range"] = list(opts["scale_range"])
        super().__init__(name, device=device, weights=o.weights, dtype=o.dtype, allow_download=o.allow_download,
                         prompts=o.prompts, base=o.base, **opts)
        comps = load_t2v_components(o.weights, o.base, allow_download=o.allow_download, dtype=self.dtype, seed=o.seed)
        comps.to(self.device, self.dtype)
        self.unet, self.vae, self.text_encoder, self.tokenizer = comps.unet, comps.vae, comps.text_encoder, comps.tokenizer
        self.opts = opts
        self.last_losses: list[tuple[int, list[float]]] = []

    # ------------------------------------------------------------------ pieces
    def features(self) -> SpaceTimeFeatures:
        o = self.opts
        return SpaceTimeFeatures(self.unet, o["up_block"], o["up_block_resnet"], o["use_conv_features"],
                                 o["use_temp_conv_features"], o["use_upsampler_features"], o["guidance_before_res"])

    def total_feature_loss(self, target: dict, reference: dict) -> torch.Tensor:
        """Sum over the feature sites of ``features_diff_loss_weight`` x feature_loss."""
        w = float(self.opts["features_diff_loss_weight"])
        return sum(w * feature_loss(target[k], reference[k]) for k in reference)

    def guided_timesteps(self, timesteps: list[int]) -> list[int]:
        """DMT get_timesteps: the guided timesteps (the first 20 of 50 with the defaults)."""
        n = len(timesteps)
        start = max(n - min(int(n * float(self.opts["max_guidance_timestep"])), n), 0)
        end = int(n * float(self.opts["min_guidance_timestep"]))
        return timesteps[start:n - end] if end > 0 else timesteps[start:]

    def eps(self, x: torch.Tensor, t: int, emb: torch.Tensor) -> torch.Tensor:
        return self.unet(x.to(self.dtype), t, encoder_hidden_states=emb).sample.float()

    @torch.no_grad()
    def invert(self, z0: torch.Tensor, cond: torch.Tensor) -> dict[int, torch.Tensor]:
        """DDIM inversion (source prompt, conditional) with ``inversion_steps``: {timestep: inverted latent}."""
        sched = ddim_schedule(ZEROSCOPE_SCHEDULER, int(self.opts["inversion_steps"]))
        traj = ddim_invert(lambda x, t, k: self.eps(x, t, cond), z0, sched)
        n = len(sched)
        return {int(sched.timesteps[n - 1 - k]): traj[k + 1] for k in range(n)}

    def initial_latent(self, z0: torch.Tensor, inverted: dict[int, torch.Tensor], t_first: int,
                       generator: torch.Generator) -> torch.Tensor:
        """DMT initialize_noisy_latent: noise of the noisiest inverted latent at t_first, high frequencies replaced."""
        o = self.opts
        ac = _alphas_cumprod()
        t_max = max(inverted)
        a_T, a_0 = float(ac[t_max]), float(ac[t_first])
        eps = (inverted[t_max].float() - a_T ** 0.5 * z0.float()) / (1 - a_T) ** 0.5
        z = a_0 ** 0.5 * z0.float() + (1 - a_0) ** 0.5 * eps
        noise = torch.randn(z.shape, generator=generator, dtype=torch.float32).to(z.device)
        if o["random_init"]:
            return noise
        if o["high_freq_replacement_init"] and int(o["downsample_factor"]) > 1:
            b, c, f, h, w = z.shape
            flat = lambda v: v.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)  # noqa: E731
            k = int(o["downsample_factor"])
            mixed = lowpass(flat(z), k) + flat(noise) - lowpass(flat(noise), k)
            z = mixed.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)
        return z

    def initial_noisy_latent(self, z0: torch.Tensor, inverted: dict[int, torch.Tensor], t_first: int,
                             generator: torch.Generator) -> torch.Tensor:
        """``initial_latent`` with the random stream of ``seeding``. ``official``: the noise comes from a generator
        restarted at the run's seed (DMT: ``torch.Generator().manual_seed(config["seed"])``) and the stream then
        continues where the VAE draws left it (DMT's restart noise: the global RNG after its posterior draws);
        ``single_stream``: everything from one stream, in draw order."""
        if self.opts["seeding"] != "official":
            return self.initial_latent(z0, inverted, t_first, generator)
        after_vae = generator.get_state()
        generator.manual_seed(generator.initial_seed())
        try:
            return self.initial_latent(z0, inverted, t_first, generator)
        finally:
            generator.set_state(after_vae)

    def guidance_step(self, x: torch.Tensor, i: int, t: int, reference: torch.Tensor, cond_src: torch.Tensor,
                      cond_tgt: torch.Tensor, n_guided: int) -> tuple[torch.Tensor, int, list[float]]:
        """Adam on the latent for ``optimization_steps`` steps (DMT guidance_step); returns the latent, the number of
        UNet passes (1 reference + one per step, each stopped after up_blocks[up_block]) and the losses."""
        o = self.opts
        steps = int(o["optimization_steps"])
        if steps <= 0:
            return x, 0, []
        lr = float(np.linspace(*o["scale_range"], n_guided)[i]) if o["with_lr_decay"] else float(o["optim_lr"])
        hooks = self.features()
        try:
            with torch.no_grad():
                ref = {k: v.detach() for k, v in hooks.run(self.unet, reference.to(self.dtype), t, cond_src).items()}
            xo = x.detach().float().clone().requires_grad_(True)
            opt = torch.optim.Adam([xo], lr=lr)
            scaler = torch.amp.GradScaler("cuda") if (self.device.type == "cuda" and self.dtype == torch.float16) else None
            losses = []
            for _ in range(steps):
                opt.zero_grad()
                loss = self.total_feature_loss(hooks.run(self.unet, xo.to(self.dtype), t, cond_tgt), ref)
                losses.append(float(loss.detach()))
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                else:
                    loss.backward()
                    opt.step()
        finally:
            hooks.remove()
        return xo.detach(), 1 + steps, losses

    @torch.no_grad()
    def denoise_step(self, x, t, a_t, a_s, emb) -> torch.Tensor:
        """One DDIM step with CFG (target prompt vs the negative prompt, one batched pass)."""
        eps = classifier_free_guidance(self.eps(torch.cat([x, x]), t, emb).chunk(2), float(self.opts["guidance_scale"]))
        return ddim_transfer(x, eps, a_t, a_s)[0]

    def restart_noise(self, shape: tuple, generator: torch.Generator) -> torch.Tensor:
        """One restart noise, N(0, I) of ``shape`` in logical element order (DMT: unseeded ``randn_like(sample)``,
        whose element order follows the latent's memory layout)."""
        return torch.randn(shape, generator=generator, dtype=torch.float32)

    def renoise(self, x: torch.Tensor, t_from: int, n: int, generator: torch.Generator) -> torch.Tensor:
        """DMT undo_step: ``n`` single-step forward-diffusion updates from t_from with the training betas, each
        with fresh noise (``restart_noise``)."""
        ac = _alphas_cumprod()
        betas = 1 - ac / torch.cat([torch.ones(1, dtype=ac.dtype), ac[:-1]])
        for k in range(n):
            b = float(betas[t_from + k])
            noise = self.restart_noise(tuple(x.shape), generator).to(x.device)
            x = (1 - b) ** 0.5 * x + b ** 0.5 * noise
        return x

    def sample(self, x: torch.Tensor, source_latents: dict[int, torch.Tensor], cond_src, cond_tgt, uncond,
               generator: torch.Generator) -> tuple[torch.Tensor, dict]:
        """Guided DDIM sampling (steps 3-4 of the module docstring) from the initial latent ``x``."""
        o = self.opts
        sched = ddim_schedule(ZEROSCOPE_SCHEDULER, int(o["num_inference_steps"]))
        ts = [int(t) for t in sched.timesteps]
        guided = self.guided_timesteps(ts)
        emb = torch.cat([uncond, cond_tgt])
        nfe = dict(guidance=0, sampling=0, restart=0)
        self.last_losses = []
        n_renoise = int(ZEROSCOPE_SCHEDULER["num_train_timesteps"]) // len(ts)
        for i, t in enumerate(ts):
            a_t, a_s = sched.alpha[i], sched.alpha_prev[i]
            if t in guided and int(o["optimization_steps"]) > 0:
                ref = source_latents[min(source_latents, key=lambda u: abs(u - t))]
                with torch.enable_grad():
                    x, k, losses = self.guidance_step(x, i, t, ref, cond_src, cond_tgt, len(guided))
                nfe["guidance"] += k
                self.last_losses.append((t, losses))
            x = self.denoise_step(x, t, a_t, a_s, emb)
            nfe["sampling"] += 1
            if o["restart_sampling"] and i + 1 < len(ts):
                x = self.renoise(x, ts[i + 1], n_renoise, generator)
                x = self.denoise_step(x, t, a_t, a_s, emb)
                nfe["restart"] += 1
        return x, nfe

    def prompt_embeddings(self, source: str, target: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pre = self.opts["prompt_prefix"]
        return encode_prompts(self.tokenizer, self.text_encoder, [pre + source, pre + target,
                                                                  self.opts["negative_prompt"]], self.device).chunk(3)

    def source_latents(self, frames: np.ndarray, generator: torch.Generator) -> torch.Tensor:
        """(1, C, F, h, w) VAE latents (posterior sample, as DMT) times the scaling factor."""
        with torch.no_grad():
            x = frames_to_tensor(frames, self.device, self.dtype)
            post = [self.vae.encode(c).latent_dist for c in x.split(8)]
            z = torch.cat([p.sample(generator=generator) if self.opts["latent_sample"] else p.mean for p in post])
        return (z.float() * float(self.vae.config.scaling_factor))[None].permute(0, 2, 1, 3, 4)

    def edit_chunk(self, frames: np.ndarray, source: str, target: str, generator: torch.Generator) -> tuple[np.ndarray, dict, bool]:
        o = self.opts
        z0 = self.source_latents(frames, generator)
        cond_src, cond_tgt, uncond = self.prompt_embeddings(source, target)
        ts = [int(t) for t in ddim_schedule(ZEROSCOPE_SCHEDULER, int(o["num_inference_steps"])).timesteps]
        inverted = self.invert(z0, cond_src)
        x0 = self.initial_noisy_latent(z0, inverted, ts[0], generator)
        lat, nfe = self.sample(x0, inverted, cond_src, cond_tgt, uncond, generator)
        nfe["inversion"] = len(inverted)
        frames_out = vae_decode(self.vae, lat[0].permute(1, 0, 2, 3).to(self.dtype), int(o["decode_chunk_size"]),
                                rounding=o["uint8_rounding"])
        return frames_out, nfe, bool(torch.isfinite(lat).all())

    def chunks(self, num_frames: int) -> list[tuple[int, int]]:
        """Frame ranges generated together: all frames, or consecutive chunks of ``max_frames`` (last one aligned
        to the end) for longer videos (the official code truncates to ``max_frames``)."""
        return frame_windows(num_frames, int(self.opts["max_frames"]))

    def edit(self, sample, generator: torch.Generator) -> EditResult:
        prompts = self.resolve_prompts(sample)
        video = resize_frames(sample.source_video, int(self.opts["height"]), int(self.opts["width"]),
                              self.opts["resize"])
        out, finite, total = np.zeros_like(video), True, {}
        for a, b in self.chunks(len(video)):
            frames, nfe, ok = self.edit_chunk(video[a:b], prompts.source_prompt, prompts.target_prompt, generator)
            out[a:b], finite = frames, finite and ok
            total = {k: total.get(k, 0) + v for k, v in nfe.items()}
        losses = [(t, [round(v, 5) for v in ls[:1] + ls[-1:]]) for t, ls in self.last_losses]
        return EditResult(frames=out, nfe=sum(total.values()), finite=finite,
                          info=dict(prompts=prompts.to_dict(), chunks=self.chunks(len(video)),
                                    resolution=[self.opts["height"], self.opts["width"]], nfe_breakdown=total,
                                    feature_loss_first_last=losses))


def _alphas_cumprod() -> torch.Tensor:
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config(dict(ZEROSCOPE_SCHEDULER)).alphas_cumprod.double()
