"""Experiment ``first_frame_editors`` (``python run.py experiment=first_frame_editors``): one video method over several
first-frame editors' edits of the same clips, and a table and plot that separate the image edit's own quality from
what the propagation keeps of it, so a poor result is traced to the image editor or to the video method.

A Hydra multirun over ``first_frame.editor`` (conf/experiment/first_frame_editors.yaml): each editor is one job,
task ``first_frame_editors`` (``run_first_frame_editors``), an ordinary edit run in its own folder (resumable, its
own tables and gallery; with a SLURM launcher the editors run in parallel) whose metrics are the run's plus

* frame 0 alone (eval/first_frame.py ``ff_*``: the editor's image against the text and the source frame),
* the paper's ten metrics again over frames 1..T-1 (``clip_tgt[1:]`` ... ``fvd[1:]``: the same metric objects on a
  frame window, config ``frame_windows``, eval/windows.py), the text match over frames 1..T-1 and its per-frame
  curve (``later_frames``), and the edit-propagation curve (eval/propagation.py).

At the end of the multirun (experiments/callbacks.py, or ``python -m videoshop_bench.experiments.merge --sweep DIR``),
``combine_first_frame_editors`` writes ``<sweep dir>/first_frame_editors.{csv,md,png}``, ``text_curves.csv`` and
``propagation.png`` from the jobs' records (no model is loaded).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from videoshop_bench.eval.registry import METRICS, display_names, metric_node
from videoshop_bench.eval.windows import display_name, split_window
from videoshop.files import atomic_write_text

from .components import _instantiate_node, selected_ids
from .errors import ConfigError
from .tables import SKIPPED, _count_reasons, metric_columns, records_to_frame, to_markdown, to_safe_csv

log = logging.getLogger(__name__)
# eval/registry.py entries added to every editor's run: frame 0 alone and the text match over frames 1..T-1
# (eval/first_frame.py), and the edit-propagation curve on the tracked edit region (eval/propagation.py)
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


def editor_config(cfg: DictConfig, folder: Optional[str]) -> DictConfig:
    """The edit run of this job's editor (``first_frame.editor``): the run's metrics with the frame-0 and
    propagation metrics added, ``first_frame.folder`` set where the job made the demo folder."""
    sub = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    OmegaConf.set_struct(sub, False)
    tiny = str(OmegaConf.select(cfg, "metrics.clip_tgt.backbone", default="real")) == "tiny" or \
        str(OmegaConf.select(cfg, "model.kind", default="")) == "tiny"
    sub.metrics = with_first_frame_metrics(OmegaConf.to_container(cfg.metrics, resolve=False) or {}, tiny)
    sub.task = "edit"
    if folder:
        sub.first_frame.folder = str(folder)
    return sub


def run_first_frame_editors(cfg: DictConfig, label: Optional[str] = None) -> dict[str, pd.DataFrame]:
    """One job of the experiment: the method over the clips with ``first_frame.editor``'s first frames."""
    from .runner import Runner

    editor = str(cfg.first_frame.editor)
    spec = cfg.get("first_frame_editors") or {}
    out = Path(cfg.paths.output)
    folder = cfg.first_frame.get("folder") or spec.get("folder")
    if editor == "folder" and not folder:
        if not spec.get("demo_folder"):
            raise ConfigError("first_frame.folder: not set for first_frame.editor=folder (or set "
                              "first_frame_editors.demo_folder=true on a dataset with edits)")
        dataset = _instantiate_node("dataset.loader", cfg.dataset.loader)
        folder = write_demo_folder(dataset, selected_ids(cfg, dataset)[0], out / "demo_folder",
                                   float(spec.get("demo_strength", 0.5)))
    return Runner(editor_config(cfg, folder), label=label or f"{cfg.method.name} + {editor}").run()


