"""Per-sample records -> pandas tables (per method, per edit type), written as CSV and Markdown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import pandas as pd

from .store import atomic_write_text

PAPER_ORDER = ("clip_tgt", "clip_tgt_plus", "tifa", "clip_src", "clip_src_plus", "flow", "flow_plus", "fvd", "ssim",
               "clip_tc")
INFO_COLUMNS = ("label", "method", "task", "dataset", "model", "sample_id", "edit_type", "status", "error", "finite",
                "nfe", "seconds", "peak_mem_mb", "notes")


def records_to_frame(records: Iterable[dict]) -> pd.DataFrame:
    """One row per sample; metric values flattened into columns."""
    rows = []
    for r in records:
        row = {k: r.get(k) for k in INFO_COLUMNS}
        row["notes"] = "; ".join(r.get("notes") or [])
        row.update({k: (np.nan if v is None else float(v)) for k, v in (r.get("metrics") or {}).items()})
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else list(INFO_COLUMNS))


def metric_columns(df: pd.DataFrame) -> list[str]:
    cols = [c for c in df.columns if c not in INFO_COLUMNS]
    return [c for c in PAPER_ORDER if c in cols] + sorted(c for c in cols if c not in PAPER_ORDER)


def summarize(df: pd.DataFrame, by: Sequence[str] = ("label",), set_metrics: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Mean of each metric over the successfully edited samples of each group.

    NaN is not skipped: a sample whose latents diverged makes its group's mean NaN (as the paper's Table 5).
    Counts: n (samples), n_failed (errors), n_nonfinite (diverged). ``set_metrics`` (indexed by ``by``) adds
    dataset-level metrics such as FVD.
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
    if mcols and not ok.empty:
        means = ok.groupby(by, sort=False, dropna=False)[mcols + [c for c in ("nfe", "seconds", "peak_mem_mb") if c in ok.columns]].agg(lambda s: s.mean(skipna=False))
        out = out.join(means)
    if set_metrics is not None and not set_metrics.empty:
        out = out.join(set_metrics, how="left")
    cols = [c for c in PAPER_ORDER if c in out.columns] + [c for c in out.columns if c not in PAPER_ORDER]
    return out[cols].reset_index()


def to_markdown(df: pd.DataFrame, protocol: Optional[dict] = None, title: Optional[str] = None) -> str:
    lines = [f"## {title}", ""] if title else []
    lines.append(df.to_markdown(index=False, floatfmt=".2f") if not df.empty else "_no results_")
    if protocol:
        lines += ["", "Protocol:"] + [f"- {k}: {v}" for k, v in sorted(protocol.items())]
    return "\n".join(lines) + "\n"


def write_tables(df: pd.DataFrame, out_dir: str | Path, protocol: Optional[dict] = None,
                 set_metrics: Optional[pd.DataFrame] = None, prefix: str = "") -> dict[str, pd.DataFrame]:
    """Write {prefix}results.csv (per sample), {prefix}summary.{csv,md}, {prefix}by_edit_type.{csv,md}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(df, ("label",), set_metrics)
    by_type = summarize(df, ("label", "edit_type"))
    proto = json.dumps(protocol or {}, sort_keys=True)
    # each file atomically (temporary file + os.replace): concurrent writers of one run folder never corrupt it
    atomic_write_text(out_dir / f"{prefix}results.csv", df.to_csv(index=False))
    for name, table, title in (("summary", summary, "Per method"), ("by_edit_type", by_type, "Per method and edit type")):
        atomic_write_text(out_dir / f"{prefix}{name}.csv", table.assign(protocol=proto).to_csv(index=False))
        atomic_write_text(out_dir / f"{prefix}{name}.md", to_markdown(table, protocol, title))
    return {"results": df, "summary": summary, "by_edit_type": by_type}
