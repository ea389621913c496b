"""Official AnyV2V (i2vgen-xl/), run in its side environment (never imports the project): ``python anyv2v_side.py
--official DIR --weights W --inputs IN.pt --out OUT.pt --compat PATH``.

Runs the README's two steps as they are: ``run_group_ddim_inversion.main`` then ``run_group_pnp_edit.main``, each
after its own ``seed_everything(seed)`` (two processes officially: the global RNG starts afresh), with the template
configs ``configs/group_*/template.yaml`` and one group_config entry, under a temporary ``data_dir``.

Monkeypatches (each listed in PATCHES, printed by the driver):
- videoshop/_compat.py loaded by path before torchvision: the CPU-torch operator shim;
- ``torchvision.io.read_video`` (absent from torchvision 0.28) / ``write_video``: the given uint8 frames (TCHW,
  lossless) instead of decoding an mp4 (``convert_video_to_frames`` then resizes them with LANCZOS and writes the
  PNGs the edit script reads back, as officially);
- ``I2VGenXLPipeline.from_pretrained("ali-vilab/i2vgen-xl", torch_dtype=float16, variant="fp16")`` -> the tiny
  weights directory in float32 (CPU: fp16 convolutions are not supported); ``DDIMScheduler`` /
  ``DDIMInverseScheduler.from_pretrained("ali-vilab/i2vgen-xl", subfolder="scheduler")`` -> the weights directory;
- the scripts' module globals ``device`` (cpu) and ``logger`` (both set in their ``__main__`` blocks);
- recording wrappers, behaviour unchanged: ``encode_prompt``, ``_encode_image``, ``prepare_image_latents``,
  ``encode_vae_video``, ``decode_latents``, ``DDIMScheduler.step`` (sampling latents), ``register_time`` (the
  current t), ``pnp_utils.F.scaled_dot_product_attention`` (Q/K of the PnP processors after injection) and a forward
  hook on ``up_blocks[1].resnets[1]`` (its conv2 output after injection); the global RNG state before every VAE
  posterior draw.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import types

from side_common import record_after, rng_hash, start_side

HUB_ID = "ali-vilab/i2vgen-xl"
PATCHES = [
    "videoshop/_compat.py loaded by file path before torchvision: CPU-torch operator shim",
    "torchvision.io.read_video/write_video: the given uint8 frames instead of decoding/encoding an mp4",
    "I2VGenXLPipeline.from_pretrained(hub id, float16, variant fp16) -> the tiny weights directory in float32 (CPU)",
    "DDIMScheduler/DDIMInverseScheduler.from_pretrained(hub id, subfolder=scheduler) -> the tiny weights directory",
    "run_group_*.device = cpu, run_group_*.logger (module globals set in their __main__ blocks)",
    "encode_prompt/_encode_image/prepare_image_latents/encode_vae_video/decode_latents/DDIMScheduler.step/"
    "register_time/pnp_utils.F.scaled_dot_product_attention, a forward hook on up_blocks[1].resnets[1]: recording only",
]


def stub_video_io(frames_tchw) -> None:
    import torchvision.io

    torchvision.io.read_video = lambda path, output_type="THWC", **kw: (frames_tchw.clone(), None, {})
    torchvision.io.write_video = lambda *a, **kw: None


def redirect_loading(P, diffusers, torch, weights: str, on_load) -> None:
    """The scripts' ``from_pretrained(HUB_ID, float16, variant fp16)`` -> the tiny weights in float32."""
    orig_pipe = P.I2VGenXLPipeline.from_pretrained.__func__

    def from_pretrained(cls, name, torch_dtype=None, variant=None, **kw):
        pipe = orig_pipe(cls, weights, torch_dtype=torch.float32, **kw)
        on_load(pipe)
        return pipe

    P.I2VGenXLPipeline.from_pretrained = classmethod(from_pretrained)
    for sched in (diffusers.DDIMScheduler, diffusers.DDIMInverseScheduler):
        orig = sched.from_pretrained.__func__
        sched.from_pretrained = classmethod(  # only the scripts' hub id (the pipeline loads its own by path)
            lambda cls, name, _o=orig, **kw: _o(cls, weights if name == HUB_ID else name, **kw))


