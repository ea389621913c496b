"""Reading and writing videos, frames, images and masks (av / imageio), and temporal resampling.

Lossless frames (PNG) are what metrics read; mp4 is for viewing. Every read error is a ``VideoReadError`` whose
message names the file.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Optional

import numpy as np

from .files import atomic_path


IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif")


class SampleError(ValueError):
    """Input that cannot be used, with a one-line reason naming the file or field at fault (also exported as
    ``videoshop_bench.datasets.SampleError``: datasets raise it for bad samples, the runner records it and goes on)."""


class VideoReadError(SampleError):
    """A video or image file that cannot be read as what it should be (named in the message)."""


@dataclass(frozen=True)
class InputLimits:
    """The largest video a reader decodes (conf ``limits.*``), checked from headers before any pixel is decoded:
    PNG/JPEG sizes from the image header (PIL reads it without decoding), frame counts from the folder listing or
    the container's stream header, and the frames actually decoded (a container may not state, or misstate, its
    length). ``None`` = no limit on that quantity."""

    max_side: Optional[int] = 4096
    max_frames: Optional[int] = 1000
    max_video_megapixels: Optional[float] = 200.0  # T x H x W / 1e6

    @classmethod
    def from_mapping(cls, m) -> "InputLimits":
        m = m or {}
        return cls(m.get("max_side"), m.get("max_frames"), m.get("max_video_megapixels"))

    def check_size(self, what, h: int, w: int) -> None:
        if self.max_side and max(h, w) > int(self.max_side):
            raise VideoReadError(f"{what}: {w}x{h} px, larger than limits.max_side={self.max_side} (not decoded)")

    def check_video(self, what, t: int, h: int, w: int) -> None:
        """Refuse a ``t`` x ``h`` x ``w`` video beyond the limits (one line naming ``what``)."""
        self.check_size(what, h, w)
        if self.max_frames and t > int(self.max_frames):
            raise VideoReadError(f"{what}: {t} frames, more than limits.max_frames={self.max_frames} (not decoded)")
        if self.max_video_megapixels and t * h * w / 1e6 > float(self.max_video_megapixels):
            raise VideoReadError(f"{what}: {t}x{w}x{h} = {t * h * w / 1e6:.0f} megapixels, more than "
                                 f"limits.max_video_megapixels={self.max_video_megapixels} (not decoded)")


NO_LIMITS = InputLimits(None, None, None)


def image_size(path) -> tuple[int, int]:
    """(height, width) from an image file's header, without decoding its pixels."""
    from PIL import Image

    try:
        with warnings.catch_warnings():  # the size is checked here, against limits.max_side
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
    except Exception as e:  # noqa: BLE001
        raise VideoReadError(f"cannot read image {path}: {type(e).__name__}: {e}".splitlines()[0]) from e
    return int(h), int(w)


def fps_fraction(fps: float) -> Fraction:
    """``fps`` as an exact rational for a container's time base (29.97 -> 30000/1001, 0.5 -> 1/2), never rounded
    to an integer (which made fps < 1 a 24 fps file)."""
    return Fraction(fps).limit_denominator(1001)


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


def read_image(path, mode: str = "RGB", limits: InputLimits = InputLimits()) -> np.ndarray:
    """(H, W, 3) uint8 RGB, or (H, W) bool for ``mode='mask'`` (``MASK_RULE``: 0 outside, 255 inside).

    Validated, never coerced: a 16-bit or float image, CMYK, transparency, or a mask with any value other than
    0 and 255 (0/1 masks, antialiased or JPEG masks) raises ``VideoReadError`` naming the file. An image larger
    than ``limits.max_side`` is refused from its header, before its pixels are decoded.
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():  # the size is checked below, from the header, against limits.max_side
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            limits.check_size(path, im.size[1], im.size[0])
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


def frame_files(folder, inside=None) -> list[Path]:
    """The image frames of ``folder`` (sorted); with ``inside``, a frame that is a symlink resolving outside that
    folder is refused (one line naming it): nothing is read from outside a sample."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if inside is not None:
        root = Path(inside).resolve()
        for f in files:
            if not f.resolve().is_relative_to(root):
                raise VideoReadError(f"{f}: links to {f.resolve()}, outside the sample folder {inside}")
    return files


def read_frames(files: list[Path], what, limits: InputLimits = InputLimits(), mode: str = "RGB") -> np.ndarray:
    """Frames from image files, checked against ``limits`` from the listing and the first header before any pixel
    is decoded (then each header as it is read); frames of different sizes are refused naming ``what``."""
    if not files:
        raise VideoReadError(f"no image frames in {what}")
    h, w = image_size(files[0])
    limits.check_video(what, len(files), h, w)
    frames = []
    for f in files:
        if image_size(f) != (h, w):
            raise VideoReadError(f"frames of different sizes in {what}: {f.name} is {image_size(f)}, "
                                 f"{files[0].name} is {(h, w)}")
        frames.append(read_image(f, mode=mode, limits=limits))
    return np.stack(frames)


def read_video(path, limits: InputLimits = InputLimits(), inside=None) -> tuple[np.ndarray, float]:
    """(T, H, W, 3) uint8 and fps from a video file, a folder of image frames (sorted), or a .npy/.npz array.

    Sizes are checked against ``limits`` before decoding (container / image headers, array headers) and while
    decoding (frames counted as they come); ``inside``: frames of a folder may not link outside it.
    """
    path = Path(path)
    if not path.exists():
        raise VideoReadError(f"video not found: {path}")
    try:
        if path.is_dir():
            return read_frames(frame_files(path, inside), path, limits), 7.0
        if path.suffix in (".npy", ".npz"):
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            arr = arr[arr.files[0]] if hasattr(arr, "files") else arr
            if arr.ndim == 4:
                limits.check_video(path, *arr.shape[:3])
            return np.asarray(arr, dtype=np.uint8), 7.0
        return _read_with_av(path, limits)
    except VideoReadError:
        raise
    except Exception as e:  # noqa: BLE001
        raise VideoReadError(f"cannot read video {path}: {type(e).__name__}: {e}".splitlines()[0]) from e


def open_video_stream(container, path, limits: InputLimits):
    """The first video stream of an open PyAV container, its header checked against ``limits`` (frame size, and
    the frame count where the container states one) before any frame is decoded."""
    if not container.streams.video:
        raise VideoReadError(f"{path}: no video stream (0 frames: an empty or audio-only file)")
    stream = container.streams.video[0]
    cc = stream.codec_context
    if not cc.width or not cc.height:
        raise VideoReadError(f"{path}: the video stream states no frame size (empty or damaged file)")
    limits.check_video(path, int(stream.frames or 0), cc.height, cc.width)
    return stream


def _read_with_av(path: Path, limits: InputLimits = InputLimits()) -> tuple[np.ndarray, float]:
    import av

    with av.open(str(path)) as container:
        stream = open_video_stream(container, path, limits)
        fps = float(stream.average_rate) if stream.average_rate else 7.0
        frames = []
        for f in container.decode(stream):  # a container may misstate its length: count while decoding
            limits.check_video(path, len(frames) + 1, f.height, f.width)
            frames.append(f.to_ndarray(format="rgb24"))
    if not frames:
        raise VideoReadError(f"{path}: 0 decodable frames")
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
        stream = container.add_stream("libx264", rate=fps_fraction(fps))
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
