"""Per-sample records -> pandas tables (per method, per edit type), written as CSV and Markdown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import pandas as pd

from videoshop_bench.eval.registry import column_order, set_columns
from videoshop_bench.eval.windows import split_window
from videoshop.files import atomic_write_text

from .uncertainty import CI_HI, CI_LO, IntervalOptions, interval_columns, is_interval_column, paired_differences

INFO_COLUMNS = ("label", "method", "overrides", "task", "dataset", "model", "sample_id", "edit_type", "status", "error", "finite",
                "nfe", "seconds", "peak_mem_mb", "peak_mem_scope", "notes", "first_frame")


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")  # what a spreadsheet may run as a formula (OWASP CSV injection)


def csv_cell(v):
    """A text cell a spreadsheet shows as text: one starting with =, +, -, @, tab or a line break gets a leading
    apostrophe (OWASP's CSV-injection rule); numbers and other text are unchanged."""
    return "'" + v if isinstance(v, str) and v.startswith(FORMULA_STARTS) else v


def to_safe_csv(df: pd.DataFrame, index: bool = False, **kw) -> str:
    """``df.to_csv`` with every text cell (and text index / column names) passed through ``csv_cell``; text that
    Python cannot encode as UTF-8 (names with undecodable bytes) is written with backslash escapes."""
    safe = df.copy()
    text_like = (pd.api.types.is_object_dtype, pd.api.types.is_string_dtype)  # pandas 3 infers a str dtype
    for c in safe.columns:
        if any(f(safe[c].dtype) for f in text_like):
            safe[c] = safe[c].map(csv_cell).astype(object)
    safe.columns = [csv_cell(c) for c in safe.columns]
    if any(f(safe.index.dtype) for f in text_like):
        safe.index = safe.index.map(csv_cell)
    text = safe.to_csv(index=index, **kw)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


SKIPPED = "skipped"  # per sample: "metric: reason; ..." for the metrics that could not be computed


def records_to_frame(records: Iterable[dict]) -> pd.DataFrame:
    """One row per sample; metric values flattened into columns; a metric the sample skipped is a missing value
    and is named, with its reason, in the ``skipped`` column."""
    rows = []
    for r in records:
        row = {k: r.get(k) for k in INFO_COLUMNS}
        row["notes"] = "; ".join(r.get("notes") or [])
        row["overrides"] = json.dumps(r.get("overrides") or {}, sort_keys=True)
        row["first_frame"] = json.dumps(r.get("first_frame") or {"editor": "none"}, sort_keys=True)  # what made frame 0
        row[SKIPPED] = "; ".join(f"{k}: {v}" for k, v in sorted((r.get("skipped") or {}).items()))
        row.update({k: (np.nan if v is None else float(v)) for k, v in (r.get("metrics") or {}).items()})
        row.update({k: np.nan for k in (r.get("skipped") or {}) if k not in row})
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else list(INFO_COLUMNS))


def override_values(df: pd.DataFrame, key: str) -> pd.Series:
    """Each row's value of the sweep override ``key`` (e.g. ``method.threshold``), None where its job did not
    override it; read from the ``overrides`` column (the job's overrides as JSON, records_to_frame)."""
    if "overrides" not in df.columns:  # a table from before records stored their overrides
        return pd.Series([None] * len(df), index=df.index, dtype=object)
    return df["overrides"].map(lambda s: json.loads(s).get(key) if isinstance(s, str) and s else None)


def metric_columns(df: pd.DataFrame) -> list[str]:
    """The metric columns of ``df``: the registered metrics' columns in table order (eval/registry.py), then their
    frame-window columns (``clip_tgt[1:]``, eval/windows.py) in the same order, then any other column (from an
    unregistered metric) in alphabetical order; never the interval columns of a summary."""
    cols = [c for c in df.columns if c not in INFO_COLUMNS and c != SKIPPED and not is_interval_column(c)]
    order = column_order()
    rank = {c: i for i, c in enumerate(order)}
    windowed = sorted((c for c in cols if split_window(c)[0] in rank and split_window(c)[1]),  # clip_tgt[1:] ...
                      key=lambda c: (split_window(c)[1], rank[split_window(c)[0]]))
    return [c for c in order if c in cols] + windowed + sorted(c for c in cols if c not in order and c not in windowed)


