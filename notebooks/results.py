# %% [markdown]
# # Reading a results folder
# A notebook in percent format (Jupyter + jupytext, VS Code, or `python notebooks/results.py RESULTS_DIR`). It reads a
# run's or a sweep's tables (`summary.csv`/`combined_summary.csv`, `results.csv`, `by_edit_type.csv`), lists the
# failed and skipped samples with their one-line reasons, and draws the plots the runner writes (the paper's metrics
# per method, per-edit-type bars). Produce a folder first, e.g. `python run.py` or `python run.py experiment=ablations`.

# %%
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]) if "__file__" in globals() else "..")
from videoshop_bench.experiments.plots import write_plots  # noqa: E402
from videoshop_bench.eval.registry import column_order  # noqa: E402

RESULTS = Path(sys.argv[1]) if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else Path(
    "outputs/edit/synthetic/toy/videoshop")
prefix = "combined_" if (RESULTS / "combined_summary.csv").is_file() else ""
if not (RESULTS / f"{prefix}summary.csv").is_file():
    raise SystemExit(f"no summary.csv or combined_summary.csv in {RESULTS}: run `python run.py` first")

# %% [markdown]
# ## The summary: one row per method, the paper's metrics first

# %%
summary = pd.read_csv(RESULTS / f"{prefix}summary.csv")
shown = ["label"] + [m for m in column_order() if m in summary] + [c for c in ("n", "n_failed", "n_skipped", "seconds")
                                                                 if c in summary]
print(summary[shown].round(3).to_string(index=False))

# %% [markdown]
# ## Per sample: what failed, what could not be scored, and why

# %%
results = pd.read_csv(RESULTS / f"{prefix}results.csv")
failed = results[results["status"] != "ok"] if "status" in results else results.iloc[:0]
print(f"{len(results)} samples, {len(failed)} failed")
if len(failed):
    print(failed[["label", "sample_id", "error"]].to_string(index=False))
if "skipped" in results and results["skipped"].notna().any():
    print(results.loc[results["skipped"].notna(), ["label", "sample_id", "skipped"]].to_string(index=False))

# %% [markdown]
# ## Plots (also written by the runner next to the tables, and logged to W&B)

# %%
tables = {"summary": summary}
if (RESULTS / f"{prefix}by_edit_type.csv").is_file():
    tables["by_edit_type"] = pd.read_csv(RESULTS / f"{prefix}by_edit_type.csv")
plots = write_plots(tables, RESULTS, prefix=f"notebook_{prefix}")
for name, path in plots.items():
    print(name, "->", path)
