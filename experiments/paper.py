"""The paper's reported numbers (Tables 2-5, transcribed in experiments/paper_numbers/) beside reproduced ones."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from videoshop_bench.eval.registry import set_columns

from .methods import paper_row_names

NUMBERS = Path(__file__).resolve().parent / "paper_numbers"
TABLES = {"table2": "table2_magicbrush.csv", "table3": "table3_expert.csv", "table5": "table5_ablation_10videos.csv",
          "table4": "table4_human_eval_runtime.csv"}


def row_methods(summary: pd.DataFrame) -> pd.Series:
    """Each summary row's method (its ``method`` column; a summary from before it had one: the row's label)."""
    return summary["method" if "method" in summary else "label"].astype(str)


def paper_table(name: str) -> pd.DataFrame:
    """One of the paper's tables as printed (CLIP, TIFA, SSIM, CLIP_TC x100; Flow in px; FVD x1)."""
    return pd.read_csv(NUMBERS / TABLES[name])


def compare_with_paper(summary: pd.DataFrame, table: str = "table5") -> pd.DataFrame:
    """Long table: for each method row the paper reports and each metric, ours next to the paper's and the gap."""
    paper = paper_table(table).set_index("method")
    rows = []
    for (_, r), method in zip(summary.iterrows(), row_methods(summary)):
        name = paper_row_names().get(method)
        if name is None or name not in paper.index:
            continue
        for m in set_columns("paper"):
            if m in r.index:
                ours, theirs = float(r[m]), float(paper.loc[name, m])
                rows.append({"label": r["label"], "paper_row": name, "metric": m, "ours": ours, "paper": theirs,
                             "ours_minus_paper": ours - theirs})
    return pd.DataFrame(rows)


def runtime_ratios(summary: pd.DataFrame, reference: str = "videoshop") -> pd.DataFrame:
    """Table 4's runtime column: each method's mean seconds per sample as a multiple of ``reference``'s.

    ``summary``: a run's or sweep's summary table (columns ``label``, ``method``, ``seconds``). The paper's multiple
    (``execution_time_multiple_of_videoshop``) is put beside ours where it reports the method (BDIA, Pix2Video, RAVE); the
    paper timed each baseline's own code; ours times every method on the same machine (the Videoshop-family methods
    also on the same video model; Pix2Video and RAVE on their own image models, as in the paper).
    """
    methods = row_methods(summary)
    ref = summary.loc[methods == reference, "seconds"]
    if ref.empty:
        raise ValueError(f"runtime_ratios: no '{reference}' row in the summary (labels: {list(summary['label'])})")
    paper = paper_table("table4").set_index("baseline")["execution_time_multiple_of_videoshop"]
    out = pd.DataFrame({"label": summary["label"], "seconds": summary["seconds"],
                        "multiple_of_videoshop": summary["seconds"] / float(ref.iloc[0])})
    rows = paper_row_names()
    out["paper_multiple"] = [float(paper[rows[m]]) if rows.get(m) in paper.index else float("nan") for m in methods]
    if "nfe" in summary:
        out["nfe"] = summary["nfe"]
    return out.reset_index(drop=True)


def paper_comparison_table(summary: pd.DataFrame, table: str) -> pd.DataFrame:
    """One table per paper table: a row per method the paper reports (in the paper's order), and per metric a cell
    ``ours / paper / ours - paper``; then Table 4's runtime column from the same runs: mean seconds, NFE, seconds
    as a multiple of Videoshop's (ours and the paper's). Methods the summary lacks are listed with empty cells.
    """
    paper = paper_table(table).set_index("method")
    by_row = {}
    for (_, r), method in zip(summary.iterrows(), row_methods(summary)):
        name = paper_row_names().get(method)
        if name is not None and name not in by_row:
            by_row[name] = r
    ratios = None
    if "seconds" in summary and (row_methods(summary) == "videoshop").any():
        ratios = runtime_ratios(summary).set_index("label")
    t4 = paper_table("table4").set_index("baseline")["execution_time_multiple_of_videoshop"]
    rows = []
    for name in paper.index:
        r = by_row.get(name)
        row = {"method": name, "ours_label": "" if r is None else r["label"], "n": None if r is None else r.get("n")}
        for m in set_columns("paper"):
            theirs = float(paper.loc[name, m])
            ours = float(r[m]) if r is not None and m in r.index and pd.notna(r[m]) else float("nan")
            row[m] = (f"{ours:.2f}{_interval(r, m)} / {theirs:.2f} / {ours - theirs:+.2f}" if ours == ours
                      else f"- / {theirs:.2f} / -")
        row["seconds"] = float(r["seconds"]) if r is not None and "seconds" in r.index else float("nan")
        row["nfe"] = float(r["nfe"]) if r is not None and "nfe" in r.index else float("nan")
        row["x_videoshop"] = float(ratios.loc[r["label"], "multiple_of_videoshop"]) if ratios is not None and r is not None else float("nan")
        reference = name == paper_row_names()["videoshop"]  # Table 4's multiples are of Videoshop's time
        row["x_videoshop_paper"] = 1.0 if reference else float(t4.get(name, float("nan")))
        rows.append(row)
    return pd.DataFrame(rows)


def _interval(row: pd.Series, metric: str) -> str:
    """" [lo, hi]": our mean's bootstrap interval (the summary's ``<metric>_ci_lo/_ci_hi``), so a reader sees whether
    the paper's number lies inside it; empty when the summary has none."""
    lo, hi = row.get(f"{metric}_ci_lo"), row.get(f"{metric}_ci_hi")
    if lo is None or hi is None or pd.isna(lo) or pd.isna(hi):
        return ""
    return f" [{float(lo):.2f}, {float(hi):.2f}]"


def write_paper_comparison(summary: pd.DataFrame, table: str, out_dir: Path) -> pd.DataFrame:
    """Write ``combined_vs_paper.{csv,md}`` (paper_comparison_table) into ``out_dir``; returns the table."""
    df = paper_comparison_table(summary, table)
    out_dir = Path(out_dir)
    df.to_csv(out_dir / "combined_vs_paper.csv", index=False)
    tiny = "protocol" in summary and summary["protocol"].astype(str).str.contains("tiny").any()
    note = (f"Paper {table.replace('table', 'Table ')}: each metric cell is ours [its bootstrap interval over our "
            "samples, tables.confidence] / paper / ours - paper "
            "(CLIP, TIFA, SSIM, CLIP_TC x100; Flow in px; FVD). x_videoshop: mean seconds per sample as a multiple of "
            "Videoshop's (paper: Table 4, each baseline's own code). Metric protocols: combined_summary.md."
            + (" TINY stand-in backbones/models: the numbers say nothing about the methods." if tiny else ""))
    (out_dir / "combined_vs_paper.md").write_text(note + "\n\n" + df.to_markdown(index=False, floatfmt=".2f") + "\n")
    return df
