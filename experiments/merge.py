"""Merge a run folder written by several shards or workers into the run's tables, with set metrics over the union.

    python -m videoshop_bench.experiments.merge RUN_DIR [RUN_DIR ...]
    python -m videoshop_bench.experiments.merge --sweep SWEEP_DIR      # every job of a multirun, then its combined table

Reads every sample record under ``RUN_DIR/samples`` and writes ``results.csv``, ``summary.{csv,md}``,
``by_edit_type.{csv,md}``, ``set_metrics.csv`` and ``protocol.json`` into ``RUN_DIR``, exactly as one unsharded run
would have. Set metrics (FVD) are computed from the features every sample stored with its record
(``features.safetensors``: I3D features of its source and edited video), over all samples at once: FVD is a
distance between two Gaussian fits, so an average of shard FVDs would be a different (wrong) number.
No model is loaded: the merge takes seconds however large the backbones were. ``--sweep SWEEP_DIR`` merges the run
folders of a multirun's jobs (each job lists its folder in ``SWEEP_DIR/.jobs/``) and writes the sweep's combined
table, as the multirun does at its end: for a sweep whose launching process did not live to see its jobs finish.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import numpy as np
import pandas as pd

from videoshop.files import atomic_write_text

from videoshop_bench import SUBPACKAGES
from videoshop_bench.eval.windows import split_window

from .store import ResultStore

from .tables import records_to_frame, skip_protocol, to_safe_csv, with_intervals, write_tables

log = logging.getLogger(__name__)

FeatureLoader = Callable[[str], tuple[dict[str, np.ndarray], dict[str, str]]]


def class_path(obj: Any) -> str:
    """Importable name of ``obj``'s class, stored with each sample's features so a merge can find it again."""
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _load_class(path: str):
    """The class stored as ``path``; a path saved before the install namespace (no prefix) is looked up under
    ``videoshop_bench.`` (issue 33, Build 6)."""
    module, _, name = path.rpartition(".")
    if module.split(".")[0] in SUBPACKAGES:
        module = f"videoshop_bench.{module}"
    return getattr(importlib.import_module(module), name)


def counts_for_set_metrics(record: dict) -> bool:
    """Set metrics pool the successful samples whose latents stayed finite."""
    return record.get("status") == "ok" and bool(record.get("finite", True))


def set_metric_frame(records: Iterable[dict], load_features: FeatureLoader,
                     expected: Optional[dict[str, str]] = None) -> tuple[pd.DataFrame, dict[str, str]]:
    """Dataset-level metrics per label from the samples' stored features.

    ``load_features(sample_id) -> (arrays named '<metric key>/<name>', {metric key: class path})``; each metric's
    class computes its value from the stacked arrays with ``from_features`` (a static method, no model).
    Samples are pooled in sample-id order, so any split into shards gives the same sums. ``expected``: metric
    key -> class path of set metrics that must appear even when no sample has features for them (then NaN).
    Returns a frame indexed by label (values and ``<name>_warning`` notes) and the notes of the last label.
    """
    stacks: dict[str, dict[str, dict[str, list[np.ndarray]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    expected = dict(expected or {})
    classes: dict[str, str] = dict(expected)
    missing: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    skipped: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    labels: list[str] = []
    loaded = []
    for r in sorted(records, key=lambda r: str(r["sample_id"])):
        label = r.get("label") or r.get("method")
        if label not in labels:
            labels.append(label)
        if counts_for_set_metrics(r):
            loaded.append((r, label, *load_features(r["sample_id"])))
            classes.update(loaded[-1][3])
    for r, label, arrays, meta in loaded:  # every key any record has: one that lacks it is counted as missing
        for key in classes:
            named = {n.split("/", 1)[1]: a for n, a in arrays.items() if n.startswith(f"{key}/")}
            if not named:
                why = _window_skip(r, key, classes.get(key))
                if why:
                    skipped[label][key][why] += 1
                else:
                    missing[label][key] += 1
                continue
            for n, a in named.items():
                stacks[label][key][n].append(a)
    keys = sorted(classes)
    if not keys:
        return pd.DataFrame(), {}
    rows, notes = {}, {}
    for label in labels:
        row, notes = _set_metric_row(keys, classes, stacks[label], missing[label], skipped[label])
        rows[label] = {**row, **notes}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "label"
    return frame, notes


def _set_metric_row(keys: list[str], classes: dict[str, str], stacks: dict, missing: dict, skipped: dict):
    """One label's set-metric values from its stacked features, and their warnings (samples without features,
    samples a frame window skipped)."""
    row: dict[str, Any] = {}
    notes: dict[str, str] = {}
    for key in keys:
        stacked = {n: np.stack(v) for n, v in stacks[key].items()}
        values, key_notes = _load_class(classes[key]).from_features(stacked) if stacked else \
            _empty_values(classes[key])
        suffix = split_window(key)[1]  # a frame window's set metric: fvd[1:] (eval/windows.py)
        row.update({k + suffix: float(v) for k, v in values.items()})
        notes.update({f"{k}{suffix}_warning": v for k, v in key_notes.items()})
        if missing[key]:
            notes[f"{key}_warning"] = (f"{missing[key]} successful samples have no stored {key} features "
                                       f"and are left out (rerun the run to add them); " + notes.get(f"{key}_warning", ""))
        if skipped[key]:
            notes[f"{key}_warning"] = "; ".join(f"{n} sample(s) skipped: {why}" for why, n in
                                                skipped[key].items()) + "; " + notes.get(f"{key}_warning", "")
    return row, notes


def _window_skip(record: dict, key: str, cls_path: Optional[str]) -> Optional[str]:
    """Why ``record`` has no features for the frame-window set metric ``key`` (``fvd[1:]``): the reason it recorded
    in ``set_skipped`` for one of the metric's columns (a window shorter than the metric needs); None otherwise."""
    suffix = split_window(key)[1]
    if not suffix or not cls_path:
        return None
    skipped = record.get("set_skipped") or {}
    return next((skipped[n + suffix] for n in _load_class(cls_path).names if n + suffix in skipped), None)


