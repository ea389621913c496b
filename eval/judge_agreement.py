"""Agreement between VLM judges that scored the same samples in one run (columns ``<prefix><column>``).

For every pair of judges and every judge column both wrote: the samples both scored (``n``), Pearson and Spearman
correlation, mean absolute difference, and for the binary FiVE columns (yes/no, multiple choice, union,
intersection: 0 or 100 per sample) the share of samples with the same verdict and Cohen's kappa (agreement beyond
chance). ``python -m videoshop_bench.eval.judge_agreement RUN_DIR/results.csv --judges "" api_`` prints the table; a run with
several ``vlm_judge`` metrics writes it as judge_agreement.csv / .md beside its results (experiments/merge.py
``write_run_tables``, for a finished run and for a merge of shards alike).
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .vlm_judge import EDITVERSE_COLUMNS, FIVE_COLUMNS

BINARY = ("five_yn", "five_mc", "five_union", "five_inter")


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa of two raters' labels: (p_o - p_e) / (1 - p_e), NaN when chance agreement is 1."""
    labels = np.union1d(a, b)
    p_o = float(np.mean(a == b))
    p_e = float(sum(np.mean(a == v) * np.mean(b == v) for v in labels))
    return (p_o - p_e) / (1 - p_e) if p_e < 1 else float("nan")


def _corr(fn, a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(fn(a, b)[0])


def judge_agreement(results: pd.DataFrame, prefixes: Sequence[str],
                    columns: Sequence[str] = FIVE_COLUMNS + EDITVERSE_COLUMNS) -> pd.DataFrame:
    """One row per (judge pair, column) present for both judges; judges are named by their column prefix."""
    rows = []
    for pa, pb in itertools.combinations(list(prefixes), 2):
        for c in columns:
            if pa + c not in results.columns or pb + c not in results.columns:
                continue
            both = results[[pa + c, pb + c]].apply(pd.to_numeric, errors="coerce").dropna()
            a, b = both[pa + c].to_numpy(float), both[pb + c].to_numpy(float)
            row = {"judge_a": pa or "(default)", "judge_b": pb or "(default)", "column": c, "n": len(a),
                   "pearson": _corr(stats.pearsonr, a, b), "spearman": _corr(stats.spearmanr, a, b),
                   "mean_abs_diff": float(np.mean(np.abs(a - b))) if len(a) else float("nan"),
                   "agreement": float("nan"), "cohen_kappa": float("nan")}
            if c in BINARY and len(a):
                row["agreement"], row["cohen_kappa"] = float(np.mean(a == b)), cohen_kappa(a, b)
            rows.append(row)
    return pd.DataFrame(rows, columns=["judge_a", "judge_b", "column", "n", "pearson", "spearman", "mean_abs_diff",
                                       "agreement", "cohen_kappa"])


def judge_prefixes(columns: Sequence[str]) -> list[str]:
    """The column prefixes of the judges whose columns a results table has (``five_acc`` -> "", ``api_five_acc``
    -> "api_"), in column order; a judge is recognised by any of its columns."""
    found: dict[str, None] = {}
    for c in columns:
        for base in FIVE_COLUMNS + EDITVERSE_COLUMNS:
            if str(c).endswith(base):
                found.setdefault(str(c)[: -len(base)], None)
    return list(found)


def write_judge_agreement(out_dir: str | Path, results: pd.DataFrame, prefixes: Sequence[str]) -> Optional[Path]:
    """judge_agreement.csv and .md in ``out_dir`` when the run has two judges or more; the csv's path or None."""
    if len(prefixes) < 2:
        return None
    table = judge_agreement(results, prefixes)
    out = Path(out_dir)
    table.to_csv(out / "judge_agreement.csv", index=False)
    (out / "judge_agreement.md").write_text("## Judge agreement\n\n" + table.to_markdown(index=False, floatfmt=".3f")
                                            + "\n")
    return out / "judge_agreement.csv"


def main(argv: Optional[list[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", help="a run's results.csv")
    p.add_argument("--judges", nargs="+", required=True, help='column prefixes, e.g. "" api_')
    a = p.parse_args(argv)
    print(judge_agreement(pd.read_csv(a.results), a.judges).to_markdown(index=False, floatfmt=".3f"))


if __name__ == "__main__":
    main()
