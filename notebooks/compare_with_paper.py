# %% [markdown]
# # Reproduced numbers beside the paper's
# A notebook in percent format (open it with Jupyter + jupytext, VS Code, or run it as a script):
# `python notebooks/compare_with_paper.py [RESULTS_DIR]`. It reads a run's or a sweep's summary table
# (`summary.csv` or `combined_summary.csv`) and puts each metric next to the paper's Table 5 (or 2/3).
# The tests execute it on a tiny-model run: with random weights the numbers say nothing about the method.

# %%
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]) if "__file__" in globals() else "..")
from videoshop_bench.experiments.paper import compare_with_paper, paper_table, runtime_ratios  # noqa: E402

RESULTS = Path(sys.argv[1]) if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else Path("multirun/edit/ablations")
TABLE = "table5"

# %%
summary_file = next((RESULTS / n for n in ("combined_summary.csv", "summary.csv") if (RESULTS / n).is_file()), None)
if summary_file is None:
    raise SystemExit(f"no summary.csv or combined_summary.csv in {RESULTS}: run e.g. `python run.py experiment=ablations` first")
summary = pd.read_csv(summary_file)
print(paper_table(TABLE).to_string(index=False))

# %%
comparison = compare_with_paper(summary, TABLE)
print(comparison.pivot_table(index="metric", columns="paper_row", values=["ours", "paper"]).round(2).to_string())
protocols = summary["protocol"].unique() if "protocol" in summary else []
print(f"\n{len(protocols)} protocol(s) in these results; the paper's backbones are ViT CLIP, RAFT, I3D, TIFA.")

# %% [markdown]
# Table 4's runtime column: seconds per sample as a multiple of Videoshop's (when the results hold a videoshop row).

# %%
if "seconds" in summary and summary.get("method", summary["label"]).astype(str).str.startswith("videoshop").any():
    print(runtime_ratios(summary).round(3).to_string(index=False))
