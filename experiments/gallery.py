"""The gallery: per-sample media (source video, edited first frame, mask beside the edited video) and a
self-contained static ``gallery.html`` per run and per multirun (relative paths, no network, no CDN).

The page has one row per sample: source video, edited first frame, mask, and every method's output playing in
sync, each with that sample's metrics; rows sort by any metric of any method and filter by edit type and method.
Missing or corrupt record files are listed at the top of the page and skipped. The page's HTML, CSS and script
are a template file, ``experiments/templates/gallery.html`` (``str.format`` fields; literal braces doubled).
"""

from __future__ import annotations

import html
import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import numpy as np
import pandas as pd

from .store import RECORD, restore_values
from .tables import metric_columns, protocol_table, records_to_frame

log = logging.getLogger(__name__)

TEMPLATE = Path(__file__).resolve().parent / "templates" / "gallery.html"

MEDIA_FILES = {"source": "source.mp4", "first_frame": "edited_first_frame.png", "mask": "mask.png",
               "output": "edited.mp4"}


# ---------------------------------------------------------------------------------------------- media
def write_sample_media(sample_dir: Path, sample) -> None:
    """source.mp4, edited_first_frame.png and mask.png of a (prepared) sample next to its edited.mp4."""
    from videoshop.video_io import write_image, write_video

    if not (sample_dir / MEDIA_FILES["source"]).is_file():
        write_video(sample_dir / MEDIA_FILES["source"], np.asarray(sample.source_video), getattr(sample, "fps", 7.0))
    if not (sample_dir / MEDIA_FILES["first_frame"]).is_file():
        write_image(sample_dir / MEDIA_FILES["first_frame"], np.asarray(sample.edited_image))
    if sample.edit_mask is not None and not (sample_dir / MEDIA_FILES["mask"]).is_file():
        write_image(sample_dir / MEDIA_FILES["mask"], np.asarray(sample.edit_mask, dtype=bool).astype(np.uint8) * 255)


def media_of(sample_dir: Path) -> dict[str, Path]:
    """The media files that exist for one sample folder, by kind."""
    return {k: sample_dir / f for k, f in MEDIA_FILES.items() if (sample_dir / f).is_file()}


def write_run_media(samples_root: Path, ids: Iterable[str], load: Callable[[str], Any]) -> dict[str, dict[str, Path]]:
    """Media for every sample of a run that has a folder; a sample that cannot be loaded keeps what it has."""
    out = {}
    for sid in ids:
        d = samples_root / sid
        if not d.is_dir():
            continue
        if not all((d / MEDIA_FILES[k]).is_file() for k in ("source", "first_frame", "mask")):
            try:
                write_sample_media(d, load(sid))
            except Exception as e:  # noqa: BLE001  (the sample's own failure is already in its record)
                log.warning("%s: no source media (%s)", sid, e)
        out[sid] = media_of(d)
    return out


# ---------------------------------------------------------------------------------------------- records
def read_records(run_dirs: Iterable[Path]) -> tuple[list[dict], list[dict[str, Path]], list[str]]:
    """Every readable record of the runs (with its sample folder), plus one line per missing or corrupt record."""
    records, folders, problems = [], [], []
    for run in run_dirs:
        root = Path(run) / "samples"
        if not root.is_dir():
            problems.append(f"{root}: no samples folder")
            continue
        for d in sorted(root.iterdir()):
            if d.name.startswith(".") or not d.is_dir():
                continue
            p = d / RECORD
            if not p.is_file():
                problems.append(f"{p}: missing record file")
                continue
            try:
                rec = restore_values(json.loads(p.read_text()))
                if not isinstance(rec, dict) or "sample_id" not in rec:
                    raise ValueError("not a record (no sample_id)")
            except Exception as e:  # noqa: BLE001
                problems.append(f"{p}: corrupt record file ({type(e).__name__}: {str(e).splitlines()[0][:80]})")
                continue
            records.append(rec)
            folders.append(media_of(d))
    return records, folders, problems


# ---------------------------------------------------------------------------------------------- the page
def run_protocol(run_dirs: Iterable[Path]) -> dict:
    """The runs' protocol.json entries merged (what each metric means, its direction); {} where there is none."""
    protocol: dict = {}
    for run in run_dirs:
        try:
            protocol.update(json.loads((Path(run) / "protocol.json").read_text()))
        except (OSError, ValueError):
            continue
    return protocol


