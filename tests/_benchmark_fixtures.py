"""Tiny copies of the published benchmarks' layouts (docs/datasets.md "Published benchmarks"), written by the tests.

Each maker writes a few good samples and a few bad rows into ``root`` and returns what the tests check against.
Videos are a smooth gradient with a bright square moving right (so frame selection and masks are checkable).
"""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from videoshop.video_io import write_image, write_video

H, W = 48, 80  # not 16:9: the builders centre-crop to the model's aspect ratio


def square_box(i: int, h: int = H, w: int = W) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the moving square in frame ``i``."""
    top, left = h // 3, 8 + 2 * i
    return top, left, top + h // 3, left + w // 4


def clip(t: int, h: int = H, w: int = W) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 90)], -1).astype(np.uint8)
    frames = np.repeat(base[None], t, 0)
    for i in range(t):
        a, b, c, d = square_box(i, h, w)
        frames[i, a:c, b:d] = (250, 250, 40)
    return frames


def square_masks(t: int, h: int = H, w: int = W) -> np.ndarray:
    m = np.zeros((t, h, w), bool)
    for i in range(t):
        a, b, c, d = square_box(i, h, w)
        m[i, a:c, b:d] = True
    return m


def edited_of(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = frame.copy()
    out[mask] = (200, 30, 30)
    return out


def write_jpgs(folder, frames, start: int = 0, digits: int = 5) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{i + start:0{digits}d}.jpg", quality=95)


# ----------------------------------------------------------------------------- FiVE-Bench
FIVE_QUESTIONS = {"source_yes_no_question": "Is there a yellow square in the video?",
                  "target_yes_no_question": "Is there a red square in the video?",
                  "multiple_choice_question": "What colour is the square? \na) Yellow \nb) Red"}


def make_five(root, t: int = 20):
    """data/edit_prompt/edit3_FiVE.json (2 good entries, 1 with a missing video), edit5_FiVE.json (an entry without
    target_prompt), images/<video>/00001.jpg, bmasks/<video>/00001.jpg; first frames for the good entries."""
    data, ff = root / "data", root / "first_frames"
    for name in ("0001_square", "0002_square"):
        write_jpgs(data / "images" / name, clip(t), start=1)
        write_jpgs(data / "bmasks" / name, square_masks(t).astype(np.uint8)[..., None].repeat(3, -1) * 255, start=1)
    (data / "edit_prompt").mkdir(parents=True)
    entry = {"source_prompt": "a [yellow] square slides over a gradient",
             "target_prompt": "a [red] square slides over a gradient", "editing_type_id": "3", **FIVE_QUESTIONS}
    (data / "edit_prompt" / "edit3_FiVE.json").write_text(json.dumps([
        {**entry, "video_name": "0001_square", "save_dir": "red"},
        {**entry, "video_name": "0002_square", "save_dir": "red"},
        {**entry, "video_name": "0404_gone", "save_dir": "red"}]))
    (data / "edit_prompt" / "edit5_FiVE.json").write_text(json.dumps([{"video_name": "0001_square"}]))
    ff.mkdir()
    for sid in ("edit3_0001_square", "edit3_0002_square"):
        write_image(ff / f"{sid}.png", edited_of(clip(1)[0], square_masks(1)[0]))
    return data, ff


# ----------------------------------------------------------------------------- V2VBench
def make_v2v(root, t: int = 16):
    """config.yaml: `square` (mp4, 3 prompts), `frames` (a folder of 01.jpg ... , 1 prompt), a malformed row;
    first frames for square_0, square_1, frames_0 (square_2 has none)."""
    (root / "videos").mkdir(parents=True)
    write_video(root / "videos" / "square.mp4", clip(t), fps=8)
    write_jpgs(root / "videos" / "frames", clip(t), start=1, digits=2)
    (root / "config.yaml").write_text(
        "data:\n"
        "- video_id: square\n  prompt: a yellow square slides over a gradient\n  edit:\n"
        "  - prompt: a red square slides over a gradient\n  - prompt: a yellow square slides over a gradient, pixel art\n"
        "  - prompt: a yellow square slides over a starry sky\n"
        "- video_id: frames\n  edit:\n  - prompt: a red square on a gradient\n"
        "- edit: oops\n")
    ff = root / "first_frames"
    ff.mkdir()
    for sid in ("square_0", "square_1", "frames_0"):
        write_image(ff / f"{sid}.png", edited_of(clip(1)[0], square_masks(1)[0]))
    return root, ff


# ----------------------------------------------------------------------------- EditVerseBench
def make_evb(root, t: int = 18):
    """test.json: "0" with an edited first frame (png) and a mask video, "1" without an edited first frame,
    "2" whose video is missing, "3" malformed; videos/, edited_first_frame/, inpaint_video_and_masks/."""
    for d in ("videos", "edited_first_frame", "inpaint_video_and_masks"):
        (root / d).mkdir(parents=True)
    write_video(root / "videos" / "100-1.mp4", clip(t), fps=25)
    write_image(root / "edited_first_frame" / "0.png", edited_of(clip(1)[0], square_masks(1)[0]))
    write_video(root / "inpaint_video_and_masks" / "0_mask.mp4",
                square_masks(t).astype(np.uint8)[..., None].repeat(3, -1) * 255, fps=25)
    common = {"<video1> link": "https://pixabay.com/videos/x-100/", "direction": "horizontal",
              "source_prompt": "A yellow square slides.", "target_prompt": "A red square slides."}
    (root / "test.json").write_text(json.dumps({
        "0": {"<text>": "<video1> Make the square red, following <image1>.", "<video1>": "videos/100-1.mp4",
              "<image1>": "edited_first_frame/0.png", "<video2>": "inpaint_video_and_masks/0_mask.mp4",
              "type": "change color", **common},
        "1": {"<text>": "<video1> Turn it into a watercolor painting.", "<video1>": "videos/100-1.mp4",
              "type": "style", **common},
        "2": {"<text>": "<video1> Add a hat.", "<video1>": "videos/missing.mp4",
              "<image1>": "edited_first_frame/2.png", "type": "add object", **common},
        "3": {"<text>": "no video"}}))
    return root


# ----------------------------------------------------------------------------- DAVIS 2017
def make_davis(root, t: int = 12):
    """JPEGImages/480p/square/00000.jpg, Annotations/480p/square/00000.png (palette: 1 = the square, 2 = a fixed
    bar), ImageSets/2017/val.txt; edits.csv with a recolour of object 1 (edited path), an add (first_frames), a
    row with an unknown sequence and one with a bad object id."""
    write_jpgs(root / "JPEGImages" / "480p" / "square", clip(t))
    ann = root / "Annotations" / "480p" / "square"
    ann.mkdir(parents=True)
    palette = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (256 * 3 - 9)
    for i, m in enumerate(square_masks(t)):
        idx = np.zeros((H, W), np.uint8)
        idx[-8:-2, 4:30] = 2
        idx[m] = 1
        im = Image.fromarray(idx, mode="P")
        im.putpalette(palette)
        im.save(ann / f"{i:05d}.png")
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("square\n")
    edits = root / "edits"
    edits.mkdir()
    write_image(edits / "square_red.png", edited_of(clip(1)[0], square_masks(1)[0]))
    (edits / "edits.csv").write_text(
        "sequence,id,object,instruction,edited,edit_type\n"
        "square,square_red,1,make the square red,square_red.png,change_color\n"
        "square,square_hat,,add a hat on the square,,add_object\n"
        "nosuch,,1,make it blue,square_red.png,\n"
        "square,bad_object,x,make it blue,square_red.png,\n")
    ff = root / "first_frames"
    ff.mkdir()
    write_image(ff / "square_hat.png", edited_of(clip(1)[0], square_masks(1)[0]))
    return root, edits / "edits.csv", ff
