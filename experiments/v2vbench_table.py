"""V2VBench's published leaderboard (experiments/paper_numbers/v2vbench_leaderboard.csv) beside our numbers.

    python -m videoshop_bench.experiments.v2vbench_table RUN_DIR/summary.csv [--out v2vbench_beside.md]

The leaderboard is V2VBench's 16 text-guided editors on its 50 videos x 3 prompts (24 frames, 512x512);
our rows are a run's summary means of the same metrics (metrics=v2vbench). Same protocol, different data: the
table puts the numbers on one scale, it is not a ranking on a shared dataset. Rows from tiny or random backbones are
refused (their values mean nothing).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

LEADERBOARD = Path(__file__).resolve().parent / "paper_numbers" / "v2vbench_leaderboard.csv"
# V2VBench's names for our columns, in its leaderboard's order (doc/leaderboard.md @ 20afc6f)
V2VBENCH_NAMES = {"aesthetic": "Frames Quality", "clip_consistency": "Semantic Consistency",
                  "dino_consistency": "Object Consistency", "dover": "Video Quality",
                  "clip_text": "Frames Text Alignment", "pickscore": "Frames Pick Score",
                  "viclip_text": "Video Text Alignment", "gmflow_motion": "Motion Alignment"}


def v2vbench_leaderboard() -> pd.DataFrame:
    """The 16 methods' published values (columns: category, method, then our metric keys)."""
    return pd.read_csv(LEADERBOARD)


def beside_v2vbench(summary: pd.DataFrame, label: str = "label",
                    protocols: Optional[dict[str, str]] = None) -> pd.DataFrame:
    """One table: V2VBench's rows (``source`` = "V2VBench") then each summary row (``source`` = "ours"), the metric
    columns in V2VBench's order; a metric we did not compute is NaN. ``protocols`` (metric -> protocol string, e.g.
    from a run's results) is checked: a metric computed with a tiny or random backbone raises ValueError."""
    for m, text in (protocols or {}).items():
        if m in V2VBENCH_NAMES and ("tiny random" in text or "RANDOM weights" in text):
            raise ValueError(f"{m}: computed with a tiny/random backbone ({text[:60]}...); not comparable")
    board = v2vbench_leaderboard().assign(source="V2VBench")
    ours = pd.DataFrame({"category": "ours", "method": summary[label].astype(str), "source": "ours"})
    for m in V2VBENCH_NAMES:
        ours[m] = summary[m].to_numpy(float) if m in summary else np.nan
    table = pd.concat([board, ours], ignore_index=True)
    return table[["source", "category", "method", *V2VBENCH_NAMES]]


def to_markdown(table: pd.DataFrame) -> str:
    """The table as Markdown, headed by V2VBench's metric names (3 decimals; '-' for a metric not computed)."""
    head = ["source", "method", *(V2VBENCH_NAMES[m] for m in V2VBENCH_NAMES)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in table.iterrows():
        vals = ["-" if pd.isna(r[m]) else f"{r[m]:.3f}" for m in V2VBENCH_NAMES]
        lines.append("| " + " | ".join([r["source"], r["method"], *vals]) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[list[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("summary", help="a run's summary.csv (or combined_summary.csv)")
    p.add_argument("--label", default="label", help="the column naming each row (default: label)")
    p.add_argument("--out", default=None, help="write Markdown here (default: print)")
    a = p.parse_args(argv)
    md = to_markdown(beside_v2vbench(pd.read_csv(a.summary), a.label))
    if a.out:
        Path(a.out).write_text(md)
    else:
        print(md, end="")


if __name__ == "__main__":
    main()
