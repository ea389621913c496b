"""Reading and writing videos, frames, images and masks (av / imageio), and temporal resampling.

Lossless frames (PNG) are what metrics read; mp4 is for viewing. Every read error is a ``VideoReadError`` whose
message names the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from .files import atomic_path


IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif")


class SampleError(ValueError):
    """Input that cannot be used, with a one-line reason naming the file or field at fault (also exported as
    ``datasets.SampleError``: datasets raise it for bad samples, the runner records it and goes on)."""


class VideoReadError(SampleError):
    """A video or image file that cannot be read as what it should be (named in the message)."""


IMAGE_MODES = ("RGB", "L", "P", "RGBA", "LA", "PA", "1")  # 8-bit (or 1-bit) colour / grey, alpha only if opaque
MASK_RULE = ("a mask is an 8-bit grey (or 1-bit, or RGB with equal channels) image holding only 0 (outside the edit "
             "region) and 255 (inside), fully opaque")


def png_bit_depth(path) -> Optional[int]:
    """Bits per channel from a PNG's IHDR chunk (None for other formats); PIL reads 48-bit RGB PNGs as 8-bit RGB."""
    try:
        with open(path, "rb") as f:
            head = f.read(26)
    except OSError:
        return None
    return head[24] if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 26 else None


def _opaque_rgb(im, path) -> "Image.Image":
    """The image as 8-bit RGB; refuses (one line naming the file) what would be coerced: other bit depths, other
    channel layouts (CMYK, 16-bit grey, float), transparency that converting would drop."""
    depth = png_bit_depth(path)
    if depth is not None and depth > 8 or im.mode.startswith(("I", "F")):
        raise VideoReadError(f"{path}: {depth or im.mode} bits per channel ({im.mode}); store 8-bit images")
    if im.mode not in IMAGE_MODES:
        raise VideoReadError(f"{path}: colour mode {im.mode} ({len(im.getbands())} channels); store RGB or grey")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        alpha = np.asarray(im.convert("RGBA"))[..., 3]
        if (alpha < 255).any():
            raise VideoReadError(f"{path}: has transparency ({int((alpha < 255).sum())} pixels with alpha < 255); "
                                 f"flatten it onto a background first")
    return im.convert("RGB")


def read_image(path, mode: str = "RGB") -> np.ndarray:
    """(H, W, 3) uint8 RGB, or (H, W) bool for ``mode='mask'`` (``MASK_RULE``: 0 outside, 255 inside).

    Validated, never coerced: a 16-bit or float image, CMYK, transparency, or a mask with any value other than
    0 and 255 (0/1 masks, antialiased or JPEG masks) raises ``VideoReadError`` naming the file.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            rgb = np.array(_opaque_rgb(im, path))
    except VideoReadError:
        raise
    except Exception as e:  # noqa: BLE001
        raise VideoReadError(f"cannot read image {path}: {type(e).__name__}: {e}".splitlines()[0]) from e
    if mode != "mask":
        return rgb
    if not ((rgb[..., 0] == rgb[..., 1]) & (rgb[..., 1] == rgb[..., 2])).all():
        raise VideoReadError(f"{path}: mask has colour (channels differ); {MASK_RULE}")
    values = np.unique(rgb[..., 0])
    if not set(values.tolist()) <= {0, 255}:
        shown = ", ".join(map(str, values[:6].tolist())) + (", ..." if len(values) > 6 else "")
        raise VideoReadError(f"{path}: mask values {{{shown}}}; {MASK_RULE}")
    return rgb[..., 0] == 255


def write_image(path, array: np.ndarray) -> None:
    from PIL import Image

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    a = array.astype(np.uint8) * 255 if array.dtype == bool else array
    Image.fromarray(a).save(path)


def read_video(path) -> tuple[np.ndarray, float]:
    """(T, H, W, 3) uint8 and fps from a video file, a folder of image frames (sorted), or a .npy/.npz array."""
    path = Path(path)
    if not path.exists():
        raise VideoReadError(f"video not found: {path}")
    try:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTS)
            if not files:
                raise VideoReadError(f"no image frames in folder {path}")
            return np.stack([read_image(f) for f in files]), 7.0
        if path.suffix in (".npy", ".npz"):
            arr = np.load(path)
            arr = arr[arr.files[0]] if hasattr(arr, "files") else arr
            return np.asarray(arr, dtype=np.uint8), 7.0
        return _read_with_av(path)
    except VideoReadError:
        raise
    except Exception as e:  # noqa: BLE001
        raise VideoReadError(f"cannot read video {path}: {type(e).__name__}: {e}".splitlines()[0]) from e


def _read_with_av(path: Path) -> tuple[np.ndarray, float]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate) if stream.average_rate else 7.0
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    if not frames:
        raise VideoReadError(f"video {path} has no decodable frames")
    return np.stack(frames), fps


def write_frames(folder, frames: np.ndarray) -> None:
    """Lossless PNG frames 0000.png, 0001.png, ... (what metrics read back)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        write_image(folder / f"{i:04d}.png", f)


def write_video(path, frames: np.ndarray, fps: float = 7.0, crf: int = 18) -> None:
    """H.264 mp4 for viewing (sizes padded to even numbers as yuv420p requires)."""
    import av

    frames = np.asarray(frames)
    h, w = frames.shape[1] + frames.shape[1] % 2, frames.shape[2] + frames.shape[2] % 2
    if (h, w) != frames.shape[1:3]:
        frames = np.pad(frames, ((0, 0), (0, h - frames.shape[1]), (0, w - frames.shape[2]), (0, 0)), mode="edge")
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=int(round(fps)))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf)}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def resample_frames(video: np.ndarray, num_frames: int) -> np.ndarray:
    """Uniformly resample a (T, ...) array to ``num_frames`` frames (nearest index; repeats when T < num_frames)."""
    t = video.shape[0]
    idx = np.round(np.linspace(0, t - 1, num_frames)).astype(int)
    return video[idx]


def resize_video(video: np.ndarray, height: int, width: int, mask: bool = False) -> np.ndarray:
    """Resize (T, H, W, 3) uint8 (or (T, H, W) bool masks) with antialiased bilinear (nearest for masks)."""
    import torch
    import torch.nn.functional as nnf

    if video.shape[1:3] == (height, width):
        return video
    x = torch.from_numpy(np.ascontiguousarray(video))
    if mask:
        x = nnf.interpolate(x[:, None].float(), size=(height, width), mode="nearest")[:, 0] > 0.5
        return x.numpy()
    x = x.permute(0, 3, 1, 2).float()
    x = nnf.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def maybe(path: Optional[str]) -> Optional[Path]:
    return Path(path) if path else None
