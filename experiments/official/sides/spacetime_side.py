"""Official Spacetime / diffusion-motion-transfer, run in its side environment (never imports the project):
``python spacetime_side.py --official DIR --weights W --inputs IN.pt --out OUT.pt --compat PATH``.

Runs the README's two steps as they are: ``preprocess_video_ddim.run(config)`` (configs/preprocess_config.yaml) then
``run.Guidance(config).run()`` (configs/guidance_config.yaml), on PNG frames written to a temporary ``data_path``.

Monkeypatches (each listed in PATCHES, printed by the driver):
- videoshop/_compat.py loaded by path before torchvision: the CPU-torch operator shim;
- ``torchvision.io.read_video`` / ``write_video`` (absent from torchvision 0.28): never called on PNG input / no-op;
- CUDA requests mapped to the CPU (the code hard-codes ``.cuda()``, ``"cuda"`` devices, ``.to("cuda")``):
  ``Tensor.cuda``, ``Tensor.to``/``Module.to``/``DiffusionPipeline.to`` with a CUDA device -> CPU;
  ``enable_model_cpu_offload`` a no-op; ``Tensor.half()`` -> the tensor unchanged (CPU: fp32 on both sides;
  ``torch.autocast("cuda")`` and ``GradScaler`` disable themselves without CUDA, as they do);
- ``from_pretrained("cerspense/zeroscope_v2_576w", torch_dtype=float16)`` -> the tiny weights directory in float32;
- ``self.resolution = (576, 320)`` -> the tiny (W, H) (set before the frames are read);
- torch's global RNG seeded with the run's seed at the start of each script (the official scripts leave it unseeded:
  without this the inversion's and the initial latent's VAE posterior samples and the restart noise are
  irreproducible); ``config.seed`` = the same seed (official default ``null`` draws one);
- recording wrappers, behaviour unchanged: ``Preprocess.ddim_inversion`` (its z0 and cond), ``initialize_noisy_latent``,
  ``prepare_latents``' posterior sample, ``Guidance.guidance_step``/``denoise_step``/``decode_latents``, the feature
  modules' saved reference features, ``calculate_losses`` (the loss per Adam step).
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import types

from side_common import record_after, rng_hash, save_frames, start_side

HUB_ID = "cerspense/zeroscope_v2_576w"
PATCHES = [
    "videoshop/_compat.py loaded by file path before torchvision: CPU-torch operator shim",
    "torchvision.io.read_video/write_video (absent from torchvision 0.28): stub / no-op (PNG input, no mp4 written)",
    "CUDA requests -> CPU: Tensor.cuda, Tensor.to/Module.to/DiffusionPipeline.to(cuda); enable_model_cpu_offload no-op; "
    "Tensor.half() unchanged (fp32 on CPU on both sides; autocast('cuda') and GradScaler disable themselves)",
    "TextToVideoSDPipeline/VideoToVideoSDPipeline.from_pretrained(hub id, float16) -> the tiny weights in float32",
    "Preprocess/Guidance.resolution (576, 320) -> the tiny (W, H)",
    "torch.manual_seed(seed) at the start of each script (officially unseeded) and config seed = the same seed",
    "ddim_inversion/initialize_noisy_latent/DiagonalGaussianDistribution.sample/guidance_step/denoise_step/undo_step/"
    "decode_latents/calculate_losses, run.torch.randn_like (the restart noise), zip in guidance_step: recording only",
]


def map_cuda_to_cpu(torch, diffusers) -> None:
    def cpu(x):
        if isinstance(x, str) and x.startswith("cuda"):
            return "cpu"
        if isinstance(x, torch.device) and x.type == "cuda":
            return torch.device("cpu")
        return x

    t_to, m_to = torch.Tensor.to, torch.nn.Module.to
    torch.Tensor.to = lambda self, *a, **kw: t_to(self, *[cpu(v) for v in a], **{k: cpu(v) for k, v in kw.items()})
    torch.nn.Module.to = lambda self, *a, **kw: m_to(self, *[cpu(v) for v in a], **{k: cpu(v) for k, v in kw.items()})
    torch.Tensor.cuda = lambda self, *a, **kw: self
    torch.Tensor.half = lambda self, *a, **kw: self
    p_to = diffusers.DiffusionPipeline.to
    diffusers.DiffusionPipeline.to = lambda self, *a, **kw: p_to(self, *[cpu(v) for v in a],
                                                                 **{k: cpu(v) for k, v in kw.items()})
    diffusers.DiffusionPipeline.enable_model_cpu_offload = lambda self, *a, **kw: None


def redirect_loading(diffusers, torch, weights: str) -> None:
    """``from_pretrained(HUB_ID, torch_dtype=float16)`` of both pipelines -> the tiny weights in float32."""
    for cls in (diffusers.TextToVideoSDPipeline, diffusers.VideoToVideoSDPipeline):
        orig = cls.from_pretrained.__func__
        cls.from_pretrained = classmethod(lambda c, name, _o=orig, torch_dtype=None, **kw: _o(
            c, weights if name == HUB_ID else name, torch_dtype=torch.float32, **kw))


def tiny_resolution(PRE, RUN, size: tuple, rec: dict) -> None:
    """``self.resolution = (576, 320)`` -> ``size`` before frames are read; the inversion's z0 and prompt kept."""
    for cls, name in ((PRE.Preprocess, "extract_latents"), (RUN.Guidance, "get_data")):
        orig = getattr(cls, name)
        setattr(cls, name, lambda self, *a, _o=orig, **kw: (setattr(self, "resolution", size), _o(self, *a, **kw))[1])
    orig_inversion = PRE.Preprocess.ddim_inversion

    def ddim_inversion(self, cond, latent, save_path, save_latents=True):
        rec["inversion_cond"], rec["inversion_z0"] = cond.detach().clone(), latent.detach().clone()
        return orig_inversion(self, cond, latent, save_path, save_latents)

    PRE.Preprocess.ddim_inversion = ddim_inversion