# ------------------------------------------------------------------------------------------ the combination
def job_results(job_dirs: list[Path]) -> tuple[pd.DataFrame, list[dict], pd.DataFrame]:
    """(per-sample results with an ``editor`` column, the records with ``label`` = editor, the set metrics (FVD,
    FVD over frames 1..T-1) per editor) of the jobs' run folders."""
    from .merge import set_metric_frame
    from .store import ResultStore

    frames, records, sets = [], [], []
    for d in dict.fromkeys(Path(p) for p in job_dirs):
        store = ResultStore(d)
        recs = list(store.records())
        if not recs:
            log.warning("first_frame_editors: %s holds no sample records (job failed?)", d)
            continue
        editors = [(r.get("first_frame") or {}).get("editor", "none") for r in recs]
        frames.append(records_to_frame(recs).assign(editor=editors))
        records += [dict(r, label=e) for r, e in zip(recs, editors)]
        set_df, _ = set_metric_frame([dict(r, label=e) for r, e in zip(recs, editors)], store.load_features)
        sets.append(set_df)
    if not frames:
        raise FileNotFoundError(f"first_frame_editors: no sample records in {[str(d) for d in job_dirs]}")
    non_empty = [s for s in sets if not s.empty]
    return pd.concat(frames, ignore_index=True), records, pd.concat(non_empty) if non_empty else pd.DataFrame()