def _empty_values(cls_path: str) -> tuple[dict[str, float], dict[str, str]]:
    cls = _load_class(cls_path)
    return {n: float("nan") for n in cls.names}, {n: "no successful sample to compute it from" for n in cls.names}


def read_protocol(run_dir: Path) -> dict:
    """The run's protocol (what every metric means), from its own and its shards' protocol.json; warnings dropped."""
    protocol: dict = {}
    for p in [run_dir / "protocol.json", *sorted((run_dir / "shards").glob("*/protocol.json"))]:
        if p.is_file():
            protocol.update(json.loads(p.read_text()))
    return {k: v for k, v in protocol.items() if not k.endswith("_warning")}


def write_run_tables(run_dir: Path, records: list[dict], protocol: dict, set_df: pd.DataFrame,
                     set_notes: dict) -> dict[str, pd.DataFrame]:
    """The run's tables, set_metrics.csv and protocol.json, each written atomically."""
    tables = write_tables(records_to_frame(records), run_dir, protocol, set_df)
    from videoshop_bench.eval.judge_agreement import judge_prefixes, write_judge_agreement  # two VLM judges or more: agreement

    write_judge_agreement(run_dir, tables["results"], judge_prefixes(tables["results"].columns))
    if not set_df.empty:
        atomic_write_text(run_dir / "set_metrics.csv", to_safe_csv(set_df, index=True))
    atomic_write_text(run_dir / "protocol.json", json.dumps(protocol | set_notes, indent=1, default=str))
    return tables


def merge_run(run_dir: str | Path, expected: Optional[dict[str, str]] = None) -> dict[str, pd.DataFrame]:
    """Merge every record under ``run_dir/samples`` into ``run_dir``'s tables (see the module docstring)."""
    run_dir = Path(run_dir)
    store = ResultStore(run_dir)
    records = list(store.records())
    if not records:
        raise FileNotFoundError(f"{run_dir}: no sample records under {store.samples} (is this a run folder?)")
    set_df, set_notes = set_metric_frame(records, store.load_features, expected)
    protocol = read_protocol(run_dir) | skip_protocol(records)  # skip counts over the union of the shards' records
    tables = write_run_tables(run_dir, records, protocol, set_df, set_notes)
    from .gallery import write_gallery  # the shards wrote each sample's media
    from .plots import write_plots, write_time_and_cost_plots


    write_gallery([run_dir], run_dir / "gallery.html", title=f"videoshop-bench: {run_dir.name}")
    write_plots(tables, run_dir)
    write_time_and_cost_plots([run_dir], tables["summary"], run_dir, protocol)
    log.info("merged %d records into %s\n%s", len(records), run_dir / "summary.md",
             with_intervals(tables["summary"]).to_string(index=False))
    return tables


