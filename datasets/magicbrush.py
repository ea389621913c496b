"""MagicBrush-to-video (paper Sec. 4, "Datasets"): each MagicBrush source image is animated into a 14-frame video
with Stable Video Diffusion; the MagicBrush target image is the edited first frame and its mask the edit region.

Input: the ``osunlp/MagicBrush`` parquet files (hub id or a local directory/file). Columns ``img_id``,
``turn_index``, ``source_img``, ``mask_img``, ``instruction``, ``target_img``; image columns are structs
``{bytes, path}``. Splits ``train`` (8,807 turns) and ``dev`` (528). Only pyarrow is used (never HF ``datasets``).

Mask polarity. MagicBrush edits were made with DALL-E 2 inpainting, whose masks mark the region to repaint as
*transparent* (alpha = 0); loaders of MagicBrush-derived sets (ImagenHub) read the edit region as
``1 - alpha``. ``decode_mask(..., polarity='auto')`` therefore uses, in order: transparency when the mask has an
alpha channel with transparent pixels (edit = alpha < 128); white-on-black when the mask is (near) binary
(edit = white); otherwise, for a mask drawn over a copy of the source image, the pixels that differ from the
source. The rule used and the edited fraction are recorded in each sample's meta (``mask_rule``,
``mask_fraction``); set ``polarity`` to ``alpha``/``white``/``black``/``diff`` to force one. The stored
``mask.png`` is always white = edited region.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence, Union

import numpy as np

from .base import select_ids
from .edit_types import infer_edit_type_with_rule
from .fit import fit_image
from .folder_spec import is_built
from .folder_write import build_samples, report_path, shard_ids
from .schema import Sample, SampleError
from videoshop.method import sample_seed

log = logging.getLogger(__name__)

HUB_ID = "osunlp/MagicBrush"
COLUMNS = ("img_id", "turn_index", "source_img", "mask_img", "instruction", "target_img")
INDEX_COLUMNS = ("img_id", "turn_index", "instruction")
IMAGE_COLUMNS = ("source_img", "mask_img", "target_img")
MASK_POLARITIES = ("auto", "alpha", "white", "black", "diff")


# ----------------------------------------------------------------------------- locating the parquet files
def _split_files(files: Sequence[Path], split: str) -> list[Path]:
    """Parquet files of ``split``: hub names ``data/<split>-00000-of-00001-<hash>.parquet`` or a ``<split>/``
    folder (the hub's parquet-converter layout ``default/<split>/0000.parquet``)."""
    return sorted(f for f in files if f.name.startswith(f"{split}-") or f.name.startswith(f"{split}.")
                  or f.parent.name == split)


def resolve_parquet_files(source: Union[str, Path], split: str = "dev", cache_dir: Optional[str] = None,
                          key: str = "dataset.build.source") -> list[Path]:
    """The parquet files of ``split`` from a local file, a local directory, or a hub dataset id.

    Fails with one line naming ``key`` when the source is missing or the hub is not reachable.
    """
    src = str(source)
    path = Path(src).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        found = _split_files(sorted(path.rglob("*.parquet")), split)
        if not found:
            raise FileNotFoundError(f"{key}={src}: no parquet files of split {split!r} (expected names like "
                                    f"{split}-00000-of-00001.parquet or a {split}/ folder)")
        return found
    if src.count("/") != 1 or src.startswith((".", "/", "~")):
        raise FileNotFoundError(f"{key}={src}: no such file or directory (and not a hub id like {HUB_ID})")
    try:
        from huggingface_hub import snapshot_download

        local = snapshot_download(repo_id=src, repo_type="dataset", cache_dir=cache_dir,
                                  allow_patterns=[f"data/{split}-*.parquet", f"*/{split}/*.parquet"])
    except Exception as e:  # noqa: BLE001 - any hub failure becomes one actionable line
        raise RuntimeError(
            f"{key}={src}: cannot get the {split} parquet files from the Hugging Face hub ({type(e).__name__}); "
            f"download them where the hub is reachable (huggingface-cli download {src} --repo-type dataset "
            f"--include 'data/{split}-*') and set {key}=/path/to/that/folder") from None
    found = _split_files(sorted(Path(local).rglob("*.parquet")), split)
    if not found:
        raise FileNotFoundError(f"{key}={src}: the hub snapshot has no parquet files of split {split!r}")
    return found


# ----------------------------------------------------------------------------- reading rows
def sample_id_for(img_id: Any, turn_index: Any) -> str:
    return f"{img_id}_t{int(turn_index)}"


def select_turns(index, turns: Union[str, int, Iterable[int], None] = "first"):
    """Rows of ``index`` (a DataFrame with img_id, turn_index) for ``turns``: 'first' (default: the first turn
    of each image, as in a single-edit benchmark), 'last', 'all', an int or a list of turn indices."""
    if turns is None or turns == "all":
        return index
    if turns in ("first", "last"):
        g = index.groupby("img_id", sort=False)["turn_index"]
        best = g.transform("min" if turns == "first" else "max")
        return index[index["turn_index"] == best]
    if isinstance(turns, str):
        try:
            wanted = {int(t) for t in turns.replace(",", " ").split()}
        except ValueError:
            raise ValueError(f"dataset.build.turns={turns!r}: use first, last, all or turn numbers") from None
    elif isinstance(turns, int):
        wanted = {turns}
    else:
        wanted = {int(t) for t in turns}
    return index[index["turn_index"].isin(wanted)]


class MagicBrushParquet:
    """Random access to MagicBrush rows across parquet files, reading images one row group at a time."""

    def __init__(self, files: Sequence[Union[str, Path]]):
        import pandas as pd
        import pyarrow.parquet as pq

        self.files = [Path(f) for f in files]
        frames = []
        for fi, f in enumerate(self.files):
            try:
                pf = pq.ParquetFile(f)
            except Exception as e:  # noqa: BLE001
                raise SampleError(f"cannot read parquet file {f}: {type(e).__name__}: {e}".splitlines()[0]) from e
            missing = [c for c in COLUMNS if c not in pf.schema_arrow.names]
            if missing:
                raise SampleError(f"{f}: not a MagicBrush parquet file, missing column(s) {missing}")
            df = pf.read(columns=list(INDEX_COLUMNS)).to_pandas()
            df["file"], df["row"] = fi, np.arange(len(df))
            frames.append(df)
        self.index = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
            columns=[*INDEX_COLUMNS, "file", "row"])
        self.index["img_id"] = self.index["img_id"].astype(str)
        self.index["turn_index"] = self.index["turn_index"].astype(int)
        self.index["sample_id"] = self.index["img_id"] + "_t" + self.index["turn_index"].astype(str)
        dup = self.index["sample_id"].duplicated()
        if dup.any():
            log.warning("MagicBrush: %d duplicate (img_id, turn_index) rows; keeping the first", int(dup.sum()))
            self.index = self.index[~dup]
        self._cache: tuple[tuple[int, int], Any] = ((-1, -1), None)
        self._files_open: dict[int, Any] = {}

    def sample_ids(self, turns="first") -> list[str]:
        return list(select_turns(self.index, turns)["sample_id"])

    def row(self, sample_id: str) -> dict:
        """One row with its image cells as PIL images."""
        hit = self.index[self.index["sample_id"] == sample_id]
        if hit.empty:
            raise KeyError(f"MagicBrush: no row {sample_id}")
        rec = hit.iloc[0]
        fi, r = int(rec["file"]), int(rec["row"])
        cells = self._image_cells(fi, r)
        out = {"img_id": rec["img_id"], "turn_index": int(rec["turn_index"]), "instruction": str(rec["instruction"]),
               "file": str(self.files[fi]), "row": r}
        for col in IMAGE_COLUMNS:
            out[col] = decode_image_cell(cells[col], self.files[fi], col)
        return out

    def _image_cells(self, fi: int, r: int) -> dict:
        """The image cells of row ``r`` of file ``fi``; the row group's Arrow table stays cached (sequential
        builds read neighbouring rows), only the one row becomes Python objects."""
        import pyarrow.parquet as pq

        pf = self._files_open.get(fi)
        if pf is None:
            pf = self._files_open[fi] = pq.ParquetFile(self.files[fi])
        start = 0
        for g in range(pf.num_row_groups):
            n = pf.metadata.row_group(g).num_rows
            if r < start + n:
                if self._cache[0] != (fi, g):
                    self._cache = ((fi, g), pf.read_row_group(g, columns=list(IMAGE_COLUMNS)))
                return self._cache[1].slice(r - start, 1).to_pylist()[0]
            start += n
        raise KeyError(f"{self.files[fi]}: row {r} out of range")