def write_gallery(run_dirs: Iterable[Path], out_path: str | Path, title: str = "videoshop-bench gallery") -> Path:
    """Write ``out_path`` (gallery.html) from the records and media of ``run_dirs`` (one run or a multirun's jobs)."""
    out_path, run_dirs = Path(out_path), list(run_dirs)
    records, media, problems = read_records(run_dirs)
    for p in problems:
        log.warning("gallery: %s", p)
    df = records_to_frame(records)
    metrics = metric_columns(df) if not df.empty else []
    methods = list(dict.fromkeys(df["label"])) if not df.empty else []
    rows: dict[tuple, dict] = {}
    for (_, r), files in zip(df.iterrows(), media):
        key = (r["dataset"], r["sample_id"])
        row = rows.setdefault(key, {"dataset": r["dataset"], "sample_id": r["sample_id"], "edit_type": r["edit_type"],
                                    "instruction": "", "inputs": {}, "methods": {}})
        row["inputs"] = row["inputs"] or {k: v for k, v in files.items() if k != "output"}
        vals = {m: (None if pd.isna(r[m]) else float(r[m])) for m in metrics if m in r}
        row["methods"][r["label"]] = {"output": files.get("output"), "metrics": vals, "status": r["status"],
                                      "error": r["error"] if isinstance(r["error"], str) else
                                      ("non-finite latents: metrics NaN" if r["finite"] is False else "")}
    for rec in records:
        key = (rec.get("dataset"), rec.get("sample_id"))
        if key in rows and not rows[key]["instruction"]:
            rows[key]["instruction"] = str(rec.get("instruction") or "")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    page = _page(title, list(rows.values()), methods, metrics, problems, out_path.parent,
                 protocol_table(run_protocol(run_dirs), metrics))
    tmp = out_path.with_suffix(".tmp")
    tmp.write_text(page)
    tmp.replace(out_path)
    log.info("gallery: %s (%d samples, %d methods)", out_path, len(rows), len(methods))
    return out_path


def _rel(p: Optional[Path], base: Path) -> Optional[str]:
    return None if p is None else Path(os.path.relpath(p, base)).as_posix()


def _media_tag(kind: str, path: Optional[Path], base: Path) -> str:
    rel = _rel(path, base)
    if rel is None:
        return '<span class="none">none</span>'
    src = html.escape(rel, quote=True)
    if str(rel).endswith(".mp4"):
        return f'<video class="v" src="{src}" muted loop autoplay playsinline preload="auto"></video>'
    return f'<img src="{src}" alt="{kind}">'


def _fmt(v: Optional[float]) -> str:
    return "n/a" if v is None else ("NaN" if math.isnan(v) else f"{v:.4g}")


def _page(title: str, rows: list[dict], methods: list[str], metrics: list[str], problems: list[str], base: Path,
          protocols: Optional[pd.DataFrame] = None) -> str:
    e = html.escape
    head = "".join(f'<th class="m" data-method="{e(m, True)}">{e(m)}</th>' for m in methods)
    body = []
    for r in rows:
        cells = []
        for m in methods:
            got = r["methods"].get(m)
            if got is None:
                cells.append(f'<td class="m" data-method="{e(m, True)}"><span class="none">not run</span></td>')
                continue
            mt = "".join(f"<tr><td>{e(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in got["metrics"].items())
            err = f'<div class="err">{e(got["error"])}</div>' if got["error"] else ""
            cells.append(f'<td class="m" data-method="{e(m, True)}">{_media_tag("output", got["output"], base)}'
                         f'{err}<table class="mt">{mt}</table></td>')
        data = {m: got["metrics"] for m, got in r["methods"].items()}
        inputs = r["inputs"]
        body.append(
            f'<tr class="sample" data-edit-type="{e(str(r["edit_type"]), True)}" '
            f"data-metrics='{e(json.dumps(data), True)}'>"
            f'<td><b>{e(str(r["sample_id"]))}</b><br>{e(str(r["dataset"]))}<br><i>{e(str(r["edit_type"]))}</i>'
            f'<br>{e(r["instruction"])}</td>'
            f'<td>{_media_tag("source", inputs.get("source"), base)}</td>'
            f'<td>{_media_tag("first_frame", inputs.get("first_frame"), base)}</td>'
            f'<td>{_media_tag("mask", inputs.get("mask"), base)}</td>{"".join(cells)}</tr>')
    types = sorted({str(r["edit_type"]) for r in rows})
    opt = lambda xs: "".join(f'<option value="{e(x, True)}">{e(x)}</option>' for x in xs)  # noqa: E731
    checks = "".join(f'<label><input type="checkbox" class="mcheck" value="{e(m, True)}" checked> {e(m)}</label> '
                     for m in methods)
    prob = _study_links(base)
    if problems:
        prob += ('<div id="problems"><b>Skipped (missing or corrupt record files):</b><ul>'
                + "".join(f"<li>{e(p)}</li>" for p in problems) + "</ul></div>")
    return TEMPLATE.read_text().format(
        title=e(title), problems=prob + _protocol_list(protocols), metric_opts=opt(metrics), method_opts=opt(methods), type_opts=opt(types),
        checks=checks, head=head, body="\n".join(body), n=len(rows))


def _protocol_list(protocols: Optional[pd.DataFrame]) -> str:
    """A folded list of every metric column's protocol and direction (from the runs' protocol.json)."""
    if protocols is None or protocols.empty:
        return ""
    e = html.escape
    way = {True: " (higher is better)", False: " (lower is better)"}
    items = "".join(f"<li><b>{e(m)}</b>{way.get(h, '')}: {e(p)}</li>" for m, h, p in protocols.itertuples(index=False))
    return f'<details id="protocols"><summary>Metric protocols</summary><ul>{items}</ul></details>'


def _study_links(base: Path) -> str:
    """Links to the human studies built from this folder (``studies.json``, written by task=study_build)."""
    try:
        links = json.loads((base / "studies.json").read_text())
    except (OSError, ValueError):
        return ""
    e = html.escape
    return ('<p id="studies"><b>Human studies:</b> '
            + " ".join(f'<a href="{e(str(x), True)}">{e(str(x))}</a>' for x in links if isinstance(x, str)) + "</p>")