def combine_runs(job_dirs: list[Path], out_dir: Path, paper_table: str | None = None) -> dict[str, pd.DataFrame]:
    """Concatenate the records of several runs and write combined_* tables into ``out_dir``; with ``paper_table``
    (e.g. ``table2``) also ``combined_vs_paper.{csv,md}``: ours beside the paper's numbers.

    Set metrics (FVD) are computed per run from the features stored with its records (so a run written by
    several shards or workers counts all its samples); a sharded run's own tables are merged first.
    """
    records, set_frames, protocol = [], [], {}
    for d in dict.fromkeys(Path(p) for p in job_dirs):  # shards of one config share a folder: once each
        if (d / "shards").is_dir():
            merge_run(d)
        store = ResultStore(d)
        run_records = list(store.records())
        records.extend(run_records)
        set_df, _ = set_metric_frame(run_records, store.load_features)
        if set_df.empty and (d / "set_metrics.csv").is_file():  # a run from before features were stored
            set_df = pd.read_csv(d / "set_metrics.csv", index_col="label")
        if not set_df.empty:
            set_frames.append(set_df)
        protocol.update(read_protocol(d))
    set_df = pd.concat(set_frames) if set_frames else None
    tables = write_tables(records_to_frame(records), out_dir, protocol, set_df, prefix="combined_")
    log.info("combined table of %d runs: %s\n%s", len(job_dirs), out_dir / "combined_summary.md",
             with_intervals(tables["summary"]).to_string(index=False))
    if paper_table:
        from .paper import write_paper_comparison

        summary = pd.read_csv(out_dir / "combined_summary.csv")
        vs = write_paper_comparison(summary, paper_table, out_dir)
        tables["vs_paper"] = vs
        log.info("ours / paper / difference (%s): %s\n%s", paper_table, out_dir / "combined_vs_paper.md",
                 vs.to_string(index=False))
    return tables


def combine_for_task(task: Optional[str], job_dirs: list[Path], out_dir: Path) -> None:
    """The task's own combination of a multirun's jobs (``Task.combine``, e.g. first_frame_editors' table and plot
    over editors), after the combined tables; nothing for a task without one."""
    from .task_registry import TASKS

    if isinstance(task, str) and task in TASKS and TASKS.get(task).combine:
        _load_class(TASKS.get(task).combine)(list(job_dirs), Path(out_dir))


def sweep_task(sweep_dir: str | Path) -> Optional[str]:
    """The task of the multirun in ``sweep_dir`` (its multirun.yaml, written by Hydra), None when unknown."""
    import yaml

    path = Path(sweep_dir) / "multirun.yaml"
    try:
        return (yaml.safe_load(path.read_text()) or {}).get("task")
    except (OSError, yaml.YAMLError):
        return None


def sweep_run_dirs(sweep_dir: str | Path) -> list[Path]:
    """The run folders of a multirun's jobs, as each job recorded it in ``<sweep dir>/.jobs/<job num>.json``."""
    jobs = Path(sweep_dir) / ".jobs"
    found = sorted(jobs.glob("*.json"), key=lambda p: int(p.stem) if p.stem.isdigit() else -1) if jobs.is_dir() else []
    return list(dict.fromkeys(Path(json.loads(p.read_text())["output_dir"]) for p in found))


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m videoshop_bench.experiments.merge", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="*", metavar="RUN_DIR", help="run folder(s) holding samples/<id>/record.json")
    parser.add_argument("--sweep", metavar="SWEEP_DIR", help="a multirun's folder: merge its jobs' runs and write "
                                                             "its combined table")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run_dirs = [Path(d) for d in args.run_dirs] + (sweep_run_dirs(args.sweep) if args.sweep else [])
    if not run_dirs:
        parser.error("give RUN_DIR(s), or --sweep SWEEP_DIR of a multirun whose jobs have finished")
    for d in run_dirs:
        try:
            tables = merge_run(d)
        except FileNotFoundError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        s = tables["summary"]
        print(f"{d}: {int(s['n'].sum())} samples, {len(s)} label(s) -> {d / 'summary.md'}")
    if args.sweep:
        combine_runs(run_dirs, Path(args.sweep))
        combine_for_task(sweep_task(args.sweep), run_dirs, Path(args.sweep))
        print(f"combined table of {len(run_dirs)} runs -> {Path(args.sweep) / 'combined_summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
