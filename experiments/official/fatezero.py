"""FateZero against ChenyangQiQi/FateZero (@9b6cb7b): the project side of the comparison and the stage list.

Weights: the project's own tiny FateZero components (``load_fatezero_components('tiny')``: SD's block layout at toy
width, 16/32/32/32 channels) written in the SD1.4 layout with SD1.4's DDIM scheduler config; both sides load them.
Settings mapped to the tiny scale: ``least_sc_channel`` = 32 (SD's 640 = its second block width; the project's default
is ``block_out_channels[1]``); the official store/edit bound of 32 ** 2 query tokens (= 1/4 of the 64x64 latent: the
finest level is left alone) becomes (latent side / 2)^2 by a listed patch, the project's ``fuse_max_query_fraction``
stays at its default 0.25.
Random draws: the official posterior sample draws from the global RNG after model construction (Accelerate's
``set_seed(0)`` first); its RNG state is recorded and handed to the project as its generator's state (replay).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import torch

from .compare import Stage, patched, record_decodes

OFFICIAL_COMMIT = "9b6cb7b"
SIDE_ARGS = ["--compat", "{root}/videoshop/_compat.py"]
PROJECT_PATCHES = [
    "the generator of the VAE posterior draw gets the official global RNG state recorded before its draw (replay)",
    "videoshop_bench.baselines.text.fatezero.resize_frames/short_side_center_crop/encode_prompts/ddim_invert/ddim_sample and "
    "vae.decode: recording wrappers (return values unchanged)",
]
CONFIGS = {  # input size, and the project options for it
    "square": dict(height=64, width=64),
    "16:9": dict(height=72, width=128, options=dict(frame_fit="center_crop")),
    "16:9, project default (resize)": dict(height=72, width=128),
    "square, official temporal bias kept": dict(height=64, width=64, side_flags=["--keep-temporal-bias"]),
}
SETTINGS = dict(side=64, num_frames=4, steps=10, guidance_scale=7.5, source_prompt="a red car on a road",
                target_prompt="a blue sports car on a road")
OPTIONS = dict(self_replace_steps=0.6, cross_replace_steps=0.8, is_replace_controller=False,
               blend_self_attention=True, blend_th=0.3)


def write_weights(directory) -> dict[str, str]:
    from videoshop_bench.baselines.text.t2v_models import SD14_SCHEDULER, load_fatezero_components

    from .weights import write_sd_layout

    c = load_fatezero_components("tiny", {}, allow_download=False, dtype=torch.float32, seed=0)
    return write_sd_layout(directory, unet=c.unet, vae=c.vae, text_encoder=c.text_encoder, tokenizer=c.tokenizer,
                           scheduler_config=SD14_SCHEDULER)


def make_inputs(config: str) -> dict[str, Any]:
    from videoshop_bench.baselines.text.fatezero import changed_words
    from videoshop_bench.datasets.synthetic import make_sample

    size = CONFIGS[config]
    s = make_sample(0, 1, num_frames=SETTINGS["num_frames"], height=size["height"], width=size["width"])
    src_words, tgt_words = changed_words(SETTINGS["source_prompt"], SETTINGS["target_prompt"])
    p2p = dict(cross_replace_steps={"default_": OPTIONS["cross_replace_steps"]},
               self_replace_steps=OPTIONS["self_replace_steps"], is_replace_controller=OPTIONS["is_replace_controller"],
               blend_words=[src_words, tgt_words], blend_self_attention=OPTIONS["blend_self_attention"],
               blend_th=[OPTIONS["blend_th"]] * 2)
    model_config = dict(lora=160, SparseCausalAttention_index=["mid"], least_sc_channel=32)
    latent = SETTINGS["side"] // 8
    return dict(frames=s.source_video, options=size.get("options", {}), side_flags=size.get("side_flags", []), p2p_config=p2p, model_config=model_config,
                max_query_tokens=(latent // 2) ** 2, **SETTINGS)


@contextmanager
def _recording(rec: dict):
    import videoshop_bench.baselines.text.fatezero as fz

    saved = {k: getattr(fz, k) for k in ("encode_prompts", "ddim_invert", "ddim_sample", "resize_frames",
                                         "short_side_center_crop")}

    def resize_frames(*a, **kw):  # uint8 -> float [-1, 1] as the VAE gets it
        out = saved["resize_frames"](*a, **kw)
        rec["resized"] = torch.from_numpy(out).permute(0, 3, 1, 2).float() / 127.5 - 1
        return out

    def short_side_center_crop(*a, **kw):
        out = saved["short_side_center_crop"](*a, **kw)
        rec["resized"] = out.clone()
        return out

    def encode_prompts(*a, **kw):
        out = saved["encode_prompts"](*a, **kw)
        rec["prompts"] = out.detach().clone()
        return out

    def ddim_invert(*a, **kw):
        out = saved["ddim_invert"](*a, **kw)
        rec["inversion"] = [x.clone() for x in out]
        return out

    def ddim_sample(eps_fn, x_T, sched, guidance_scale=None, callback=None, **kw):
        def cb(i, t, x_prev, x0):
            out = callback(i, t, x_prev, x0) if callback is not None else None
            rec.setdefault("edit_latents", []).append((x_prev if out is None else out).clone())
            return out
        return saved["ddim_sample"](eps_fn, x_T, sched, guidance_scale, callback=cb, **kw)

    with patched(fz, encode_prompts=encode_prompts, ddim_invert=ddim_invert, ddim_sample=ddim_sample,
                 resize_frames=resize_frames, short_side_center_crop=short_side_center_crop):
        yield


def run_project(weights_dir, inputs: dict, official: dict, **options) -> dict[str, Any]:
    from videoshop_bench.baselines.text.fatezero import FateZero
    from videoshop_bench.datasets.schema import Sample

    side = int(inputs["side"])
    opts = dict(OPTIONS, **inputs.get("options", {}), **options)
    method = FateZero(weights="pretrained", base={"path": str(weights_dir)}, dtype="float32", height=side, width=side,
                      num_inference_steps=int(inputs["steps"]), guidance_scale=float(inputs["guidance_scale"]),
                      fuse_max_query_fraction=0.25, least_sc_channel=int(inputs["model_config"]["least_sc_channel"]),
                      debug=True, **opts)
    rec: dict = {}
    record_decodes(method.vae, rec)
    frames = inputs["frames"]
    sample = Sample("official_check", frames, frames[0], source_prompt=inputs["source_prompt"],
                    target_prompt=inputs["target_prompt"])
    g = torch.Generator()
    g.set_state(official["rng_states"][0])
    with _recording(rec):
        result = method.edit(sample, g)
    rec["frames"] = result.frames
    rec["maps"] = method.last_controller.records.get("inversion", {})
    rec["z0"] = method.last_latents["z0"]
    return rec


def _maps_by_key(maps: dict, steps: int) -> list[dict]:
    """Our inversion maps {(step, layer): probs} grouped per step as the official store: {down_cross: [...], ...}."""
    out = [dict() for _ in range(steps)]
    for (step, name), m in maps.items():  # insertion order = call order within a step
        place = name.split("_")[0] if name.startswith(("down", "up")) else "mid"
        kind = "cross" if name.endswith("attn2.processor") else "self"
        out[step].setdefault(f"{place}_{kind}", []).append(m)
    return out


def stages(ours: dict, off: dict) -> list[Stage]:
    f = off["frames"].shape[0]
    steps = len(off["edit_latents"])
    to_fchw = lambda x: x[0].permute(1, 0, 2, 3)  # (1, c, f, h, w) -> (f, c, h, w)  # noqa: E731
    off_prompts = torch.cat([off["encoded"][0][1:], off["encoded"][-1][1:], off["encoded"][-1][:1]])
    out = [
        Stage("frames at model size (float [-1, 1])", ours["resized"], off["images"], ("frame",)),
        Stage("prompt embeddings [source, target, uncond]", ours["prompts"], off_prompts, ("prompt",)),
        Stage("VAE latents z0 (posterior sample, replayed draw)", ours["z0"], to_fchw(off["inversion"][0]), ("frame",)),
        Stage("inversion trajectory", torch.stack(ours["inversion"]).transpose(0, 1),
              torch.stack([to_fchw(x) for x in off["inversion"]]).transpose(0, 1), ("frame", "step")),
    ]
    ours_maps = _maps_by_key(ours["maps"], steps)
    for key in ("down_self", "mid_self", "up_self", "down_cross", "mid_cross", "up_cross"):
        a = [torch.cat([m.flatten() for m in s.get(key, [])]) for s in ours_maps]
        b = [torch.cat([m.flatten() for m in s.get(key, [])]) for s in off["inversion_maps"]]
        if a and b and a[0].numel() and b[0].numel():
            out.append(Stage(f"stored inversion attention maps {key}", torch.stack(a), torch.stack(b), ("step",)))
    ours_lat = torch.stack(ours["edit_latents"]).transpose(0, 1)
    off_lat = torch.stack([to_fchw(x) for x in off["edit_latents"]]).transpose(0, 1)
    dec = (ours["decoded"][-1].float() / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)
    out += [
        Stage("latents after step 1", ours_lat[:, 0], off_lat[:, 0], ("frame",)),
        Stage("latents after every step", ours_lat, off_lat, ("frame", "step")),
        Stage("latents after the last step", ours_lat[:, -1], off_lat[:, -1], ("frame",)),
        Stage("decoded frames (float [0, 1])", dec, off["decoded"][0], ("frame",)),
        Stage("output frames (uint8)", ours["frames"], off["frames"], ("frame",), 0.5, True),
    ]
    assert f == ours["frames"].shape[0]
    return out
