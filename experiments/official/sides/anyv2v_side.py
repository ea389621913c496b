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

import argparse
import hashlib
import importlib.util
import logging
import os
import sys
import tempfile
import types

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


def load_compat(path: str) -> None:
    spec = importlib.util.spec_from_file_location("_videoshop_compat", path)
    compat = importlib.util.module_from_spec(spec)
    sys.modules["_videoshop_compat"] = compat
    spec.loader.exec_module(compat)


def stub_video_io(frames_tchw) -> None:
    import torchvision.io

    torchvision.io.read_video = lambda path, output_type="THWC", **kw: (frames_tchw.clone(), None, {})
    torchvision.io.write_video = lambda *a, **kw: None


def main() -> None:  # noqa: C901  (one linear script: patches, two official mains, what they recorded)
    ap = argparse.ArgumentParser()
    for k in ("--official", "--weights", "--inputs", "--out", "--compat"):
        ap.add_argument(k, required=True)
    args = ap.parse_args()
    load_compat(args.compat)
    import numpy as np
    import torch

    torch.set_num_threads(1)
    inp = torch.load(args.inputs, weights_only=False)
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

    rec: dict = {"image_embeds": [], "image_latents": [], "steps": [], "rng": [],
                 "sites": {"conv": {}, "spatial": {}, "temporal": {}}}
    state = {"t": None, "layer": None, "phase": "inversion", "sampling": False}

    # ---- model loading redirected to the tiny weights (CPU: float32)
    orig_pipe = P.I2VGenXLPipeline.from_pretrained.__func__

    def from_pretrained(cls, name, torch_dtype=None, variant=None, **kw):
        pipe = orig_pipe(cls, args.weights, torch_dtype=torch.float32, **kw)
        install_site_hooks(pipe)
        return pipe

    P.I2VGenXLPipeline.from_pretrained = classmethod(from_pretrained)
    for sched in (diffusers.DDIMScheduler, diffusers.DDIMInverseScheduler):
        orig = sched.from_pretrained.__func__
        sched.from_pretrained = classmethod(  # only the scripts' hub id (the pipeline loads its own by path)
            lambda cls, name, _o=orig, **kw: _o(cls, args.weights if name == HUB_ID else name, **kw))

    # ---- recording wrappers
    def install_site_hooks(pipe):
        unet = pipe.unet
        for b, blocks in ((1, (0, 1, 2)), (2, (0, 1, 2)), (3, (0, 1, 2))):
            for i in blocks:
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
    Pipe = P.I2VGenXLPipeline
    orig_encode_prompt, orig_encode_image = Pipe.encode_prompt, Pipe._encode_image
    orig_image_latents, orig_vae_video, orig_decode = Pipe.prepare_image_latents, Pipe.encode_vae_video, Pipe.decode_latents

    def encode_prompt(self, prompt, *a, **kw):
        out = orig_encode_prompt(self, prompt, *a, **kw)
        rec.setdefault("prompt_calls", []).append((state["phase"], prompt, out))
        return out

    def encode_image(self, *a, **kw):
        out = orig_encode_image(self, *a, **kw)
        rec["image_embeds"].append(out[-1:].detach().clone())  # CFG: [zeros ; embedding]
        return out

    def image_latents(self, *a, **kw):
        out = orig_image_latents(self, *a, **kw)
        rec["image_latents"].append(out[-1:].detach().clone())
        return out

    def vae_video(self, *a, **kw):
        out = orig_vae_video(self, *a, **kw)
        rec["video_latents"] = out.detach().clone()
        return out

    def decode(self, latents, *a, **kw):
        out = orig_decode(self, latents, *a, **kw)
        rec["decoded"] = out[0].permute(1, 0, 2, 3).detach().clone()
        return out

    Pipe.encode_prompt, Pipe._encode_image, Pipe.prepare_image_latents = encode_prompt, encode_image, image_latents
    Pipe.encode_vae_video, Pipe.decode_latents = vae_video, decode
    orig_pnp = Pipe.sample_with_pnp

    def sample_with_pnp(self, *a, **kw):
        rec["edited"] = np.asarray(kw["image"]).copy()  # the edited first frame as the edit script passes it
        return orig_pnp(self, *a, **kw)

    Pipe.sample_with_pnp = sample_with_pnp
    orig_step = diffusers.DDIMScheduler.step

    def step(self, *a, **kw):
        out = orig_step(self, *a, **kw)
        rec["steps"].append(out.prev_sample.detach().clone())
        return out

    diffusers.DDIMScheduler.step = step
    orig_sample = vae_mod.DiagonalGaussianDistribution.sample

    def posterior_sample(self, generator=None):
        rec["rng"].append((state["phase"], hashlib.sha256(torch.get_rng_state().numpy().tobytes()).hexdigest()[:16],
                           generator is None))
        return orig_sample(self, generator)

    vae_mod.DiagonalGaussianDistribution.sample = posterior_sample

    # ---- configs: the templates, one group entry, tiny sizes
    data = tempfile.mkdtemp(prefix="anyv2v_official_")
    os.makedirs(os.path.join(data, "demo"))
    Image.fromarray(inp["edited"]).save(os.path.join(data, "edited.png"))
    side, seed = int(inp["side"]), int(inp["seed"])
    inv_cfg = OmegaConf.load(os.path.join(code, "configs/group_ddim_inversion/template.yaml"))
    inv_cfg.merge_with(dict(seed=seed, device="cpu", data_dir=data, image_size=[side, side],
                            n_frames=int(inp["num_frames"]), inverse_config=dict(n_steps=int(inp["inversion_steps"]))))
    edit_cfg = OmegaConf.load(os.path.join(code, "configs/group_pnp_edit/template.yaml"))
    edit_cfg.merge_with(dict(seed=seed, device="cpu", data_dir=data, image_size=[side, side],
                             n_frames=int(inp["num_frames"]), n_steps=int(inp["steps"]), cfg=float(inp["guidance_scale"])))
    entry = dict(active=True, video_name="clip", edited_first_frame_path="edited.png",
                 editing_prompt=inp["target_prompt"], edited_video_name="edit",
                 ddim_init_latents_t_idx=int(inp["init_step"]), pnp_f_t=float(inp["pnp_f_t"]),
                 pnp_spatial_attn_t=float(inp["pnp_spatial_attn_t"]), pnp_temp_attn_t=float(inp["pnp_temp_attn_t"]))
    for mod, name in ((INV, "inversion"), (EDIT, "edit")):
        mod.device, mod.logger = torch.device("cpu"), logging.getLogger(f"anyv2v.{name}")
    torch.set_grad_enabled(False)

    # ---- the two official scripts, each from its own seed_everything (as two processes)
    rec["rng_after_seed"] = {}
    for phase, mod, cfg in (("inversion", INV, inv_cfg), ("edit", EDIT, edit_cfg)):
        state["phase"] = phase
        mod.seed_everything(seed)
        rec["rng_after_seed"][phase] = hashlib.sha256(torch.get_rng_state().numpy().tobytes()).hexdigest()[:16]
        mod.main(cfg, [dict(entry)])

    # ---- what the scripts wrote
    lat_dir = os.path.join(data, "inversions", "i2vgen-xl", "clip", "ddim_latents")
    rec["inverted"] = {int(f[len("ddim_latents_"):-3]): torch.load(os.path.join(lat_dir, f))
                       for f in os.listdir(lat_dir) if f.startswith("ddim_latents_")}
    src_dir = os.path.join(data, "demo", "clip")
    rec["frames"] = np.stack([np.asarray(Image.open(os.path.join(src_dir, f"{i:05d}.png")).convert("RGB"))
                              for i in range(int(inp["num_frames"]))])
    calls = rec.pop("prompt_calls")
    (_, _, (inv_pos, _)), (_, _, (tgt, neg)), (_, _, (src, _)) = calls[0], calls[1], calls[2]
    rec.update(prompt_inversion=inv_pos, prompt_target=tgt, prompt_negative=neg, prompt_source_branch=src)
    out_dirs = [os.path.join(r, d) for r, ds, _ in os.walk(os.path.join(data, "Results")) for d in ds
                if d.startswith("ddim_init_latents")]
    frames = np.stack([np.asarray(Image.open(os.path.join(out_dirs[0], f"video_{i:05d}.png")).convert("RGB"))
                       for i in range(int(inp["num_frames"]))])
    rec["steps"] = [s.reshape(int(inp["num_frames"]), *s.shape[1:]) for s in rec["steps"]]
    first = {phase: next(h for p, h, _ in rec["rng"] if p == phase) for phase in ("inversion", "edit")}
    notes = [f"global RNG at the first VAE posterior draw of the {phase} script "
             f"{'equals' if first[phase] == rec['rng_after_seed'][phase] else 'DIFFERS FROM'} the state right after "
             f"seed_everything({seed}); posterior draws from the global RNG: "
             f"{sum(1 for p, _, g in rec['rng'] if p == phase and g)}/{sum(1 for p, _, _ in rec['rng'] if p == phase)}"
             for phase in ("inversion", "edit")]
    torch.save(dict(rec=rec, frames=frames, patches=PATCHES, notes=notes), args.out)


if __name__ == "__main__":
    main()