def summarize(df: pd.DataFrame, by: Sequence[str] = ("label",), set_metrics: Optional[pd.DataFrame] = None,
              intervals: Optional[IntervalOptions] = IntervalOptions()) -> pd.DataFrame:
    """Mean of each metric over the successfully edited samples of each group.

    NaN is not skipped: a sample whose latents diverged makes its group's mean NaN (as the paper's Table 5).
    A metric a sample could NOT compute (named in its ``skipped`` column: no ground truth, an empty tracked region,
    no usable TIFA question) is left out of that metric's mean explicitly, and counted: ``n_skipped`` (samples
    with any skipped metric) and ``skipped`` ("metric: count (reason)"). Counts: n (samples), n_failed (errors),
    n_nonfinite (diverged). ``set_metrics`` (indexed by ``by``) adds dataset-level metrics such as FVD.
    ``intervals``: each mean (metrics and cost: nfe, seconds, peak_mem_mb) gets ``<col>_ci_lo``/``<col>_ci_hi``,
    its bootstrap interval over the same values (experiments/uncertainty.py), as the last columns; None: none.
    """
    by = list(by)
    if df.empty:
        return pd.DataFrame(columns=by + ["n", "n_failed", "n_nonfinite"])
    mcols = metric_columns(df)
    ok = df[df["status"] == "ok"]
    groups = df.groupby(by, sort=False, dropna=False)
    out = pd.DataFrame({
        "n": groups.size(),
        "n_failed": groups["status"].apply(lambda s: int((s != "ok").sum())),
        "n_nonfinite": groups["finite"].apply(lambda s: int((s == False).sum())),  # noqa: E712
    })
    skipped = df[SKIPPED] if SKIPPED in df.columns else pd.Series("", index=df.index)
    skipped = skipped.fillna("").astype(str)
    out["n_skipped"] = skipped.ne("").groupby([df[b] for b in by], sort=False, dropna=False).sum().astype(int)
    out["skipped"] = skipped.groupby([df[b] for b in by], sort=False, dropna=False).agg(_count_reasons)
    cis = None
    if mcols and not ok.empty:
        cols = mcols + [c for c in ("nfe", "seconds", "peak_mem_mb") if c in ok.columns]
        vals = ok[cols].copy()
        ok_skipped = skipped.loc[ok.index]
        for c in mcols:  # skipped values out of the mean; NaN from diverged latents stays in (and propagates)
            vals[c] = vals[c].astype(object).where(~ok_skipped.map(lambda s, c=c: _skips(s, c)), None)
        vals[by] = ok[by]
        means = vals.groupby(by, sort=False, dropna=False)[cols].agg(_mean_of_present)
        out = out.join(means)
        if intervals is not None:
            cis = interval_columns(vals, by, cols, intervals)
    if set_metrics is not None and not set_metrics.empty:
        out = out.join(set_metrics, how="left")
    if "method" in df.columns and "method" not in by:  # what each row ran, as data (experiments/paper.py reads it)
        out["method"] = groups["method"].first()
    lead = ["method"] if "method" in out.columns else []
    paper = set_columns("paper")  # the paper's columns lead, in its order; counts, then the other metrics
    cols = lead + [c for c in paper if c in out.columns] + [c for c in out.columns if c not in paper and c not in lead]
    out = out[cols]
    if cis is not None:  # the intervals last: the table reads as before, the CSV stays numeric
        out = out.join(cis)
    return out.reset_index()


def _skips(skipped: str, metric: str) -> bool:
    return any(part.split(": ", 1)[0] == metric for part in skipped.split("; ") if part)


def _mean_of_present(s: pd.Series) -> float:
    """Mean over the values that exist (None = skipped, left out); NaN among them (diverged) propagates."""
    present = [float(v) for v in s if v is not None]
    return float(np.mean(present)) if present else np.nan


def _count_reasons(s: pd.Series) -> str:
    """'clip_tgt_plus: 2 (empty tracked region); tifa: 1 (no usable question)' over a group's samples."""
    counts: dict[tuple[str, str], int] = {}
    for text in s:
        for part in filter(None, str(text).split("; ")):
            name, _, why = part.partition(": ")
            counts[(name, why)] = counts.get((name, why), 0) + 1
    return "; ".join(f"{n}: {c} ({w})" for (n, w), c in sorted(counts.items()))