def record_draws(RUN, vae_mod, torch, rec: dict, state: dict) -> None:
    """RNG state at each VAE posterior draw (and the guidance script's draws), the initial latent, the restart
    noises (``run.torch.randn_like``: only ``undo_step`` calls it) and the RNG state at each restart."""
    orig_sample = vae_mod.DiagonalGaussianDistribution.sample

    def posterior_sample(self, generator=None):
        rec["rng"].append((state["phase"], rng_hash()))
        out = orig_sample(self, generator)
        if state["phase"] == "guidance":
            rec.setdefault("init_z0_frames", []).append(out.detach().clone())
        return out

    vae_mod.DiagonalGaussianDistribution.sample = posterior_sample
    record_after(RUN, "initialize_noisy_latent", lambda out, *a: rec.__setitem__("noisy_latent", out.detach().clone()))
    orig_undo = RUN.Guidance.undo_step

    def undo_step(self, sample, timestep):
        rec.setdefault("rng_restart", []).append(torch.get_rng_state().clone())
        return orig_undo(self, sample, timestep)

    RUN.Guidance.undo_step = undo_step
    RUN.torch = types.SimpleNamespace(**{k: getattr(torch, k) for k in dir(torch) if not k.startswith("__")})
    record_after(RUN.torch, "randn_like", lambda out, *a, **kw: rec.setdefault("restart_noise", []).append(
        out.detach().contiguous().clone()))


def record_guidance(RUN, torch, rec: dict, state: dict) -> None:
    """Per guided step: the reference features per site, the loss per Adam step, the optimised latent; every
    denoising pass's latent; the decoded frames."""
    orig_guidance = RUN.Guidance.guidance_step

    def guidance_step(self, x, i, t):
        rec["losses"].append([])
        state["collect_reference"] = True
        out = orig_guidance(self, x, i, t)
        rec["optimized"].append(out.detach().clone())
        return out

    RUN.Guidance.guidance_step = guidance_step
    record_after(RUN.Guidance, "denoise_step", lambda out, *a: rec["denoised"].append(out.detach().clone()))
    record_after(RUN.Guidance, "decode_latents", lambda out, *a: rec.__setitem__(
        "decoded", out[0].permute(1, 0, 2, 3).detach().clone()))
    orig_losses = RUN.calculate_losses

    def calculate_losses(orig, target, config):
        if state["collect_reference"]:  # first Adam step of a guided timestep: the reference features
            rec["reference"].append({})
            state["collect_reference"] = False
        rec["reference"][-1][state["site"]] = orig.detach().clone()
        return orig_losses(orig, target, config)

    RUN.calculate_losses = calculate_losses

    def zip_sites(a, b):  # run.guidance_step's loop over (name, features) pairs: note the current site's name
        for (na, fa), (nb, fb) in zip(a, b):
            state["site"] = na
            yield (na, fa), (nb, fb)

    RUN.zip = zip_sites
    backward = torch.Tensor.backward

    def recording_backward(self, *a, **kw):  # GradScaler is off on CPU: scaler.scale(total_loss) is total_loss
        if state["phase"] == "guidance" and self.dim() == 0 and rec["losses"]:
            rec["losses"][-1].append(float(self.detach()))
        return backward(self, *a, **kw)

    torch.Tensor.backward = recording_backward


