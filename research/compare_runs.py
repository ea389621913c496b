"""Did a refactor change behaviour? Compare two run roots record by record, frame by frame.

    python -m videoshop_bench.research.compare_runs BEFORE AFTER                  # print the verdicts; exit 1 if anything differs
    python -m videoshop_bench.research.compare_runs BEFORE AFTER --out DIR        # also write verdicts.csv, samples.csv, hashes.csv
    python -m videoshop_bench.research.compare_runs ROOT --dump ROOT/records.csv  # one root's per-sample values as a flat table

A run root holds one folder per preset (``paper_table2``, ``regression``, ...), each holding run folders with a
``samples/<id>/record.json`` per sample (experiments/store.py), e.g. the sweep folders of
``python run.py experiment=paper_table2 smoke=true hydra.sweep.dir=ROOT/paper_table2``. A sample is matched by
(preset, dataset, method, the job's sweep ``overrides``, sample id), not by folder name, so a renamed run folder
still matches. Per sample it compares every metric (NaN equals NaN; the largest absolute difference is reported),
the edited frames (SHA-256 of each ``edited/*`` file; where they differ, the largest pixel difference), the
outcome fields (``COMPARED``) and ``info`` without its timings. ``edit_hash`` and ``metrics_hash`` changes are listed
apart: a hash may change where a config really changed while the output stays the same. Set metrics (FVD, from
``set_metrics.csv``) are compared as sample ``(set)``. Timings, memory, worker and thread fields are not compared.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
import pandas as pd

from videoshop_bench.experiments.store import restore_values

KEY = ("preset", "dataset", "method", "overrides", "sample_id")
COMPARED = ("status", "error", "nfe", "finite", "edit_type", "model")
HASHES = ("edit_hash", "metrics_hash")
SET_SAMPLE = "(set)"
TIMING_WORDS = ("seconds", "time", "timing", "peak_mem")


def _untimed(info: Any) -> Any:
    """``info`` without the keys that hold timings (they differ between any two runs)."""
    if isinstance(info, dict):
        return {k: _untimed(v) for k, v in info.items() if not any(w in k for w in TIMING_WORDS)}
    return info


def frame_hashes(sample_dir: Path) -> dict[str, str]:
    """SHA-256 of every edited frame file of one stored sample (``edited/0000.png`` ...)."""
    folder = sample_dir / "edited"
    files = sorted(folder.iterdir()) if folder.is_dir() else []
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.is_file()}


def read_records(root: str | Path) -> pd.DataFrame:
    """One row per stored sample (and per run's set metrics) under ``root``: the key, the compared fields, the
    hashes, ``metrics`` (dict), ``frames`` (file -> sha256), ``info`` (without timings) and the sample folder."""
    root = Path(root)
    rows = []
    for rec_path in sorted(root.glob("**/samples/*/record.json")):
        rec = restore_values(json.loads(rec_path.read_text()))
        rows.append(_row(root, rec_path.parent, rec))
    for set_csv in sorted(root.glob("**/set_metrics.csv")):
        rows += _set_rows(root, set_csv)
    return pd.DataFrame(rows, columns=[*KEY, *COMPARED, *HASHES, "metrics", "frames", "info", "dir"])


def _row(root: Path, sample_dir: Path, rec: dict) -> dict:
    preset = sample_dir.relative_to(root).parts[0]
    return {"preset": preset, "dataset": rec.get("dataset"), "method": rec.get("method"),
            "overrides": json.dumps(rec.get("overrides") or {}, sort_keys=True), "sample_id": rec.get("sample_id"),
            **{k: rec.get(k) for k in COMPARED + HASHES}, "metrics": rec.get("metrics") or {},
            "frames": frame_hashes(sample_dir), "info": json.dumps(_untimed(rec.get("info") or {}), sort_keys=True),
            "dir": str(sample_dir)}


def _set_rows(root: Path, set_csv: Path) -> list[dict]:
    """The run's set metrics (numeric columns of ``set_metrics.csv``) as one row, keyed like its samples."""
    run = set_csv.parent
    recs = sorted(run.glob("samples/*/record.json"))
    if not recs:
        return []
    first = restore_values(json.loads(recs[0].read_text()))
    df = pd.read_csv(set_csv)
    metrics = {c: float(v) for c in df.columns if c != "label"
               for v in [pd.to_numeric(df[c], errors="coerce").iloc[0]] if not pd.isna(v)}
    row = _row(root, recs[0].parent, first)
    row.update(sample_id=SET_SAMPLE, metrics=metrics, frames={}, info="{}", dir=str(run),
               **{k: None for k in COMPARED + HASHES})
    return [row]


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _same(a: Any, b: Any) -> bool:
    """Equal, with None and NaN equal to each other (pandas turns one into the other)."""
    if _missing(a) or _missing(b):
        return _missing(a) and _missing(b)
    return bool(a == b)


def metric_diff(before: dict, after: dict) -> tuple[list[str], float]:
    """The metrics that differ (present on one side only, or another value) and the largest absolute difference of
    those present on both (NaN = NaN; NaN against a number counts as inf)."""
    names, worst = [], 0.0
    for m in sorted(set(before) | set(after)):
        if m not in before or m not in after:
            names.append(m)
            continue
        a, b = _num(before[m]), _num(after[m])
        if not _same(a, b):
            names.append(m)
            d = abs(a - b) if not (math.isnan(a) or math.isnan(b)) else math.inf
            worst = max(worst, d)
    return names, worst


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def max_pixel_diff(dir_a: Path, dir_b: Path, names: Iterable[str]) -> float:
    """Largest absolute difference (0-255) over the named frames present in both ``edited/`` folders."""
    from PIL import Image

    worst = 0.0
    for n in names:
        fa, fb = dir_a / "edited" / n, dir_b / "edited" / n
        if not (fa.is_file() and fb.is_file()):
            return math.inf
        a = np.asarray(Image.open(fa), dtype=np.int16) if fa.suffix == ".png" else np.load(fa)
        b = np.asarray(Image.open(fb), dtype=np.int16) if fb.suffix == ".png" else np.load(fb)
        if a.shape != b.shape:
            return math.inf
        worst = max(worst, float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()))
    return worst