def decode_image_cell(cell: Any, parquet_file: Path, column: str):
    """A PIL image from an HF image cell ({bytes, path}), raw bytes, or a path relative to the parquet file."""
    from PIL import Image

    try:
        if isinstance(cell, dict):
            data, path = cell.get("bytes"), cell.get("path")
        elif isinstance(cell, (bytes, bytearray)):
            data, path = cell, None
        else:
            data, path = None, cell
        if data:
            im = Image.open(io.BytesIO(data))
        elif path:
            p = Path(path) if Path(path).is_absolute() else parquet_file.parent / path
            im = Image.open(p)
        else:
            raise ValueError("empty cell")
        im.load()
        return im
    except Exception as e:  # noqa: BLE001
        raise SampleError(f"{parquet_file}: cannot decode {column}: {type(e).__name__}: {e}".splitlines()[0]) from e


# ----------------------------------------------------------------------------- masks
def decode_mask(mask_img, source: Optional[np.ndarray] = None, polarity: str = "auto") -> tuple[np.ndarray, str]:
    """(H, W) bool edit region (True = edited) of a MagicBrush ``mask_img`` and the rule used (module docstring)."""
    if polarity not in MASK_POLARITIES:
        raise ValueError(f"mask polarity {polarity!r}: expected one of {MASK_POLARITIES}")
    rgba = np.asarray(mask_img.convert("RGBA"))
    alpha = rgba[..., 3]
    has_alpha = mask_img.mode in ("RGBA", "LA", "PA") or "transparency" in mask_img.info
    if polarity == "alpha" or (polarity == "auto" and has_alpha and alpha.min() < 128 <= alpha.max()):
        return alpha < 128, "alpha_transparent"
    gray = np.asarray(mask_img.convert("L"))
    if polarity == "white":
        return gray > 127, "white"
    if polarity == "black":
        return gray <= 127, "black"
    near_binary = float(np.mean((gray < 32) | (gray > 223))) > 0.98
    if polarity == "diff" or (polarity == "auto" and not near_binary and source is not None
                              and source.shape[:2] == gray.shape):
        if source is None or source.shape[:2] != gray.shape:
            raise SampleError(f"mask polarity 'diff' needs a source image of the mask's size {gray.shape}")
        diff = np.abs(rgba[..., :3].astype(np.int16) - source.astype(np.int16)).max(-1)
        return diff > 40, "differs_from_source"
    return gray > 127, "binary_white"


