"""Official RAVE, run in its side environment (never imports the project): ``python rave_side.py --official DIR
--weights W --inputs IN.pt --out OUT.pt --compat PATH``.

The official code is imported from the clone DIR (``pipelines/sd_controlnet_rave.py``, ``utils/``); the side makes the
calls of ``scripts/run_experiment.py:run`` (``prepare_video_to_grid``, ``RAVE(device)``, ``init_models``, ``RAVE(input)``)
with configs/truck.yaml's settings, minus its paths and GIF saving.

Monkeypatches (each listed in PATCHES, printed by the driver):
- videoshop/_compat.py loaded by path before torchvision: the CPU-torch shim;
- ``utils.preprocesser_utils``: a stub module whose ``pixel_perfect_process`` returns the given fixed control maps in
  call order (the ControlNet annotators, Zoe depth, are not under test; their dependencies are not installed);
- ``utils.video_grid_utils.cv.VideoCapture``: reads the given uint8 frames (BGR, lossless) instead of an mp4 file;
- ``utils.video_grid_utils.np.sqrt`` inside the grid sizing: ``max_grid_area = 512*512*g^2`` scaled to the tiny cell
  area (``sqrt(w*h/max_grid_area)`` evaluated with the tiny area), so cells come out at the tiny size;
- ``StableDiffusionControlNetImg2ImgPipeline.enable_model_cpu_offload`` / ``enable_xformers_memory_efficient_attention``:
  no-ops (GPU memory features; CPU attention is the code's own fallback);
- recording wrappers, behaviour unchanged: ``RAVE.encode_imgs``, ``ddim_inversion``, ``shuffle_latents``,
  ``batch_denoise``, ``decode_latents``, ``get_text_embeds``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import types

from side_common import start_side

PATCHES = [
    "videoshop/_compat.py loaded by file path before torchvision: CPU-torch operator shim",
    "utils.preprocesser_utils: stub, pixel_perfect_process returns the fixed control maps (annotators not under test)",
    "utils.video_grid_utils.cv.VideoCapture: the given uint8 frames (lossless) instead of an mp4 file",
    "utils.video_grid_utils.np.sqrt: the grid sizing's 512*512 cell area scaled to the tiny cell area",
    "enable_model_cpu_offload / enable_xformers_memory_efficient_attention: no-ops on CPU",
    "RAVE.encode_imgs/ddim_inversion/shuffle_latents/batch_denoise/decode_latents/get_text_embeds: recording wrappers",
]


def stub_annotators(control_maps) -> None:
    """``utils.preprocesser_utils`` whose ``pixel_perfect_process`` returns the given maps in call order."""
    controls = list(control_maps)  # (h, w) uint8 per frame, in the order the official code asks for them
    stub = types.ModuleType("utils.preprocesser_utils")
    stub.pixel_perfect_process = lambda image, name: controls.pop(0)
    sys.modules["utils.preprocesser_utils"] = stub


def no_gpu_memory_features(diffusers) -> None:
    """CPU offload and xformers attention: no-ops (CPU attention is the code's own fallback)."""
    pipe_cls = diffusers.StableDiffusionControlNetImg2ImgPipeline
    pipe_cls.enable_model_cpu_offload = lambda self, *a, **k: None
    pipe_cls.enable_xformers_memory_efficient_attention = lambda self, *a, **k: None


def frames_as_video(vgu, frames, cell_area: float, np) -> None:
    """``cv.VideoCapture`` reads the given frames (BGR, lossless); the grid sizing's 512*512 cell area is scaled to
    the tiny ``cell_area``."""
    frames_bgr = [f[..., ::-1].copy() for f in frames]

    class Capture:
        def __init__(self, path):
            self.i = 0

        def get(self, prop):
            return len(frames_bgr)

        def read(self):
            self.i += 1
            return True, frames_bgr[self.i - 1]

    area_scale = (512 * 512) / float(cell_area)
    np_proxy = types.SimpleNamespace(**{k: getattr(np, k) for k in dir(np) if not k.startswith("__")})
    np_proxy.sqrt = lambda x: np.sqrt(x * area_scale)
    vgu.cv = types.SimpleNamespace(**{k: getattr(vgu.cv, k) for k in dir(vgu.cv) if not k.startswith("__")})
    vgu.cv.VideoCapture = Capture
    vgu.np = np_proxy


def record_rave(RAVE, rec: dict) -> None:
    """Recording wrappers on the RAVE class: encoded images, decoded latents, text embeddings, the inversion's input
    and output, each step's permutation and denoised latents."""
    def keep(name, fn):
        def wrapped(self, *a, **kw):
            out = fn(self, *a, **kw)
            rec.setdefault(name, []).append(out if not isinstance(out, tuple) else tuple(o for o in out))
            return out
        return wrapped

    RAVE.encode_imgs = keep("encode_imgs", RAVE.encode_imgs)
    RAVE.decode_latents = keep("decode_latents", RAVE.decode_latents)
    RAVE.get_text_embeds = keep("text_embeds", RAVE.get_text_embeds)
    orig_inv, orig_shuffle, orig_batch = RAVE.ddim_inversion, RAVE.shuffle_latents, RAVE.batch_denoise

    def ddim_inversion(self, latents, control_batch, indices):
        rec["inversion_in"] = latents.clone()
        out = orig_inv(self, latents, control_batch, indices)
        rec["inverted"], rec["control_batch"] = out[0].clone(), out[2].clone()
        return out

    def shuffle_latents(self, latents, control_image, indices):
        out = orig_shuffle(self, latents, control_image, indices)
        rec["perms"].append(list(out[1]))
        return out

    def batch_denoise(self, latents, control_image, indices, *a, **kw):
        out = orig_batch(self, latents, control_image, indices, *a, **kw)
        rec["steps"].append((out[0].clone(), list(out[1])))
        return out

    RAVE.ddim_inversion, RAVE.shuffle_latents, RAVE.batch_denoise = ddim_inversion, shuffle_latents, batch_denoise


def main() -> None:
    args, inp = start_side()
    sys.path.insert(0, args.official)
    import numpy as np
    import torch

    stub_annotators(inp["control_maps"])
    import diffusers
    import utils.video_grid_utils as vgu

    no_gpu_memory_features(diffusers)
    frames_as_video(vgu, inp["frames"], inp["cell_area"], np)
    from pipelines.sd_controlnet_rave import RAVE as make_rave

    model = make_rave(torch.device("cpu"))
    rec: dict = {"steps": [], "perms": []}
    record_rave(type(model), rec)  # the class is decorated with @torch.no_grad(), which makes its name a function
    g = int(inp["grid_size"])
    image_pil_list = vgu.prepare_video_to_grid("frames", -1, g, 1)
    work = tempfile.mkdtemp(prefix="rave_official_")
    for d in ("inverse", "control"):
        os.makedirs(os.path.join(work, d))
    model.init_models(os.path.join(args.weights, "controlnet"), args.weights, "depth_zoe", "None")
    input_dict = dict(inp["settings"], image_pil_list=image_pil_list, sample_size=len(image_pil_list),
                      inverse_path=os.path.join(work, "inverse"), control_path=os.path.join(work, "control"))
    res_frames, _ = model(input_dict)
    torch.save(dict(grid_size=g, grids=np.stack([np.asarray(p) for p in image_pil_list]), rec=rec,
                    frames=np.stack([np.asarray(f) for f in res_frames]), patches=PATCHES), args.out)


if __name__ == "__main__":
    main()