def install_site_hooks(pipe, rec: dict, state: dict) -> None:
    """Name the PnP attention layer about to run; keep up_blocks[1].resnets[1]'s conv2 output after injection."""
    unet = pipe.unet
    for b in (1, 2, 3):
        for i in (0, 1, 2):
            for group in ("attentions", "temp_attentions"):
                mod = getattr(unet.up_blocks[b], group)[i].transformer_blocks[0].attn1
                name = f"up_blocks.{b}.{group}.{i}.transformer_blocks.0.attn1"
                mod.register_forward_pre_hook(lambda m, a, _n=name: state.__setitem__("layer", _n))
    res = unet.up_blocks[1].resnets[1]
    res.conv2.register_forward_hook(lambda m, a, out: state.__setitem__("conv_out", out))

    def after_resnet(module, inputs, out):  # conv2's output tensor, as the injection left it (in place)
        if state["sampling"]:
            rec["sites"]["conv"][("up_blocks.1.resnets.1", state["t"])] = state["conv_out"].detach().clone()

    res.register_forward_hook(after_resnet)


def record_pnp(P, pnp_utils, torch, rec: dict, state: dict) -> None:
    """Q/K of the PnP processors after injection (at their SDPA call) and the current t (``register_time``)."""

    def sdpa(query, key, value, **kw):
        b, h, n, d = query.shape
        kind = "temporal" if "temp_attentions" in state["layer"] else "spatial"
        if state["sampling"]:
            flat = lambda x: x.transpose(1, 2).reshape(b, n, h * d).detach().clone()  # noqa: E731
            rec["sites"][kind][(state["layer"], state["t"])] = torch.stack([flat(query), flat(key)])
        return torch.nn.functional.scaled_dot_product_attention(query, key, value, **kw)

    pnp_utils.F = types.SimpleNamespace(scaled_dot_product_attention=sdpa)
    orig_register_time = P.register_time

    def register_time(model, t):
        state["t"], state["sampling"] = int(t), True
        return orig_register_time(model, t)

    P.register_time = register_time


def record_pipeline(Pipe, diffusers, vae_mod, np, rec: dict, state: dict) -> None:
    """Prompt and image conditions, VAE latents, sampling latents, decoded frames, RNG state at posterior draws."""
    record_after(Pipe, "encode_prompt", lambda out, self, prompt, *a, **kw: rec.setdefault("prompt_calls", []).append(
        (state["phase"], prompt, out)))
    record_after(Pipe, "_encode_image", lambda out, *a, **kw: rec["image_embeds"].append(out[-1:].clone()))  # CFG: [0; e]
    record_after(Pipe, "prepare_image_latents", lambda out, *a, **kw: rec["image_latents"].append(out[-1:].clone()))
    record_after(Pipe, "encode_vae_video", lambda out, *a, **kw: rec.__setitem__("video_latents", out.clone()))
    record_after(Pipe, "decode_latents", lambda out, *a, **kw: rec.__setitem__(
        "decoded", out[0].permute(1, 0, 2, 3).clone()))
    orig_pnp = Pipe.sample_with_pnp

    def sample_with_pnp(self, *a, **kw):
        rec["edited"] = np.asarray(kw["image"]).copy()  # the edited first frame as the edit script passes it
        return orig_pnp(self, *a, **kw)

    Pipe.sample_with_pnp = sample_with_pnp
    record_after(diffusers.DDIMScheduler, "step", lambda out, *a, **kw: rec["steps"].append(out.prev_sample.clone()))
    orig_sample = vae_mod.DiagonalGaussianDistribution.sample

    def posterior_sample(self, generator=None):
        rec["rng"].append((state["phase"], rng_hash(), generator is None))
        return orig_sample(self, generator)

    vae_mod.DiagonalGaussianDistribution.sample = posterior_sample


def group_configs(code: str, data: str, inp: dict, OmegaConf):
    """The two template configs at the tiny sizes and one group_config.json entry."""
    side, seed, n = int(inp["side"]), int(inp["seed"]), int(inp["num_frames"])
    inv_cfg = OmegaConf.load(os.path.join(code, "configs/group_ddim_inversion/template.yaml"))
    inv_cfg.merge_with(dict(seed=seed, device="cpu", data_dir=data, image_size=[side, side], n_frames=n,
                            inverse_config=dict(n_steps=int(inp["inversion_steps"]))))
    edit_cfg = OmegaConf.load(os.path.join(code, "configs/group_pnp_edit/template.yaml"))
    edit_cfg.merge_with(dict(seed=seed, device="cpu", data_dir=data, image_size=[side, side], n_frames=n,
                             n_steps=int(inp["steps"]), cfg=float(inp["guidance_scale"])))
    entry = dict(active=True, video_name="clip", edited_first_frame_path="edited.png",
                 editing_prompt=inp["target_prompt"], edited_video_name="edit",
                 ddim_init_latents_t_idx=int(inp["init_step"]), pnp_f_t=float(inp["pnp_f_t"]),
                 pnp_spatial_attn_t=float(inp["pnp_spatial_attn_t"]), pnp_temp_attn_t=float(inp["pnp_temp_attn_t"]))
    return inv_cfg, edit_cfg, entry