# ----------------------------------------------------------------------------- one sample
def make_magicbrush_sample(row: dict, pipe, *, split: str, num_frames: int, height: int, width: int,
                           fit: str = "resize", mask_polarity: str = "auto", seed: int = 0,
                           svd_options: Optional[dict] = None, model_info: Optional[dict] = None,
                           replace_first_frame: bool = False) -> Sample:
    """Animate ``row['source_img']`` with SVD into the source video; ``target_img`` is the edited first frame."""
    import torch

    sid = sample_id_for(row["img_id"], row["turn_index"])
    source = np.asarray(row["source_img"].convert("RGB"))
    target = np.asarray(row["target_img"].convert("RGB"))
    mask, mask_rule = decode_mask(row["mask_img"], source, mask_polarity)
    src_fit = fit_image(source, height, width, fit)
    seed_i = sample_seed(seed, sid)
    opts = dict(svd_options or {})
    out = pipe.generate(src_fit, int(num_frames), height=int(height), width=int(width),
                        generator=torch.Generator().manual_seed(seed_i), **opts)
    if not getattr(out, "finite", True):
        raise RuntimeError("SVD generation produced non-finite latents")
    frames = np.asarray(out.frames)
    if frames.shape[1:3] != (height, width):
        from videoshop.video_io import resize_video

        frames = resize_video(frames, int(height), int(width))
    if replace_first_frame:
        frames = frames.copy()
        frames[0] = src_fit
    fitted_mask = fit_image(mask, height, width, fit, mask=True)
    edit_type, rule = infer_edit_type_with_rule(row["instruction"])
    generation = {"model": model_info or {}, "height": int(height), "width": int(width),
                  "num_frames": int(num_frames), "seed": seed_i, "base_seed": int(seed), "fit": fit,
                  "replace_first_frame": bool(replace_first_frame), **opts}
    meta = {"dataset": "magicbrush", "split": split, "img_id": row["img_id"], "turn_index": int(row["turn_index"]),
            "parquet_file": Path(row.get("file", "")).name, "source_image_size": list(source.shape[:2]),
            "mask_rule": mask_rule, "mask_fraction": round(float(mask.mean()), 4),
            "mask_fraction_fitted": round(float(fitted_mask.mean()), 4), "edit_type_rule": rule,
            "generation": generation}
    return Sample(sample_id=sid, source_video=frames, edited_image=fit_image(target, height, width, fit),
                  edit_mask=fitted_mask, instruction=row["instruction"], edit_type=edit_type,
                  fps=float(opts.get("fps", 7)), meta=meta)


