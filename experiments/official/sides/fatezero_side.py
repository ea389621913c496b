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

import argparse
import importlib.util
import os
import sys
import tempfile

PATCHES = [
    "videoshop/_compat.py loaded by file path before torchvision: CPU-torch operator shim",
    "attention_util.show_cross_attention -> no-op (visualisation of 16x16 maps, which the tiny scale has not)",
    "AttentionStore.forward, AttentionControlEdit.forward: maps with more query tokens than (latent side / 2)^2 pass "
    "through untouched (the official 32 ** 2 bound at 64x64 latents, scaled to the tiny latents)",
    "attn_temporal.to_out[0].bias zeroed (project deviation (b): temporal layers = identity); measured separately",
    "DiagonalGaussianDistribution.sample, AttentionStore.between_steps, _encode_prompt, decode_latents: recording "
    "wrappers (return values unchanged)",
]


def main() -> None:
    ap = argparse.ArgumentParser()
    for k in ("--official", "--weights", "--inputs", "--out", "--compat"):
        ap.add_argument(k, required=True)
    ap.add_argument("--keep-temporal-bias", action="store_true")
    args = ap.parse_args()
    spec = importlib.util.spec_from_file_location("_videoshop_compat", args.compat)
    compat = importlib.util.module_from_spec(spec)
    sys.modules["_videoshop_compat"] = compat  # keeps its torch.library fragment alive
    spec.loader.exec_module(compat)
    sys.path.insert(0, args.official)
    import numpy as np
    import torch
    from PIL import Image

    torch.set_num_threads(1)
    inp = torch.load(args.inputs, weights_only=False)
    from accelerate.utils import set_seed
    from diffusers import AutoencoderKL, DDIMScheduler
    from diffusers.models import vae as vae_mod
    from transformers import AutoTokenizer, CLIPTextModel

    from video_diffusion.data.dataset import ImageSequenceDataset
    from video_diffusion.models.unet_3d_condition import UNetPseudo3DConditionModel
    from video_diffusion.pipelines.p2p_ddim_spatial_temporal import P2pDDIMSpatioTemporalPipeline
    from video_diffusion.prompt_attention import attention_util

    # visualisation only (hard-coded 16x16 maps: at the tiny scale there are none); nothing it returns is used
    attention_util.show_cross_attention = lambda *a, **kw: None
    from video_diffusion.prompt_attention import attention_store

    bound = int(inp["max_query_tokens"])  # tiny-scale equivalent of the official 32 ** 2 (at 64x64 latents)

    def bounded(forward):
        def wrapped(self, attn, is_cross, place_in_unet):
            return attn if attn.shape[-2] > bound else forward(self, attn, is_cross, place_in_unet)
        return wrapped

    attention_store.AttentionStore.forward = bounded(attention_store.AttentionStore.forward)
    attention_util.AttentionControlEdit.forward = bounded(attention_util.AttentionControlEdit.forward)
    rec: dict = {"rng_states": [], "inversion_maps": [], "edit_latents": []}
    orig_sample = vae_mod.DiagonalGaussianDistribution.sample

    def sample(self, generator=None):
        rec["rng_states"].append(torch.get_rng_state().clone() if generator is None else None)
        return orig_sample(self, generator)

    vae_mod.DiagonalGaussianDistribution.sample = sample

    w, seed = args.weights, 0
    set_seed(seed)  # test_fatezero.py:79
    tokenizer = AutoTokenizer.from_pretrained(w, subfolder="tokenizer", use_fast=False)
    text_encoder = CLIPTextModel.from_pretrained(w, subfolder="text_encoder")
    vae = AutoencoderKL.from_pretrained(w, subfolder="vae")
    unet = UNetPseudo3DConditionModel.from_2d_model(os.path.join(w, "unet"), model_config=dict(inp["model_config"]))
    if not args.keep_temporal_bias:
        with torch.no_grad():
            for name, mod in unet.named_modules():
                if name.endswith("attn_temporal"):
                    mod.to_out[0].bias.zero_()
    pipe = P2pDDIMSpatioTemporalPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                         scheduler=DDIMScheduler.from_pretrained(w, subfolder="scheduler"),
                                         disk_store=False)
    steps = int(inp["steps"])
    pipe.scheduler.set_timesteps(steps)
    pipe.set_progress_bar_config(disable=True)
    for m in (vae, unet, text_encoder):
        m.requires_grad_(False).eval()

    folder = tempfile.mkdtemp(prefix="fz_official_")  # frames in, and the logdir (verbose=True: save_dir = logdir)
    for i, f in enumerate(inp["frames"]):
        Image.fromarray(f).save(os.path.join(folder, "%05d.png" % i))
    source, target = inp["source_prompt"], inp["target_prompt"]
    prompt_ids = tokenizer(source, truncation=True, padding="max_length", max_length=tokenizer.model_max_length,
                           return_tensors="pt").input_ids
    dataset = ImageSequenceDataset(path=folder, prompt=source, prompt_ids=prompt_ids, n_sample_frame=len(inp["frames"]),
                                   sampling_rate=1, stride=80, image_size=int(inp["side"]),
                                   offset=dict(left=0, right=0, top=0, bottom=0))
    images = dataset[0]["images"][None]  # collate_fn: batch of 1, b c f h w
    images = images.permute(0, 2, 1, 3, 4).flatten(0, 1)  # (b f) c h w
    orig_encode = pipe._encode_prompt

    def encode_prompt(*a, **kw):
        out = orig_encode(*a, **kw)
        rec.setdefault("encoded", []).append(out.detach().clone())
        return out

    pipe._encode_prompt = encode_prompt
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
    orig_decode = pipe.decode_latents

    def decode_latents(latents):
        out = orig_decode(latents)
        rec["decoded"] = np.array(out)
        rec["final_latents"] = latents.detach().clone()
        return out

    pipe.decode_latents = decode_latents
    p2p = dict(inp["p2p_config"], use_inversion_attention=True, save_self_attention=False)
    out = pipe(prompt=target, source_prompt=source, edit_type="swap", image=images, strength=None,
               generator=torch.Generator(device="cpu").manual_seed(seed), num_inference_steps=steps,
               clip_length=len(inp["frames"]), guidance_scale=float(inp["guidance_scale"]), num_images_per_prompt=1,
               latents=latents_all[-1], uncond_embeddings_list=None, save_path=os.path.join(folder, "logdir"),
               callback=lambda i, t, lat: rec["edit_latents"].append(lat.detach().clone()), **p2p)
    frames_out = np.stack([np.asarray(im) for im in out["sdimage_output"].images[0]])
    torch.save(dict(images=images, encoded=rec["encoded"], rng_states=rec["rng_states"],
                    inversion=[l.detach().clone() for l in latents_all], inversion_maps=rec["inversion_maps"],
                    edit_latents=rec["edit_latents"], final_latents=rec["final_latents"], decoded=rec["decoded"],
                    frames=frames_out, patches=PATCHES), args.out)


if __name__ == "__main__":
    main()
