"""The paper's reported numbers (Tables 2-5, transcribed in experiments/paper_numbers/) beside reproduced ones."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .tables import PAPER_ORDER

NUMBERS = Path(__file__).resolve().parent / "paper_numbers"
TABLES = {"table2": "table2_magicbrush.csv", "table3": "table3_expert.csv", "table5": "table5_ablation_10videos.csv",
          "table4": "table4_human_eval_runtime.csv"}
# our method labels -> the paper's row names
ROW_NAMES = {"videoshop": "Videoshop", "videoshop_no_norm": "- Norm.", "videoshop_no_rescale": "- Rescaling",
             "videoshop_no_extrapolation": "- Extrapolation", "videoshop_no_threshold": "- Threshold",
             "svd_no_source": "SVD (no src. vid.)", "bdia": "BDIA", "pix2video": "Pix2Video", "rave": "RAVE"}


def paper_table(name: str) -> pd.DataFrame:
    """One of the paper's tables as printed (CLIP, TIFA, SSIM, CLIP_TC x100; Flow in px; FVD x1)."""
    return pd.read_csv(NUMBERS / TABLES[name])


def compare_with_paper(summary: pd.DataFrame, table: str = "table5") -> pd.DataFrame:
    """Long table: for each method row the paper reports and each metric, ours next to the paper's and the gap."""
    paper = paper_table(table).set_index("method")
    rows = []
    for _, r in summary.iterrows():
        name = ROW_NAMES.get(str(r.get("method", r["label"])).split("[")[0], None)
        if name is None or name not in paper.index:
            continue
        for m in PAPER_ORDER:
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
    methods = summary.get("method", summary["label"]).astype(str).str.split("[").str[0]
    ref = summary.loc[methods == reference, "seconds"]
    if ref.empty:
        raise ValueError(f"runtime_ratios: no '{reference}' row in the summary (labels: {list(summary['label'])})")
    paper = paper_table("table4").set_index("baseline")["execution_time_multiple_of_videoshop"]
    out = pd.DataFrame({"label": summary["label"], "seconds": summary["seconds"],
                        "multiple_of_videoshop": summary["seconds"] / float(ref.iloc[0])})
    out["paper_multiple"] = [float(paper[ROW_NAMES[m]]) if ROW_NAMES.get(m) in paper.index else float("nan")
                             for m in methods]
    if "nfe" in summary:
        out["nfe"] = summary["nfe"]
    return out.reset_index(drop=True)