# ----------------------------------------------------------------------------- the build
def build_magicbrush(source: Union[str, Path], out_root: Union[str, Path], pipeline: Union[Any, Callable[[], Any]], *,
                     split: str = "dev", turns="first", limit: Optional[int] = None,
                     ids: Optional[Iterable[str]] = None, shard_index: int = 0, num_shards: int = 1,
                     num_frames: int = 14, height: int = 576, width: int = 1024, fit: str = "resize",
                     num_inference_steps: int = 25, noise_aug_strength: float = 0.02,
                     min_guidance_scale: float = 1.0, max_guidance_scale: float = 3.0, fps: int = 7,
                     motion_bucket_id: int = 127, decode_chunk_size: Optional[int] = None, seed: int = 0,
                     mask_polarity: str = "auto", replace_first_frame: bool = False, overwrite: bool = False,
                     model_info: Optional[dict] = None, cache_dir: Optional[str] = None) -> dict:
    """Build MagicBrush-to-video into ``out_root`` (common folder format); returns the build report.

    ``pipeline`` is a VideoshopPipeline or a zero-argument factory, called once and only if something is left to
    build; its errors (e.g. missing weights) stop the build, whereas a failing sample is recorded and skipped.
    Selection: ``turns`` of ``split``, then ``ids``, then the first ``limit``, then shard ``shard_index`` of
    ``num_shards``. Each sample gets its own seed from (``seed``, sample id), so shards and reruns agree.
    """
    files = resolve_parquet_files(source, split, cache_dir=cache_dir)
    table = MagicBrushParquet(files)
    selected = shard_ids(select_ids(table.sample_ids(turns), limit, ids), shard_index, num_shards)
    log.info("MagicBrush %s: %d turns in %d file(s), %d selected (turns=%s)", split, len(table.index), len(files),
             len(selected), turns)
    svd_options = {"num_inference_steps": int(num_inference_steps), "noise_aug_strength": float(noise_aug_strength),
                   "min_guidance_scale": float(min_guidance_scale), "max_guidance_scale": float(max_guidance_scale),
                   "fps": int(fps), "motion_bucket_id": int(motion_bucket_id)}
    if decode_chunk_size:
        svd_options["decode_chunk_size"] = int(decode_chunk_size)
    pipe = None
    if any(overwrite or not is_built(out_root, sid) for sid in selected):
        # load the model once, before the loop: a model that cannot load stops the build with its own error
        pipe = pipeline() if callable(pipeline) and not hasattr(pipeline, "generate") else pipeline

    def make(sid: str) -> Sample:
        return make_magicbrush_sample(table.row(sid), pipe, split=split, num_frames=num_frames, height=height,
                                      width=width, fit=fit, mask_polarity=mask_polarity, seed=seed,
                                      svd_options=svd_options, model_info=model_info,
                                      replace_first_frame=replace_first_frame)

    settings = {"dataset": "magicbrush", "source": str(source), "split": split, "turns": turns,
                "files": [str(f) for f in files], "shard_index": shard_index, "num_shards": num_shards,
                "num_frames": num_frames, "height": height, "width": width, "fit": fit, "seed": seed,
                "mask_polarity": mask_polarity, "model": model_info or {}, **svd_options}
    return build_samples(out_root, selected, make, settings=settings, overwrite=overwrite,
                         report_file=report_path(out_root, shard_index, num_shards), desc=f"magicbrush/{split}")
