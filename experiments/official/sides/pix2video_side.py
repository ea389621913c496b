"""Official Pix2Video, run in its side environment (never imports the project): ``python pix2video_side.py
--official DIR --weights W --inputs IN.pt --out OUT.pt``.

The official code is imported from the clone DIR (``DIR/code`` and its vendored diffusers ``DIR/mydiffusers``).
``code/test_cfg.py`` is a script (argparse, hub download with a token, ffmpeg at import); its module body is not run:
this file calls the same functions with the same arguments in the same order (test_cfg.py:35 scheduler, 93-126:
load_512, load_depth, VideoDataset, VideoModel, perform_inversion, test).

Monkeypatches (each listed in PATCHES, printed by the driver):
- ``pytorch_lightning``: a stub module with ``seed_everything`` (seeds random/numpy/torch); Lightning is not
  installed (it would pull a newer torch), and the method draws no random number that reaches the output.
- ``file_utils.Image``: a proxy of PIL.Image whose ``fromarray(...).resize((512, 512))`` resizes to the tiny
  side S instead (same PIL call and default filter): the tiny weights run at S px, not 512.
- recording wrappers, behaviour unchanged: ``VideoModel.init_prompt`` (context), ``get_noise_pred`` (input latents),
  ``img2img`` (features, x0 list, output image), ``latent2image`` (final latent), ``vae.decode`` (float frames).
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import types

from side_common import record_after, start_side

PATCHES = [
    "pytorch_lightning: stub module providing seed_everything (random/numpy/torch seeds); Lightning not installed",
    "file_utils.Image: PIL.Image proxy, resize((512, 512)) -> resize((S, S)) with PIL's default filter (tiny scale)",
    "VideoModel.init_prompt/get_noise_pred/img2img/latent2image, vae.decode: recording wrappers (return values unchanged)",
]


def _stub_lightning():
    import numpy as np
    import torch

    def seed_everything(seed=None, workers=False):
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        return seed

    mod = types.ModuleType("pytorch_lightning")
    mod.seed_everything = seed_everything
    sys.modules["pytorch_lightning"] = mod


class _ResizeProxy:
    """PIL.Image stand-in for file_utils: everything delegates to PIL.Image except that ``fromarray`` returns images
    whose ``resize((512, 512))`` targets (side, side)."""

    def __init__(self, side: int):
        import PIL.Image

        self._pil, self._side = PIL.Image, side

    def __getattr__(self, name):
        return getattr(self._pil, name)

    def fromarray(self, *a, **kw):
        img = self._pil.fromarray(*a, **kw)
        side, orig = self._side, img.resize

        def resize(size, *ra, **rkw):
            return orig((side, side) if tuple(size) == (512, 512) else size, *ra, **rkw)

        img.resize = resize
        return img


def build_pipeline(w: str, device):
    """test_cfg.py:35-50: the DDIM scheduler and the vendored depth-to-image pipeline from the weights."""
    from mydiffusers import AutoencoderKL, DDIMScheduler, StableDiffusionDepth2ImgPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False)  # test_cfg.py:35
    return StableDiffusionDepth2ImgPipeline(
        vae=AutoencoderKL.from_pretrained(w, subfolder="vae"),
        text_encoder=CLIPTextModel.from_pretrained(w, subfolder="text_encoder"),
        tokenizer=CLIPTokenizer.from_pretrained(w, subfolder="tokenizer"),
        unet=UNet2DConditionModel.from_pretrained(w, subfolder="unet"), scheduler=scheduler,
        depth_estimator=None, feature_extractor=None).to(device)


def load_frames(pipe, file_utils, inp: dict, folder: str, out_dir: str, np):
    """test_cfg.py:93-106: the frames through ``load_512`` and their depth through ``load_depth`` (which reads the
    depth cache written here: the estimator is replaced by the given fixed maps)."""
    frames, depth_maps = inp["frames"], inp["depth"]
    for i in range(len(frames)):
        np.save(os.path.join(folder, "%06d.npy" % i), depth_maps[i].astype(np.float32))
    image_paths, depth_paths, _, _, _ = file_utils.get_data_paths(folder, out_dir, len(frames))
    images, depths = [], []
    for i in range(len(frames)):  # test_cfg.py:96-106
        input_image = file_utils.load_512(frames[i])
        images.append(input_image)
        H, W = input_image.shape[:2]
        depths.append(file_utils.load_depth(pipe, depth_paths[i], input_image, W=W, H=H))
    return images, depths


def record_model(model, rec: dict, cond_layer: int, np) -> None:
    """Recording wrappers on the VideoModel: context per prompt, sampling inputs, img2img outputs, final latents."""
    orig_init, orig_gnp, orig_l2i = model.init_prompt, model.get_noise_pred, model.latent2image

    def latent2image(latents, *a, **kw):
        rec.setdefault("final_latents", []).append(latents.detach().clone())
        return orig_l2i(latents, *a, **kw)

    def init_prompt(prompt):
        orig_init(prompt)
        rec["contexts"].append([c.detach().clone() for c in model.context])

    def get_noise_pred(latents, t, *a, **kw):
        if not kw.get("is_forward", False):
            rec["step_inputs"].append(latents.detach().clone())
        return orig_gnp(latents, t, *a, **kw)

    def img2img(out, *a, **kw):
        img, fu, fc, x0 = out
        up = lambda feats: [[f.detach().clone() for f in step[cond_layer:]] for step in feats]  # noqa: E731
        rec["img2img"].append(dict(image=np.array(img[0]), feat_uncond=up(fu), feat_cond=up(fc),
                                   x0=[x.detach().clone() for x in x0]))

    model.init_prompt, model.get_noise_pred, model.latent2image = init_prompt, get_noise_pred, latent2image
    record_after(model, "img2img", img2img)


def main() -> None:
    args, inp = start_side(compat=False)
    sys.path[:0] = [os.path.join(args.official, "mydiffusers"), os.path.join(args.official, "code")]
    _stub_lightning()
    import numpy as np
    import torch

    import file_utils
    import video_model_cross_frame_attn as vm
    from mydiffusers.models import unet_2d_blocks

    file_utils.Image = _ResizeProxy(int(inp["side"]))
    device = file_utils.device
    pipe = build_pipeline(args.weights, device)
    rec: dict = {"contexts": [], "step_inputs": [], "img2img": [], "decoded": []}
    record_after(pipe.vae, "decode", lambda out, *a, **kw: rec["decoded"].append(out["sample"].detach().clone()))
    work = tempfile.mkdtemp(prefix="p2v_official_")
    folder, out_dir = os.path.join(work, "frames"), os.path.join(work, "out")
    os.makedirs(folder)
    images, depths = load_frames(pipe, file_utils, inp, folder, out_dir, np)
    dataset = vm.VideoDataset(pipe, images, depths, folder, os.path.join(folder, "inversion_no_finetune"), device,
                              False)
    model = vm.VideoModel(pipe, int(inp["steps"]), float(inp["guidance_scale"]), out_dir, [inp["source_prompt"]],
                          inp["source_prompt"], no_frames=len(images), use_keyframe_only=0, device=device,
                          classifier_guidance_flag=1, per_frame_classifier_guidance=1,
                          use_self_attention_injection=1, target_index=25).to(device)
    record_model(model, rec, unet_2d_blocks.COND_LAYER, np)
    model.perform_inversion(dataset)
    model.test(dataset, out_dir, [inp["target_prompt"]])
    inversions = [torch.load(os.path.join(dataset.inversion_path, "%06d.pt" % i)) for i in range(len(images))]
    torch.save(dict(resized=np.stack(images), depth=torch.cat(dataset.depth), z0=torch.cat(dataset.image_latents),
                    inversion=[torch.cat(traj) for traj in inversions], contexts=rec["contexts"],
                    step_inputs=rec["step_inputs"], img2img=rec["img2img"], decoded=rec["decoded"],
                    final_latents=rec["final_latents"], patches=PATCHES), args.out)


if __name__ == "__main__":
    main()