def editor_table(results: pd.DataFrame, set_metrics: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """One row per editor: samples, failures, then the means of frame 0's metrics (``ff_*``), of frames 1..T-1
    (the ten metrics' ``[1:]`` columns, ``later_clip_text``, the curve summaries), of the whole clip, and
    ``text_kept`` = later_clip_text - ff_clip_text (how much of the text match the propagation lost)."""
    ok = results[results["status"] == "ok"]
    cols = [c for c in metric_columns(results) if pd.api.types.is_numeric_dtype(results[c])]
    rows = []
    for editor, group in results.groupby("editor", sort=False):
        good = ok[ok["editor"] == editor]
        row = {"editor": editor, "n": len(good), "n_failed": int((group["status"] != "ok").sum())}
        row.update({c: good[c].mean() for c in cols})
        if "ff_clip_text" in row and "later_clip_text" in row:
            row["text_kept"] = row["later_clip_text"] - row["ff_clip_text"]
        if set_metrics is not None and editor in set_metrics.index:
            row.update(set_metrics.loc[editor].to_dict())
        if SKIPPED in group:  # "psnr_gt: 2 (first_frame.editor=... made frame 0, ...)": why a mean is missing
            row[SKIPPED] = _count_reasons(group[SKIPPED].fillna(""))
        rows.append(row)
    return order_columns(pd.DataFrame(rows))


def column_groups(columns) -> dict[str, list[str]]:
    """The table's columns by what they measure: frame 0 (the editor), frames 1..T-1 (the propagation), the whole
    clip; warnings last."""
    cols = [c for c in columns if c not in ("editor", "n", "n_failed")]
    warnings = [c for c in cols if c.endswith("_warning")] + ([SKIPPED] if SKIPPED in cols else [])
    ordered = metric_columns(pd.DataFrame(columns=[c for c in cols if c not in warnings]))  # registry order
    windowed = [c for c in ordered if split_window(c)[1]]
    later = windowed + [c for c in LATER + ("text_kept",) + CURVE if c in cols]
    frame0 = [c for c in FRAME0 if c in cols]
    whole = [c for c in ordered if c not in frame0 + later]
    return {"frame 0: the image editor's edit": frame0, "frames 1..T-1: what the propagation kept": later,
            "the whole clip": whole, "warnings": warnings}


def order_columns(table: pd.DataFrame) -> pd.DataFrame:
    groups = column_groups(table.columns)
    return table[["editor", "n", "n_failed"] + [c for g in groups.values() for c in g]]


def editor_markdown(table: pd.DataFrame, title: str) -> str:
    """The table as three Markdown tables (frame 0, frames 1..T-1, the whole clip), display names as headers."""
    names = display_names() | {"text_kept": "text kept (1..T-1 - frame 0)"}
    parts = [f"# {title}", ""]
    for group, cols in column_groups(table.columns).items():
        if not cols or group == "warnings":
            continue
        shown = table[["editor", "n", "n_failed"] + cols].rename(columns={c: display_name(c, names) for c in cols})
        parts.append(to_markdown(shown, title=group))
    notes = [c for c in column_groups(table.columns)["warnings"] if table[c].astype(bool).any()]
    if notes:
        parts += ["## skipped values and warnings", ""]
    for c in notes:
        texts = [(e, w) for e, w in zip(table["editor"], table[c]) if isinstance(w, str) and w]
        if len({w for _, w in texts}) == 1 and len(texts) == len(table):  # the same for every editor: once
            parts.append(f"- {c} (every editor): {texts[0][1]}")
        else:
            parts += [f"- {c}, {e}: {_by_reason(w) if c == SKIPPED else w}" for e, w in texts]
    return "\n".join(parts) + "\n"


def _by_reason(skipped: str) -> str:
    """'a: 2 (why); b: 2 (why)' -> 'a, b: 2 (why)': one entry per count and reason."""
    groups: dict[str, list[str]] = {}
    for part in filter(None, skipped.split("; ")):
        name, _, rest = part.partition(": ")
        groups.setdefault(rest, []).append(name)
    return "; ".join(f"{', '.join(names)}: {rest}" for rest, names in groups.items())


def text_curve_rows(records: list[dict], results: pd.DataFrame) -> pd.DataFrame:
    """Per editor and frame t, the mean over clips of CLIP(frame t, text) (the ``clip_text`` curve of
    ``later_frames``); t = -1 is the editor's image itself (``ff_clip_text``)."""
    ok = results[results["status"] == "ok"].set_index(["editor", "sample_id"])
    per: dict[str, list[np.ndarray]] = {}
    for r in records:
        curve = (r.get("curves") or {}).get("clip_text")
        key = (r["label"], r["sample_id"])
        if r.get("status") != "ok" or curve is None or key not in ok.index or "ff_clip_text" not in ok:
            continue
        per.setdefault(r["label"], []).append(np.concatenate([[ok.loc[key, "ff_clip_text"]], curve]))
    return pd.DataFrame([{"editor": e, "t": t - 1, "clip_text": float(np.mean([c[t] for c in cs]))}
                         for e, cs in per.items() for t in range(min(len(c) for c in cs))],
                        columns=["editor", "t", "clip_text"])


def combine_first_frame_editors(job_dirs: list[Path], out: Path) -> dict[str, pd.DataFrame]:
    """The experiment's table and plot over its editors' jobs (the module docstring), written into ``out``."""
    from .first_frame_plot import plot_editors
    from .plots import propagation_curves, write_propagation_plot

    results, records, set_metrics = job_results(job_dirs)
    table = editor_table(results, set_metrics)
    first = records[0]
    title = f"{first.get('method')} over first-frame editors on {first.get('dataset')} ({first.get('model')})"
    atomic_write_text(out / "first_frame_editors.csv", to_safe_csv(table))
    atomic_write_text(out / "first_frame_editors.md", editor_markdown(table, title))
    curves = text_curve_rows(records, results)
    atomic_write_text(out / "text_curves.csv", to_safe_csv(curves))
    plot_editors(results, curves, out / "first_frame_editors.png", title=title,
                 region_curves=propagation_curves(records), table=table)
    write_propagation_plot(records, out)  # propagation.png: the region curves per editor with bootstrap bands
    atomic_write_text(out / "first_frame_editors.json", json.dumps({"jobs": [str(d) for d in job_dirs]}, indent=1))
    log.info("first-frame editors: %s\n%s", out / "first_frame_editors.md", table.to_string(index=False))
    return {"results": results, "editors": table, "text_curves": curves}