def skip_protocol(records: Iterable[dict]) -> dict[str, str]:
    """protocol.json entries: how skipped metrics are averaged, and how many samples skipped each, with why."""
    frame = pd.Series(["; ".join(f"{k}: {v}" for k, v in sorted((r.get("skipped") or {}).items())) for r in records],
                      dtype=object)
    counted = _count_reasons(frame) if len(frame) else ""
    return {"skip_policy": "a metric that cannot be computed for a sample (no ground truth, empty or full tracked "
                           "region, no usable question) is left out of that metric's mean; n_skipped and skipped "
                           "count it per table row. NaN from diverged latents is not skipped.",
            "skipped_samples": counted or "none"}


def with_intervals(df: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """``df`` for reading: each column with ``<c>_ci_lo``/``<c>_ci_hi`` beside it shown as one text cell
    "mean [lo, hi]" (just the mean where there is no interval: fewer than two values), the interval columns
    dropped, other columns as they are."""
    out = df.copy()
    for c in [c for c in df.columns if c + CI_LO in df.columns and c + CI_HI in df.columns]:
        out[c] = [_cell(m, lo, hi, digits) for m, lo, hi in zip(df[c], df[c + CI_LO], df[c + CI_HI])]
    return out.drop(columns=[c for c in df.columns if is_interval_column(c)])


def _cell(mean, lo, hi, digits: int) -> str:
    m = f"{float(mean):.{digits}f}" if pd.notna(mean) else "nan"
    if pd.isna(lo) or pd.isna(hi):  # no interval (fewer than two values)
        return m
    a, b = f"{float(lo):.{digits}f}", f"{float(hi):.{digits}f}"
    return m if a == b == m else f"{m} [{a}, {b}]"  # every value the same (at the shown precision): the mean alone


def protocol_lines(protocol: dict, columns: Sequence[str] = ()) -> list[str]:
    """The protocol as Markdown bullets: each metric column's protocol first, in table order, marked with its
    direction (``higher_is_better``), then the run's other entries (model, seed, intervals, skips)."""
    arrow = {True: " (higher is better)", False: " (lower is better)"}
    metrics = protocol_table(protocol, columns)
    lines = [f"- {m}{arrow.get(h, '')}: {p}" for m, h, p in metrics.itertuples(index=False)]
    for k in sorted(k for k in protocol if k not in set(metrics["metric"]) and k != "higher_is_better"):
        v = protocol[k]
        if k == "intervals" and isinstance(v, dict):
            v = IntervalOptions.from_dict(v).describe() + f"; paired differences vs {v.get('reference')}"
        lines.append(f"- {k}: {v}")
    return lines


def protocol_table(protocol: dict, columns: Sequence[str] = ()) -> pd.DataFrame:
    """One row per metric column the protocol describes (table order first): ``metric``, ``higher_is_better``
    (None where unknown), ``protocol``; for the W&B run and the gallery."""
    directions = protocol.get("higher_is_better") or {}
    metrics = [c for c in columns if c in protocol] + sorted(k for k in protocol if k in directions and k not in columns)
    return pd.DataFrame({"metric": metrics, "higher_is_better": [directions.get(m) for m in metrics],
                         "protocol": [str(protocol[m]) for m in metrics]})


def to_markdown(df: pd.DataFrame, protocol: Optional[dict] = None, title: Optional[str] = None,
                note: Optional[str] = None, after: str = "") -> str:
    """``df`` as Markdown (means with their intervals: ``with_intervals``), a ``note`` above it, ``after`` (more
    sections) below it, then the protocol."""
    lines = [f"## {title}", ""] if title else []
    if note:
        lines += [note, ""]
    lines.append(with_intervals(df).to_markdown(index=False, floatfmt=".2f") if not df.empty else "_no results_")
    if after:
        lines += ["", after.rstrip("\n")]
    if protocol:
        lines += ["", "Protocol:"] + protocol_lines(protocol, list(df.columns))
    return "\n".join(lines) + "\n"


def paired_markdown(paired: pd.DataFrame, metrics: Sequence[str], options: IntervalOptions,
                    higher_is_better: Optional[dict] = None) -> str:
    """The paired-difference table as Markdown: one row per method, a cell "difference [lo, hi]" per metric
    (with its pair count where fewer samples than ``n_paired`` had that metric); a metric's header carries its
    direction (``higher_is_better``: (+) a positive difference is better, (-) a negative one)."""
    if paired.empty:
        return ""
    shown = paired[[c for c in ("label", "method", "n_paired", "n_unpaired") if c in paired.columns]].copy()
    sign = {True: " (+)", False: " (-)"}
    for m in metrics:
        if m in paired.columns:
            shown[m + sign.get((higher_is_better or {}).get(m), "")] = [_cell(d, lo, hi, 2) + ("" if n == np_ else f" (n={n})") for d, lo, hi, n, np_ in
                        zip(paired[m], paired[m + CI_LO], paired[m + CI_HI], paired[m + "_n"], paired["n_paired"])]
    ref = paired["reference"].iloc[0]
    return (f"## Paired differences: each method minus {ref} on the same samples\n\n"
            f"Mean of (method - {ref}) over the samples both scored, aligned by dataset and sample id "
            f"[{options.confidence:.0%} {options.interval} bootstrap interval over those pairs, {options.n_boot} "
            f"resamples, seed {options.seed}]; an interval that excludes 0 is a difference the samples support. "
            f"(+) / (-): a positive / negative difference is an improvement. n_unpaired: samples only one of the two "
            f"has (not run, failed); a metric one side skipped leaves that pair out of its cell (n=).\n\n" + shown.to_markdown(index=False, floatfmt=".2f") + "\n")


def write_tables(df: pd.DataFrame, out_dir: str | Path, protocol: Optional[dict] = None,
                 set_metrics: Optional[pd.DataFrame] = None, prefix: str = "",
                 intervals: Optional[IntervalOptions] = None) -> dict[str, pd.DataFrame]:
    """Write {prefix}results.csv (per sample), {prefix}summary.{csv,md}, {prefix}by_edit_type.{csv,md}, and, when
    the table holds the reference method and another, {prefix}paired.csv (paired differences, also in the
    summary's Markdown). ``intervals``: how (default: ``protocol["intervals"]``, else IntervalOptions())."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    protocol = dict(protocol or {})
    intervals = intervals or IntervalOptions.from_dict(protocol.get("intervals"))
    protocol["intervals"] = intervals.as_dict()
    summary = summarize(df, ("label",), set_metrics, intervals)
    by_type = summarize(df, ("label", "edit_type"), intervals=intervals)
    mcols = metric_columns(df) if not df.empty else []
    skipped = df[SKIPPED].fillna("").astype(str) if SKIPPED in df.columns else pd.Series("", index=df.index)
    costs = [c for c in ("seconds",) if c in df.columns]
    paired = paired_differences(df, mcols + costs, skipped, intervals) if not df.empty else pd.DataFrame()
    proto = json.dumps(protocol, sort_keys=True, default=str)
    # each file atomically (temporary file + os.replace): concurrent writers of one run folder never corrupt it
    atomic_write_text(out_dir / f"{prefix}results.csv", to_safe_csv(df))
    for name, table, title in (("summary", summary, "Per method"), ("by_edit_type", by_type, "Per method and edit type")):
        atomic_write_text(out_dir / f"{prefix}{name}.csv", to_safe_csv(table.assign(protocol=proto)))
        after = paired_markdown(paired, mcols + costs, intervals, {**protocol.get("higher_is_better", {}),
                                                                   "seconds": False}) if name == "summary" else ""
        md = to_markdown(table, protocol, title, note=f"Cells: {intervals.describe()}.", after=after)
        atomic_write_text(out_dir / f"{prefix}{name}.md", md.encode("utf-8", "backslashreplace").decode("utf-8"))
    if not paired.empty:
        atomic_write_text(out_dir / f"{prefix}paired.csv", to_safe_csv(paired))
    return {"results": df, "summary": summary, "by_edit_type": by_type, "paired": paired,
            "protocol": protocol_table(protocol, list(summary.columns))}
