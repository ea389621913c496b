"""Official FateZero, run in its side environment (never imports the project): ``python fatezero_side.py
--official DIR --weights W --inputs IN.pt --out OUT.pt [--keep-temporal-bias]``.

The official code is imported from the clone DIR (``video_diffusion``). ``test_fatezero.py`` is a click script built
around Accelerate and a DataLoader with workers; its body is not run: this file makes the same calls in the same
order (test_fatezero.py:76-227 and P2pSampleLogger.log_sample_images: set_seed, tokenizer (slow), text encoder, VAE,
``UNetPseudo3DConditionModel.from_2d_model``, ``P2pDDIMSpatioTemporalPipeline`` with the checkpoint's DDIM scheduler,
``ImageSequenceDataset`` transform, ``_encode_prompt``, ``prepare_latents_ddim_inverted`` with stored attention, then
the pipeline call with ``edit_type='swap'`` and the p2p config), fp32 on CPU (no Accelerate mixed precision).

Monkeypatches (each listed in PATCHES, printed by the driver):
- videoshop/_compat.py (loaded by path, not as the project) before torchvision is imported: the CPU-torch shim;
- ``attention_util.show_cross_attention``: a no-op (it only draws the 16x16 cross-attention maps into the logdir; the
  tiny scale has no 16x16 maps);
- ``AttentionStore.forward`` / ``AttentionControlEdit.forward``: maps whose query length exceeds (latent side / 2)^2
  pass through untouched, as the official code does above 32 ** 2 at 512 px (the finest level is never stored or
  edited; its layer indexing, e.g. the blend mask's ``down_cross[2:4] + up_cross[:3]``, relies on it);
- ``attn_temporal.to_out[0].bias`` zeroed in every block (the project's documented deviation (b)), unless
  ``--keep-temporal-bias`` (then the size of that deviation is measured);
- recording wrappers, behaviour unchanged: ``DiagonalGaussianDistribution.sample`` (the global RNG state before
  the posterior draw, so the project can replay it), the inversion store's per-step maps, ``decode_latents``.
"""

from __future__ import annotations

import os
import sys
import tempfile

from side_common import record_after, save_frames, start_side

SEED = 0  # test_fatezero.py's seed
PATCHES = [
    "videoshop/_compat.py loaded by file path before torchvision: CPU-torch operator shim",
    "attention_util.show_cross_attention -> no-op (visualisation of 16x16 maps, which the tiny scale has not)",
    "AttentionStore.forward, AttentionControlEdit.forward: maps with more query tokens than (latent side / 2)^2 pass "
    "through untouched (the official 32 ** 2 bound at 64x64 latents, scaled to the tiny latents)",
    "attn_temporal.to_out[0].bias zeroed (project deviation (b): temporal layers = identity); measured separately",
    "DiagonalGaussianDistribution.sample, AttentionStore.between_steps, _encode_prompt, decode_latents: recording "
    "wrappers (return values unchanged)",
]


def bound_attention_maps(attention_util, attention_store, bound: int) -> None:
    """No cross-attention drawing; maps with more query tokens than ``bound`` pass the store and the edit untouched
    (the official 32 ** 2 at 64x64 latents, scaled)."""
    attention_util.show_cross_attention = lambda *a, **kw: None  # visualisation only; nothing it returns is used

    def bounded(forward):
        def wrapped(self, attn, is_cross, place_in_unet):
            return attn if attn.shape[-2] > bound else forward(self, attn, is_cross, place_in_unet)
        return wrapped

    attention_store.AttentionStore.forward = bounded(attention_store.AttentionStore.forward)
    attention_util.AttentionControlEdit.forward = bounded(attention_util.AttentionControlEdit.forward)


def record_posterior_rng(vae_mod, torch, rec: dict) -> None:
    """The global RNG state before each VAE posterior draw (the project replays it)."""
    orig_sample = vae_mod.DiagonalGaussianDistribution.sample

    def sample(self, generator=None):
        rec["rng_states"].append(torch.get_rng_state().clone() if generator is None else None)
        return orig_sample(self, generator)

    vae_mod.DiagonalGaussianDistribution.sample = sample


def build_pipeline(w: str, inp: dict, keep_temporal_bias: bool, torch):
    """test_fatezero.py:79-110: seed, tokenizer (slow), text encoder, VAE, the inflated UNet (temporal output bias
    zeroed unless kept), the P2P pipeline with the checkpoint's DDIM scheduler at the run's steps."""
    from accelerate.utils import set_seed
    from diffusers import AutoencoderKL, DDIMScheduler
    from transformers import AutoTokenizer, CLIPTextModel

    from video_diffusion.models.unet_3d_condition import UNetPseudo3DConditionModel
    from video_diffusion.pipelines.p2p_ddim_spatial_temporal import P2pDDIMSpatioTemporalPipeline

    set_seed(SEED)  # test_fatezero.py:79
    tokenizer = AutoTokenizer.from_pretrained(w, subfolder="tokenizer", use_fast=False)
    text_encoder = CLIPTextModel.from_pretrained(w, subfolder="text_encoder")
    vae = AutoencoderKL.from_pretrained(w, subfolder="vae")
    unet = UNetPseudo3DConditionModel.from_2d_model(os.path.join(w, "unet"), model_config=dict(inp["model_config"]))
    if not keep_temporal_bias:
        with torch.no_grad():
            for name, mod in unet.named_modules():
                if name.endswith("attn_temporal"):
                    mod.to_out[0].bias.zero_()
    pipe = P2pDDIMSpatioTemporalPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                         scheduler=DDIMScheduler.from_pretrained(w, subfolder="scheduler"),
                                         disk_store=False)
    pipe.scheduler.set_timesteps(int(inp["steps"]))
    pipe.set_progress_bar_config(disable=True)
    for m in (vae, unet, text_encoder):
        m.requires_grad_(False).eval()
    return pipe