def configs(official: str, inp: dict, data: str, lat_dir: str, out_dir: str, OmegaConf):
    """Both config files at the tiny sizes, with the prompts, paths and seed of the run."""
    f = int(inp["num_frames"])
    pre = OmegaConf.load(os.path.join(official, "configs", "preprocess_config.yaml"))
    pre.merge_with(dict(video_path=data, save_dir=lat_dir, max_number_of_frames=f,
                        n_timesteps=int(inp["inversion_steps"]), prompt=inp["prefix"] + inp["source_prompt"]))
    cfg = OmegaConf.load(os.path.join(official, "configs", "guidance_config.yaml"))
    cfg.merge_with(dict(device="cpu", seed=int(inp["seed"]), output_path=out_dir, data_path=data,
                        latents_path=lat_dir, source_prompt=inp["prefix"] + inp["source_prompt"],
                        target_prompt=inp["prefix"] + inp["target_prompt"], guidance_scale=float(inp["guidance_scale"]),
                        optimization_steps=int(inp["optimization_steps"]), max_frames=f,
                        n_timesteps=int(inp["steps"])))
    return pre, cfg


def main() -> None:
    args, inp = start_side()
    import numpy as np
    import torch
    import torchvision.io

    torchvision.io.read_video = lambda *a, **kw: (_ for _ in ()).throw(RuntimeError("read_video: PNG input only"))
    torchvision.io.write_video = lambda *a, **kw: None
    sys.path.insert(0, args.official)
    import diffusers
    from diffusers.models import vae as vae_mod
    from omegaconf import OmegaConf
    from PIL import Image

    map_cuda_to_cpu(torch, diffusers)
    redirect_loading(diffusers, torch, args.weights)
    import preprocess_video_ddim as PRE

    RUN = importlib.import_module("run")  # the official run.py (DIR is first on sys.path), not this project's

    seed, f = int(inp["seed"]), int(inp["num_frames"])
    rec: dict = {"rng": [], "denoised": [], "optimized": [], "reference": [], "losses": [], "rng_after_seed": {}}
    state = {"phase": "preprocess", "collect_reference": False}
    tiny_resolution(PRE, RUN, (int(inp["width"]), int(inp["height"])), rec)
    record_draws(RUN, vae_mod, torch, rec, state)
    record_guidance(RUN, torch, rec, state)
    work = tempfile.mkdtemp(prefix="spacetime_official_")
    data, lat_dir, out_dir = (os.path.join(work, d) for d in ("data", "latents", "out"))
    for d in (lat_dir, out_dir):
        os.makedirs(d)
    save_frames(data, inp["frames"])
    pre_cfg, cfg = configs(args.official, inp, data, lat_dir, out_dir, OmegaConf)
    torch.manual_seed(seed)  # officially unseeded
    rec["rng_after_seed"]["preprocess"] = rng_hash()
    PRE.config = pre_cfg  # run() reads the module global set in __main__
    PRE.run(pre_cfg)
    state["phase"] = "guidance"
    torch.manual_seed(seed)
    rec["rng_after_seed"]["guidance"] = rng_hash()
    guidance = RUN.Guidance(cfg)
    rec["text_embeds"], rec["guidance_embeds"] = guidance.text_embeds.clone(), guidance.guidance_embeds.clone()
    rec["frames"] = (guidance.video.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    guidance.run()
    rec["inverted"] = {int(n[len("noisy_latents_"):-3]): torch.load(os.path.join(lat_dir, n))
                       for n in os.listdir(lat_dir) if n.startswith("noisy_latents_")}
    rec["init_z0"] = torch.cat(rec.pop("init_z0_frames")) * guidance.vae.config.scaling_factor
    frames = np.stack([np.asarray(Image.open(os.path.join(out_dir, "result_frames", f"{i:04d}.png")).convert("RGB"))
                       for i in range(f)])
    first = {p: next((h for q, h in rec["rng"] if q == p), None) for p in ("preprocess", "guidance")}
    notes = [f"global RNG at the first VAE posterior draw of {p} "
             f"{'equals' if first[p] == rec['rng_after_seed'][p] else 'DIFFERS FROM'} the state right after "
             f"torch.manual_seed({seed})" for p in ("preprocess", "guidance")]
    torch.save(dict(rec=rec, frames=frames, num_frames=f, patches=PATCHES, notes=notes), args.out)


if __name__ == "__main__":
    main()
