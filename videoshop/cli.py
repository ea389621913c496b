"""One video, like the authors' script: `python -m videoshop.cli --video in.mp4 --image edited.png --output out.mp4`.

The input video must have the model's frame count (14 for SVD) unless --resample is given; the edited image is
resized to the model resolution as the authors do. --model takes svd | svd_xt | tiny | svd_random | toy, the other
image-to-video models wan21_i2v | wan22_i2v | wan22_ti2v | ltx_i2v | cogvideox_i2v and their _tiny and _random
variants (these take --prompt, the edited video's description): every name of videoshop.families.model_presets(),
the same mappings as Hydra's model=NAME; or a local SVD checkpoint directory. Only the library itself is used (no conf/, no
Hydra), so it runs from any install.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import _compat  # noqa: F401

MAX_PROMPT_CHARS = 2000  # as videoshop_bench.datasets.schema.MAX_TEXT_CHARS: text is bounded before any model sees it

def model_config(name: str) -> dict:
    """A preset by name, else a local SVD checkpoint directory at SVD's size."""
    from .families import model_presets

    presets = model_presets()
    if name in presets:
        return dict(presets[name])
    return {"name": Path(name).name, "kind": "pretrained", "path": name, "dtype": "auto", "num_frames": 14,
            "height": 576, "width": 1024}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", required=True)
    p.add_argument("--image", required=True, help="the edited first frame")
    p.add_argument("--output", required=True, help="output .mp4 (lossless PNG frames go to OUTPUT stem + '_frames/')")
    p.add_argument("--model", default="svd")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--strength", type=float, default=0.55)
    p.add_argument("--threshold", type=float, default=1.0)
    p.add_argument("--num-inference-steps", type=int, default=25)
    p.add_argument("--min-guidance-scale", type=float, default=4.0)
    p.add_argument("--max-guidance-scale", type=float, default=4.0)
    p.add_argument("--resample", action="store_true", help="resample the video to the model's frame count")
    p.add_argument("--prompt", default=None, help="text-conditioned models (Wan, LTX, CogVideoX): the edited video")
    p.add_argument("--source-prompt", default=None, help="text-conditioned models: the source video (default: --prompt)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import torch

    from .families import family_of
    from .models import MissingWeightsError, build_pipeline
    from .video_io import read_image, read_video, resample_frames, write_frames, write_video

    cfg = model_config(a.model)
    if (prompted := family_of(cfg).prompted) and not a.prompt:
        print(f"error: --model {a.model} is text-conditioned: give --prompt (a description of the edited video)",
              file=sys.stderr)
        return 2
    for flag, text in (("--prompt", a.prompt), ("--source-prompt", a.source_prompt)):
        if text is not None and len(text) > MAX_PROMPT_CHARS:
            print(f"error: {flag} is {len(text)} characters, more than {MAX_PROMPT_CHARS}", file=sys.stderr)
            return 2
    prompts = {"prompt": a.prompt, "source_prompt": a.source_prompt or a.prompt} if prompted else {}
    try:
        video, fps = read_video(a.video)  # sizes beyond video_io.InputLimits() refused before decoding
        image = read_image(a.image)
        if video.shape[0] < 2:  # as the runner (Sample.validate): one frame carries no motion to propagate
            print(f"error: {a.video} has {video.shape[0]} frame; an edit needs a video of at least 2 frames"
                  f"{' (--resample does not invent motion)' if a.resample else ''}", file=sys.stderr)
            return 2
        if video.shape[0] != cfg["num_frames"]:
            if not a.resample:
                print(f"error: {a.video} has {video.shape[0]} frames; the model takes {cfg['num_frames']} "
                      f"(pass --resample)", file=sys.stderr)
                return 2
            video = resample_frames(video, cfg["num_frames"])
        pipe = build_pipeline(cfg, a.device)
    except (MissingWeightsError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = pipe(video=video, edited_image=image, generator=torch.Generator().manual_seed(a.seed),
               height=cfg["height"], width=cfg["width"], strength=a.strength, threshold=a.threshold,
               num_inference_steps=a.num_inference_steps, min_guidance_scale=a.min_guidance_scale,
               max_guidance_scale=a.max_guidance_scale, **prompts)
    write_video(a.output, out.frames, fps=7)
    write_frames(Path(a.output).with_name(Path(a.output).stem + "_frames"), out.frames)
    print(f"wrote {a.output} ({out.frames.shape[0]} frames, {out.nfe} UNet passes{'' if out.finite else ', NON-FINITE latents'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