def collect(rec: dict, data: str, n: int, seed: int, np, torch, Image):
    """What the scripts wrote (latent files, frame PNGs, output PNGs), the prompt calls, the RNG notes."""
    lat_dir = os.path.join(data, "inversions", "i2vgen-xl", "clip", "ddim_latents")
    rec["inverted"] = {int(f[len("ddim_latents_"):-3]): torch.load(os.path.join(lat_dir, f))
                       for f in os.listdir(lat_dir) if f.startswith("ddim_latents_")}
    read = lambda d, name: np.stack([np.asarray(Image.open(os.path.join(d, name.format(i))).convert("RGB"))  # noqa
                                     for i in range(n)])
    rec["frames"] = read(os.path.join(data, "demo", "clip"), "{:05d}.png")
    calls = rec.pop("prompt_calls")
    (_, _, (inv_pos, _)), (_, _, (tgt, neg)), (_, _, (src, _)) = calls[0], calls[1], calls[2]
    rec.update(prompt_inversion=inv_pos, prompt_target=tgt, prompt_negative=neg, prompt_source_branch=src)
    out_dir = next(os.path.join(r, d) for r, ds, _ in os.walk(os.path.join(data, "Results")) for d in ds
                   if d.startswith("ddim_init_latents"))
    rec["steps"] = [s.reshape(n, *s.shape[1:]) for s in rec["steps"]]
    first = {phase: next(h for p, h, _ in rec["rng"] if p == phase) for phase in ("inversion", "edit")}
    notes = [f"global RNG at the first VAE posterior draw of the {phase} script "
             f"{'equals' if first[phase] == rec['rng_after_seed'][phase] else 'DIFFERS FROM'} the state right after "
             f"seed_everything({seed}); posterior draws from the global RNG: "
             f"{sum(1 for p, _, g in rec['rng'] if p == phase and g)}/{sum(1 for p, _, _ in rec['rng'] if p == phase)}"
             for phase in ("inversion", "edit")]
    return read(out_dir, "video_{:05d}.png"), notes


def main() -> None:
    args, inp = start_side()
    import numpy as np
    import torch

    stub_video_io(torch.from_numpy(np.ascontiguousarray(inp["frames"])).permute(0, 3, 1, 2))
    code = os.path.join(args.official, "i2vgen-xl")
    sys.path.insert(0, code)
    from omegaconf import OmegaConf
    from PIL import Image
    import diffusers
    from diffusers.models.autoencoders import vae as vae_mod

    import pnp_utils
    import run_group_ddim_inversion as INV
    import run_group_pnp_edit as EDIT
    from pipelines import pipeline_i2vgen_xl as P

    rec: dict = {"image_embeds": [], "image_latents": [], "steps": [], "rng": [], "rng_after_seed": {},
                 "sites": {"conv": {}, "spatial": {}, "temporal": {}}}
    state = {"t": None, "layer": None, "phase": "inversion", "sampling": False}
    redirect_loading(P, diffusers, torch, args.weights, lambda pipe: install_site_hooks(pipe, rec, state))
    record_pnp(P, pnp_utils, torch, rec, state)
    record_pipeline(P.I2VGenXLPipeline, diffusers, vae_mod, np, rec, state)
    data = tempfile.mkdtemp(prefix="anyv2v_official_")
    os.makedirs(os.path.join(data, "demo"))
    Image.fromarray(inp["edited"]).save(os.path.join(data, "edited.png"))
    inv_cfg, edit_cfg, entry = group_configs(code, data, inp, OmegaConf)
    for mod, name in ((INV, "inversion"), (EDIT, "edit")):
        mod.device, mod.logger = torch.device("cpu"), logging.getLogger(f"anyv2v.{name}")
    torch.set_grad_enabled(False)
    seed = int(inp["seed"])
    for phase, mod, cfg in (("inversion", INV, inv_cfg), ("edit", EDIT, edit_cfg)):  # as two processes
        state["phase"] = phase
        mod.seed_everything(seed)
        rec["rng_after_seed"][phase] = rng_hash()
        mod.main(cfg, [dict(entry)])
    frames, notes = collect(rec, data, int(inp["num_frames"]), seed, np, torch, Image)
    torch.save(dict(rec=rec, frames=frames, patches=PATCHES, notes=notes), args.out)


if __name__ == "__main__":
    main()