def compare_sample(a: pd.Series, b: pd.Series) -> dict:
    """What differs between one sample's two rows: field names, metric names and max diff, frames."""
    fields = [f for f in COMPARED if not _same(a[f], b[f])]
    if a["info"] != b["info"]:
        fields.append("info")
    metrics, worst = metric_diff(a["metrics"], b["metrics"])
    frames_differ = sorted(n for n in set(a["frames"]) | set(b["frames"]) if a["frames"].get(n) != b["frames"].get(n))
    pix = max_pixel_diff(Path(a["dir"]), Path(b["dir"]), frames_differ) if frames_differ else 0.0
    return {"fields": fields, "metrics_differ": metrics, "max_metric_diff": worst,
            "frames_differ": len(frames_differ), "max_pixel_diff": pix,
            **{f"{h}_changed": not _same(a[h], b[h]) for h in HASHES},
            **{f"{h}_before": a[h] for h in HASHES}, **{f"{h}_after": b[h] for h in HASHES}}


def compare_roots(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """One row per sample key of either root: ``verdict`` identical / differs / only before / only after."""
    a, b = before.set_index(list(KEY)), after.set_index(list(KEY))
    rows = []
    for key in sorted(set(a.index) | set(b.index), key=lambda k: tuple(map(str, k))):
        row = dict(zip(KEY, key))
        if key not in b.index or key not in a.index:
            row["verdict"] = "only before" if key in a.index else "only after"
        else:
            d = compare_sample(a.loc[key], b.loc[key])
            same = not (d["fields"] or d["metrics_differ"] or d["frames_differ"])
            row.update(d, verdict="identical" if same else "differs")
        rows.append(row)
    return pd.DataFrame(rows)


def verdicts(samples: pd.DataFrame) -> pd.DataFrame:
    """Per preset and method: how many samples, and identical or what differed (fields, metric max diff, frames)."""
    rows = []
    for (preset, method), g in samples.groupby(["preset", "method"], sort=True):
        bad = g[g["verdict"] != "identical"]
        if bad.empty:
            what = "identical"
        else:
            parts = sorted({v for v in bad["verdict"] if v.startswith("only")})
            both = bad[bad["verdict"] == "differs"]
            if not both.empty:
                fields = sorted({f for fs in both["fields"] for f in fs})
                mets = sorted({m for ms in both["metrics_differ"] for m in ms})
                if fields:
                    parts.append("fields " + ",".join(fields))
                if mets:
                    parts.append(f"metrics {','.join(mets)} (max |diff| {both['max_metric_diff'].max():.3g})")
                if both["frames_differ"].sum():
                    parts.append(f"{int(both['frames_differ'].sum())} frames (max pixel diff "
                                 f"{both['max_pixel_diff'].max():g})")
            what = "; ".join(parts)
        hashes = g[[c for c in g.columns if c.endswith("_hash_changed")]].fillna(False).astype(bool).sum()
        n = int((g["sample_id"] != SET_SAMPLE).sum())
        rows.append({"preset": preset, "method": method, "samples": n, "result": what,
                     **{c.replace("_changed", " changed"): int(v) for c, v in hashes.items()}})
    return pd.DataFrame(rows)


def hash_changes(samples: pd.DataFrame) -> pd.DataFrame:
    """The samples whose ``edit_hash`` or ``metrics_hash`` changed, with both values."""
    if "edit_hash_changed" not in samples:
        return pd.DataFrame()
    both = samples[samples["verdict"].isin(["identical", "differs"])]
    changed = both[both["edit_hash_changed"].astype(bool) | both["metrics_hash_changed"].astype(bool)]
    cols = ["preset", "method", "dataset", "sample_id", "edit_hash_before", "edit_hash_after",
            "metrics_hash_before", "metrics_hash_after"]
    return changed[cols].reset_index(drop=True)


def flat(records: pd.DataFrame) -> pd.DataFrame:
    """A root's records as a flat table: one column per metric, the frames' hashes joined."""
    m = pd.json_normalize(records["metrics"].tolist()).add_prefix("metric.")
    out = records.drop(columns=["metrics", "frames", "dir"]).reset_index(drop=True)
    out["frames_sha256"] = [";".join(f"{k}:{v}" for k, v in sorted(f.items())) for f in records["frames"]]
    return pd.concat([out, m], axis=1)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("before")
    p.add_argument("after", nargs="?")
    p.add_argument("--out", help="folder for verdicts.csv, samples.csv, hashes.csv")
    p.add_argument("--dump", help="write BEFORE's records as one flat CSV and stop")
    args = p.parse_args(argv)
    before = read_records(args.before)
    if args.dump:
        flat(before).to_csv(args.dump, index=False)
        print(f"{len(before)} rows -> {args.dump}")
        return 0
    if not args.after:
        p.error("give AFTER (or --dump)")
    samples = compare_roots(before, read_records(args.after))
    table, hashes = verdicts(samples), hash_changes(samples)
    with pd.option_context("display.width", 250, "display.max_colwidth", 120, "display.max_rows", 500):
        print(f"before: {args.before}\nafter:  {args.after}\n")
        print(table.to_string(index=False))
        print("\nhash changes:" if len(hashes) else "\nhash changes: none")
        if len(hashes):
            print(hashes.to_string(index=False))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "verdicts.csv", index=False)
        samples.to_csv(out / "samples.csv", index=False)
        hashes.to_csv(out / "hashes.csv", index=False)
    return int(bool((samples["verdict"] != "identical").any()))


if __name__ == "__main__":
    sys.exit(main())