def source_images(pipe, folder: str, inp: dict):
    """The frames through ``ImageSequenceDataset``'s transform, batched as the collate function does: (f, c, h, w)."""
    from video_diffusion.data.dataset import ImageSequenceDataset

    tok, source = pipe.tokenizer, inp["source_prompt"]
    prompt_ids = tok(source, truncation=True, padding="max_length", max_length=tok.model_max_length,
                     return_tensors="pt").input_ids
    dataset = ImageSequenceDataset(path=folder, prompt=source, prompt_ids=prompt_ids, n_sample_frame=len(inp["frames"]),
                                   sampling_rate=1, stride=80, image_size=int(inp["side"]),
                                   offset=dict(left=0, right=0, top=0, bottom=0))
    images = dataset[0]["images"][None]  # collate_fn: batch of 1, b c f h w
    return images.permute(0, 2, 1, 3, 4).flatten(0, 1)  # (b f) c h w


def invert(pipe, images, source: str, folder: str, rec: dict, torch):
    """The source prompt's embeddings, then DDIM inversion with stored attention (each step's maps recorded)."""
    record_after(pipe, "_encode_prompt", lambda out, *a, **kw: rec.setdefault("encoded", []).append(
        out.detach().clone()))
    text_embeddings = pipe._encode_prompt(source, device=torch.device("cpu"), num_images_per_prompt=1,
                                          do_classifier_free_guidance=True, negative_prompt=None)
    orig_between = pipe.store_controller.__class__.between_steps

    def between_steps(self):
        if self is pipe.store_controller:
            rec["inversion_maps"].append({k: [a.detach().clone() for a in v] for k, v in self.step_store.items()})
        return orig_between(self)

    pipe.store_controller.__class__.between_steps = between_steps
    latents_all = pipe.prepare_latents_ddim_inverted(images, batch_size=1, num_images_per_prompt=1,
                                                      text_embeddings=text_embeddings, store_attention=True,
                                                      prompt=source, LOW_RESOURCE=True,
                                                      save_path=os.path.join(folder, "logdir_inversion"))
    pipe.store_controller.__class__.between_steps = orig_between
    return latents_all


def edit(pipe, images, latents_all, inp: dict, folder: str, rec: dict, np, torch):
    """The pipeline call with ``edit_type='swap'`` and the p2p config; the decoded frames (uint8)."""
    def decoded(out, latents):
        rec["decoded"] = np.array(out)
        rec["final_latents"] = latents.detach().clone()

    record_after(pipe, "decode_latents", decoded)
    p2p = dict(inp["p2p_config"], use_inversion_attention=True, save_self_attention=False)
    out = pipe(prompt=inp["target_prompt"], source_prompt=inp["source_prompt"], edit_type="swap", image=images,
               strength=None, generator=torch.Generator(device="cpu").manual_seed(SEED),
               num_inference_steps=int(inp["steps"]), clip_length=len(inp["frames"]),
               guidance_scale=float(inp["guidance_scale"]), num_images_per_prompt=1, latents=latents_all[-1],
               uncond_embeddings_list=None, save_path=os.path.join(folder, "logdir"),
               callback=lambda i, t, lat: rec["edit_latents"].append(lat.detach().clone()), **p2p)
    return np.stack([np.asarray(im) for im in out["sdimage_output"].images[0]])


def main() -> None:
    args, inp = start_side(flags=("--keep-temporal-bias",))
    sys.path.insert(0, args.official)
    import numpy as np
    import torch
    from diffusers.models import vae as vae_mod

    from video_diffusion.prompt_attention import attention_store, attention_util

    bound_attention_maps(attention_util, attention_store, int(inp["max_query_tokens"]))
    rec: dict = {"rng_states": [], "inversion_maps": [], "edit_latents": []}
    record_posterior_rng(vae_mod, torch, rec)
    pipe = build_pipeline(args.weights, inp, args.keep_temporal_bias, torch)
    # frames in, and the logdir (verbose=True: save_dir = logdir)
    folder = save_frames(tempfile.mkdtemp(prefix="fz_official_"), inp["frames"])
    images = source_images(pipe, folder, inp)
    latents_all = invert(pipe, images, inp["source_prompt"], folder, rec, torch)
    frames_out = edit(pipe, images, latents_all, inp, folder, rec, np, torch)
    torch.save(dict(images=images, encoded=rec["encoded"], rng_states=rec["rng_states"],
                    inversion=[l.detach().clone() for l in latents_all], inversion_maps=rec["inversion_maps"],
                    edit_latents=rec["edit_latents"], final_latents=rec["final_latents"], decoded=rec["decoded"],
                    frames=frames_out, patches=PATCHES), args.out)


if __name__ == "__main__":
    main()
