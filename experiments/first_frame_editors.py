"""Task ``first_frame_editors`` (``python run.py experiment=first_frame_editors``): one video method over several
first-frame editors' edits of the same clips, and a table and plot that separate the image edit's own quality from
what the propagation keeps of it (eval/first_frame.py: ``ff_*`` on frame 0, ``later_*`` over frames 1..T-1, beside
the run's other metrics over the whole clip), so a poor result is traced to the image editor or to the video method.

Each editor is one ordinary edit run in ``<output>/<editor>/`` (resumable, its own tables and gallery); the
comparison is ``<output>/first_frame_editors.{csv,md,png}`` and ``text_curves.csv`` (per frame t, the CLIP
similarity of edited frame t with the target text, mean over clips; t = -1 is the editor's image itself).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from videoshop_bench.eval.registry import METRICS, metric_node
from videoshop.files import atomic_write_text

from .components import _instantiate_node, selected_ids
from .errors import ConfigError
from .tables import metric_columns, to_markdown, to_safe_csv

log = logging.getLogger(__name__)
# eval/registry.py entries added to every editor's run: frame 0 alone and frames 1..T-1 (eval/first_frame.py), and the
# edit-propagation curve on the tracked edit region (eval/propagation.py)
ADDED_METRICS = ("first_frame", "later_frames", "propagation")
FRAME0, LATER, CURVE = (tuple(METRICS.get(m).columns) for m in ADDED_METRICS)


def write_demo_folder(dataset, ids: list[str], out: Path, strength: float = 0.5) -> Path:
    """Stand-ins for a user's own edited first frames (``first_frame.editor=folder``) on a dataset with edits: the
    dataset's edited frame blended with the source at ``strength`` inside its edit mask (a half-done recolouring, a
    faint object), written as ``<out>/<sample_id>.png``."""
    from videoshop.video_io import write_image

    out.mkdir(parents=True, exist_ok=True)
    for sid in ids:
        s = dataset.load(sid)
        src, ed = s.source_video[0].astype(np.float32), s.edited_image.astype(np.float32)
        mask = s.edit_mask if s.edit_mask is not None else np.ones(src.shape[:2], bool)
        blend = np.where(mask[..., None], (1 - strength) * src + strength * ed, src)
        write_image(out / f"{sid}.png", np.clip(np.round(blend), 0, 255).astype(np.uint8))
    return out


def with_first_frame_metrics(metrics: dict, tiny: bool) -> dict:
    """The run's metrics plus the frame-0 and propagation metrics (their registry nodes, tiny when the run's CLIP
    metrics are), unless the set already has them (``metrics=all``)."""
    return {**metrics, **{m: metric_node(m, tiny=tiny) for m in ADDED_METRICS if m not in metrics}}


def editor_config(cfg: DictConfig, editor: str, out: Path, folder: Optional[str]) -> DictConfig:
    """The edit run of one editor: ``first_frame.editor=<editor>``, output in ``<out>/<editor>``, the run's metrics
    with the frame-0 and propagation metrics added."""
    sub = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    OmegaConf.set_struct(sub, False)
    tiny = str(OmegaConf.select(cfg, "metrics.clip_tgt.backbone", default="real")) == "tiny" or \
        str(OmegaConf.select(cfg, "model.kind", default="")) == "tiny"
    sub.metrics = with_first_frame_metrics(OmegaConf.to_container(cfg.metrics, resolve=False) or {}, tiny)
    sub.task = "edit"
    sub.first_frame.editor = editor
    if folder:
        sub.first_frame.folder = str(folder)
    sub.paths.output = str(out / editor)
    return sub


def text_curves(runner, records: list[dict]) -> list[np.ndarray]:
    """Per successfully edited sample: [the editor's image, edited frame 0..T-1] cos x100 with the target text."""
    from videoshop_bench.eval.first_frame import LaterFrames

    metric = next((m for m in runner.parts.metrics.values() if isinstance(m, LaterFrames)), None)
    if metric is None:
        return []
    curves = []
    for r in records:
        if r.get("status") != "ok":
            continue
        sample, _ = runner.prepare(r["sample_id"])
        frames = runner.store.edited_frames(r["sample_id"])
        image = metric.frame_text_similarity(sample, sample.edited_image[None])
        curves.append(np.concatenate([image, metric.frame_text_similarity(sample, frames)]))
    return curves


def editor_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per editor: samples, failures, means of the frame-0 metrics, the propagation metrics, the run's other
    metrics, and ``text_kept`` = later_clip_text - ff_clip_text (how much of the text match propagation lost)."""
    ok = results[results["status"] == "ok"]
    rows = []
    metrics = [c for c in metric_columns(results) if pd.api.types.is_numeric_dtype(results[c])]
    others = [c for c in metrics if c not in FRAME0 + LATER + CURVE]
    for editor, group in results.groupby("editor", sort=False):
        good = ok[ok["editor"] == editor]
        row = {"editor": editor, "n": len(good), "n_failed": int((group["status"] != "ok").sum())}
        row.update({c: good[c].mean() for c in FRAME0 + LATER + CURVE + tuple(others) if c in good})
        if "ff_clip_text" in row and "later_clip_text" in row:
            row["text_kept"] = row["later_clip_text"] - row["ff_clip_text"]
        rows.append(row)
    return pd.DataFrame(rows)


def run_first_frame_editors(cfg: DictConfig, label: Optional[str] = None) -> dict[str, pd.DataFrame]:
    from .first_frame_plot import plot_editors
    from .plots import propagation_curves, write_propagation_plot
    from .runner import Runner

    spec = cfg.first_frame_editors
    editors = [str(e) for e in spec.editors]
    if not editors:
        raise ConfigError("first_frame_editors.editors: empty; list the editors to compare, e.g. [none, instruct_pix2pix]")
    out = Path(cfg.paths.output)
    folder = spec.get("folder")
    if "folder" in editors and not folder:
        if not spec.get("demo_folder"):
            raise ConfigError("first_frame_editors.folder: not set, and 'folder' is in first_frame_editors.editors "
                              "(or set first_frame_editors.demo_folder=true on a dataset with edits)")
        dataset = _instantiate_node("dataset.loader", cfg.dataset.loader)
        ids = selected_ids(cfg, dataset)[0]
        folder = write_demo_folder(dataset, ids, out / "demo_folder", float(spec.get("demo_strength", 0.5)))
    frames, curves, all_records = [], {}, []
    for editor in editors:
        runner = Runner(editor_config(cfg, editor, out, folder), label=f"{cfg.method.name} + {editor}")
        df = runner.run()["results"]
        frames.append(df.assign(editor=editor))
        records = [runner.store.load_record(sid) or {} for sid in runner.ids]
        curves[editor] = text_curves(runner, records)
        all_records.append([dict(r, label=editor) for r in records])
    results = pd.concat(frames, ignore_index=True)
    table = editor_table(results)
    atomic_write_text(out / "first_frame_editors.csv", to_safe_csv(table))
    atomic_write_text(out / "first_frame_editors.md", to_markdown(
        table, title=f"{cfg.method.name} over first-frame editors on {cfg.dataset.name}: frame 0 (ff_*) vs frames "
                     f"1..T-1 (later_*)"))
    curve_rows = [{"editor": e, "t": t - 1, "clip_text": float(np.mean([c[t] for c in cs]))}
                  for e, cs in curves.items() if cs for t in range(min(len(c) for c in cs))]
    atomic_write_text(out / "text_curves.csv", to_safe_csv(pd.DataFrame(curve_rows)))
    records = [r for runner_records in all_records for r in runner_records]
    plot_editors(results, pd.DataFrame(curve_rows), out / "first_frame_editors.png",
                 title=f"{cfg.method.name} on {cfg.dataset.name} ({cfg.model.name})",
                 region_curves=propagation_curves(records))
    write_propagation_plot(records, out)  # propagation.png: the region curves per editor with bootstrap bands
    log.info("first-frame editors: %s\n%s", out / "first_frame_editors.md", table.to_string(index=False))
    return {"results": results, "editors": table}
