"""Results people can look at: per-sample media (source video, edited first frame, mask beside the edited video)
and a self-contained static ``gallery.html`` per run and per multirun (relative paths, no network, no CDN).

The gallery has one row per sample: source video, edited first frame, mask, and every method's output playing in
sync, each with that sample's metrics; rows sort by any metric of any method and filter by edit type and method.
Missing or corrupt record files are listed at the top of the page and skipped.
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

from .store import RECORD, _restore
from .tables import PAPER_ORDER, metric_columns, override_values, records_to_frame

log = logging.getLogger(__name__)

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
                rec = _restore(json.loads(p.read_text()))
                if not isinstance(rec, dict) or "sample_id" not in rec:
                    raise ValueError("not a record (no sample_id)")
            except Exception as e:  # noqa: BLE001
                problems.append(f"{p}: corrupt record file ({type(e).__name__}: {str(e).splitlines()[0][:80]})")
                continue
            records.append(rec)
            folders.append(media_of(d))
    return records, folders, problems


# ---------------------------------------------------------------------------------------------- the page
def write_gallery(run_dirs: Iterable[Path], out_path: str | Path, title: str = "videoshop-bench gallery") -> Path:
    """Write ``out_path`` (gallery.html) from the records and media of ``run_dirs`` (one run or a multirun's jobs)."""
    out_path = Path(out_path)
    records, media, problems = read_records(list(run_dirs))
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
    page = _page(title, list(rows.values()), methods, metrics, problems, out_path.parent)
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


def _page(title: str, rows: list[dict], methods: list[str], metrics: list[str], problems: list[str], base: Path) -> str:
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
    return _TEMPLATE.format(
        title=e(title), problems=prob, metric_opts=opt(metrics), method_opts=opt(methods), type_opts=opt(types),
        checks=checks, head=head, body="\n".join(body), n=len(rows))


def _study_links(base: Path) -> str:
    """Links to the human studies built from this folder (``studies.json``, written by task=study_build)."""
    try:
        links = json.loads((base / "studies.json").read_text())
    except (OSError, ValueError):
        return ""
    e = html.escape
    return ('<p id="studies"><b>Human studies:</b> '
            + " ".join(f'<a href="{e(str(x), True)}">{e(str(x))}</a>' for x in links if isinstance(x, str)) + "</p>")


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; font-size: 13px; margin: 12px; }}
table.g {{ border-collapse: collapse; }} table.g > tbody > tr > td, table.g th {{ border: 1px solid #ccc; padding: 4px;
 vertical-align: top; }}
video, img {{ width: 168px; image-rendering: pixelated; display: block; }}
table.mt td {{ padding: 0 4px; font-size: 11px; }} .none {{ color: #999; }} .err {{ color: #b00; font-size: 11px; }}
#problems {{ background: #fee; border: 1px solid #c99; padding: 6px; margin-bottom: 8px; }}
#controls > * {{ margin-right: 10px; }}
</style></head>
<body>
<h2>{title}</h2>
{problems}
<div id="controls">
 <label>sort by <select id="sortMetric">{metric_opts}</select></label>
 <label>of <select id="sortMethod">{method_opts}</select></label>
 <label><select id="sortDir"><option value="desc">descending</option><option value="asc">ascending</option></select></label>
 <label>edit type <select id="typeFilter"><option value="">all</option>{type_opts}</select></label>
 <span>methods: {checks}</span>
 <button id="restart">restart all videos in sync</button>
 <span id="count">{n} samples</span>
</div>
<table class="g"><thead><tr><th>sample</th><th>source</th><th>edited first frame</th><th>mask</th>{head}</tr></thead>
<tbody id="rows">
{body}
</tbody></table>
<script>
(function () {{
  var tbody = document.getElementById('rows');
  function val(tr) {{
    var d = JSON.parse(tr.getAttribute('data-metrics'));
    var m = d[document.getElementById('sortMethod').value] || {{}};
    var v = m[document.getElementById('sortMetric').value];
    return (v === null || v === undefined || isNaN(v)) ? null : v;
  }}
  function sortRows() {{
    var dir = document.getElementById('sortDir').value === 'asc' ? 1 : -1;
    var rows = Array.prototype.slice.call(tbody.querySelectorAll('tr.sample'));
    rows.sort(function (a, b) {{
      var x = val(a), y = val(b);
      if (x === null) return y === null ? 0 : 1;
      if (y === null) return -1;
      return dir * (x - y);
    }});
    rows.forEach(function (r) {{ tbody.appendChild(r); }});
  }}
  function filter() {{
    var t = document.getElementById('typeFilter').value, shown = 0;
    tbody.querySelectorAll('tr.sample').forEach(function (r) {{
      var ok = !t || r.getAttribute('data-edit-type') === t;
      r.style.display = ok ? '' : 'none'; if (ok) shown++;
    }});
    var on = {{}};
    document.querySelectorAll('.mcheck').forEach(function (c) {{ on[c.value] = c.checked; }});
    document.querySelectorAll('.m').forEach(function (c) {{
      c.style.display = on[c.getAttribute('data-method')] ? '' : 'none';
    }});
    document.getElementById('count').textContent = shown + ' samples';
  }}
  function restart() {{
    document.querySelectorAll('video').forEach(function (v) {{ v.currentTime = 0; var p = v.play(); if (p) p.catch(function () {{}}); }});
  }}
  // keep every video on the first one's clock (they share frame count and fps within a run)
  setInterval(function () {{
    var vs = document.querySelectorAll('video'); if (!vs.length) return;
    var t = vs[0].currentTime;
    vs.forEach(function (v) {{ if (v !== vs[0] && v.duration && Math.abs(v.currentTime - t) > 0.15) v.currentTime = Math.min(t, v.duration); }});
  }}, 500);
  ['sortMetric', 'sortMethod', 'sortDir'].forEach(function (id) {{ document.getElementById(id).addEventListener('change', sortRows); }});
  document.getElementById('typeFilter').addEventListener('change', filter);
  document.querySelectorAll('.mcheck').forEach(function (c) {{ c.addEventListener('change', filter); }});
  document.getElementById('restart').addEventListener('click', restart);
  window.gallery = {{ sortRows: sortRows, filter: filter, restart: restart }};
  if (document.getElementById('sortMetric').value) sortRows();
}})();
</script>
</body></html>
"""


# ---------------------------------------------------------------------------------------------- plots
def write_plots(tables: dict[str, pd.DataFrame], out_dir: str | Path, prefix: str = "") -> dict[str, Path]:
    """PNG plots next to the tables: the paper's metrics per method side by side, and per-edit-type bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    plots: dict[str, Path] = {}
    summary, by_type = tables.get("summary"), tables.get("by_edit_type")
    if summary is None or summary.empty:
        return plots
    # a multirun over several datasets repeats a label in the combined summary (one row per set-metric row)
    summary = summary.drop_duplicates("label").reset_index(drop=True)
    mcols = [c for c in metric_columns(summary.drop(columns=["n", "n_failed", "n_nonfinite", "nfe", "seconds",
                                                             "peak_mem_mb"], errors="ignore"))
             if pd.api.types.is_numeric_dtype(summary[c])]
    mcols = [m for m in mcols if summary[m].notna().any()]  # e.g. FVD over too few videos
    if mcols:
        ncol = min(5, len(mcols))
        nrow = -(-len(mcols) // ncol)
        fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol, 3.0 * nrow), squeeze=False)
        for ax in axes.flat[len(mcols):]:
            ax.axis("off")
        for ax, m in zip(axes.flat, mcols):
            ax.bar(range(len(summary)), summary[m].astype(float), color=[f"C{i}" for i in range(len(summary))])
            ax.set_title(m, fontsize=9)
            ax.set_xticks(range(len(summary)), summary["label"], rotation=90, fontsize=7)
        fig.tight_layout()
        plots["metrics_per_method"] = out_dir / f"{prefix}metrics_per_method.png"
        fig.savefig(plots["metrics_per_method"], dpi=80)
        plt.close(fig)
    paper_cols = [m for m in PAPER_ORDER if m in summary.columns and summary[m].notna().any()]
    if paper_cols:  # the paper's ten metrics, one panel each, in the paper's column order (Tables 2-3)
        fig, axes = plt.subplots(1, len(paper_cols), figsize=(1.9 * len(paper_cols), 3.4), squeeze=False)
        for ax, m in zip(axes[0], paper_cols):
            ax.bar(range(len(summary)), summary[m].astype(float), color=[f"C{i}" for i in range(len(summary))])
            ax.set_title(m, fontsize=9)
            ax.set_xticks(range(len(summary)), summary["label"], rotation=90, fontsize=7)
        fig.suptitle("the paper's metrics (CLIP, TIFA, SSIM, CLIP_TC x100; Flow px; FVD)", fontsize=9)
        fig.tight_layout()
        plots["paper_metrics"] = out_dir / f"{prefix}paper_metrics.png"
        fig.savefig(plots["paper_metrics"], dpi=80)
        plt.close(fig)
    if by_type is not None and not by_type.empty and mcols:
        shown = [m for m in mcols if m in by_type.columns][:6]
        fig, axes = plt.subplots(1, len(shown), figsize=(3.0 * len(shown), 3.2), squeeze=False)
        for ax, m in zip(axes[0], shown):
            piv = by_type.pivot_table(index="edit_type", columns="label", values=m, aggfunc="mean", dropna=False)
            piv.plot.bar(ax=ax, legend=ax is axes[0][0], fontsize=7)
            ax.set_title(m, fontsize=9)
            ax.set_xlabel("")
        if axes[0][0].get_legend():
            axes[0][0].legend(fontsize=6)
        fig.tight_layout()
        plots["by_edit_type"] = out_dir / f"{prefix}by_edit_type.png"
        fig.savefig(plots["by_edit_type"], dpi=80)
        plt.close(fig)
    return plots


# ---------------------------------------------------------------------------------------------- hooks
def report_run(out: Path, ids: Iterable[str], load: Callable[[str], Any]) -> tuple[dict, dict]:
    """After a run's tables: media per sample, ``gallery.html`` and plots; returns (media, plots) for the logger.
    Never raises: the results are already written."""
    media, plots = {}, {}
    try:
        media = write_run_media(Path(out) / "samples", ids, load)
        write_gallery([out], Path(out) / "gallery.html", title=f"videoshop-bench: {Path(out).name}")
        tables = {k: pd.read_csv(Path(out) / f"{k}.csv") for k in ("summary", "by_edit_type")
                  if (Path(out) / f"{k}.csv").is_file()}
        plots = write_plots(tables, out)
    except Exception as e:  # noqa: BLE001
        log.error("report of %s failed: %s: %s", out, type(e).__name__, e)
    return media, plots


def write_sigma_sweep_plot(results: pd.DataFrame, out_dir: str | Path, prefix: str = "combined_") -> Optional[Path]:
    """Each metric against the noise-extrapolation threshold Sigma (Eq. 6) of a sweep: every sample as a dot, the
    mean over samples as a line. Sigma is each job's ``method.threshold`` override (the records' ``overrides``);
    runs that did not override it are left out; None below 2 values."""

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sig = pd.to_numeric(override_values(results, "method.threshold"), errors="coerce")
    df = results.assign(sigma=sig).dropna(subset=["sigma"])
    if df["sigma"].nunique() < 2:
        return None
    mcols = [c for c in metric_columns(df) if c != "sigma" and pd.api.types.is_numeric_dtype(df[c])]
    fig, axes = plt.subplots(1, len(mcols), figsize=(2.2 * len(mcols), 2.8), squeeze=False)
    for ax, m in zip(axes[0], mcols):
        ax.plot(df["sigma"], df[m], "o", alpha=0.35, ms=3, color="C0")
        mean = df.groupby("sigma")[m].mean()
        ax.plot(mean.index, mean.values, "-", color="C1")
        ax.set_xscale("log")
        ax.set_xticks(list(mean.index), [f"{x:g}" for x in mean.index])
        ax.minorticks_off()
        ax.set_title(m, fontsize=9)
        ax.set_xlabel("Sigma", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    path = Path(out_dir) / f"{prefix}sigma_sweep.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def report_multirun(job_dirs: list[Path], out: Path, tables: dict[str, pd.DataFrame], logger_cfg: Optional[dict],
                    group: Optional[str]) -> Optional[str]:
    """After a multirun's combined tables: one gallery over every job, plots, and one W&B run in the sweep's group
    holding the combined tables with their media; returns that W&B run's group (None without W&B)."""
    from .loggers import make_logger

    try:
        write_gallery(job_dirs, Path(out) / "gallery.html", title=f"videoshop-bench: {Path(out).name}")
        plots = write_plots(tables, out, prefix="combined_")
        sweep = write_sigma_sweep_plot(tables["results"], out) if "results" in tables else None
        if sweep is not None:
            plots["sigma_sweep"] = sweep
        media: dict = {}
        records, files, _ = read_records(job_dirs)
        for rec, f in zip(records, files):
            media[(rec.get("label"), rec.get("sample_id"))] = f
        cfg = dict(logger_cfg or {})
        if cfg.get("name") == "wandb":
            cfg["group"] = cfg.get("group") or group
            logger = make_logger(cfg, {"jobs": [str(d) for d in job_dirs]}, default_dir=str(out))
            logger.run.name = "combined"
            logger.log_tables(tables, media, plots, prefix="combined_")
            joined = logger.run.group
            logger.finish()
            return joined
    except Exception as e:  # noqa: BLE001
        log.error("report of multirun %s failed: %s: %s", out, type(e).__name__, e)
    return None
