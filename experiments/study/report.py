"""``task=study_analyze``: every table, plot and statement of a study's analysis, written into the study folder.

Files: ``table4_human.{csv,md,png}`` (Table 4's left half beside the paper's), ``agreement.csv`` (Krippendorff's
alpha), ``metrics_vs_people.{csv,md,png}``, ``raters.csv`` (checks and exclusions), ``votes.csv`` (every vote),
``analysis.json`` (rules and counts) and ``report.html`` (all of it on one page, linked from the gallery).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .analysis import agreement_table, kept_pair_votes, preference_table, rater_checks
from .metric_agreement import LOWER_IS_BETTER, metric_agreement_table, pair_scores
from .votes_io import EXPORT_COLUMNS, vote_rows

REPORT = "report.html"


def rules_text(tie_rule: str, max_rate: float, n_boot: int, confidence: float) -> str:
    tie = "a tie counts 1/2 for each side" if tie_rule == "half" else "ties are left out"
    return (f"Share of votes preferring the reference ({tie}); {confidence:.0%} percentile-bootstrap interval over "
            f"raters and pairs (crossed, {n_boot} draws); raters failing more than {max_rate:.0%} of their attention "
            f"checks are excluded (raters without checks are kept); agreement: Krippendorff's alpha, nominal.")


def _wide_markdown(t4: pd.DataFrame, questions: Sequence[str]) -> str:
    rows = {}
    for _, r in t4.iterrows():
        row = rows.setdefault(r["baseline"], {"baseline": r["baseline"], "label": r["label"]})
        ours = ("-" if pd.isna(r["pref_reference_pct"]) else
                f"{r['pref_reference_pct']:.1f} [{r['ci_low_pct']:.1f}, {r['ci_high_pct']:.1f}]")
        theirs = "-" if pd.isna(r["paper_pct"]) else f"{r['paper_pct']:.2f}"
        diff = "-" if pd.isna(r["ours_minus_paper"]) else f"{r['ours_minus_paper']:+.1f}"
        row[r["question"]] = f"{ours} / {theirs} / {diff}"
        row[f"n ({r['question']})"] = f"{r['n_votes']} votes, {r['n_pairs']} pairs, {r['n_raters']} raters"
    return pd.DataFrame(list(rows.values())).to_markdown(index=False)


def plot_table4(t4: pd.DataFrame, questions: Sequence[str], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(questions), figsize=(5.2 * len(questions), 0.5 * t4["baseline"].nunique() + 1.6),
                             squeeze=False, sharey=True)
    for ax, q in zip(axes[0], questions):
        d = t4[t4["question"] == q].reset_index(drop=True)
        y = np.arange(len(d))[::-1]
        err = np.vstack([d["pref_reference_pct"] - d["ci_low_pct"], d["ci_high_pct"] - d["pref_reference_pct"]])
        ax.barh(y, d["pref_reference_pct"], xerr=np.nan_to_num(err), color="#2f6fde", alpha=.8, capsize=3,
                label="ours (95% CI)")
        ax.scatter(d["paper_pct"], y, marker="D", color="#d1495b", zorder=3, label="paper")
        ax.axvline(50, color="grey", lw=.8, ls="--")
        ax.set_yticks(y, d["baseline"])
        ax.set_xlim(0, 103)
        ax.set_title(q, fontsize=10)
        ax.set_xlabel("% of votes preferring the reference")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.legend(handles, labels, loc="upper center", ncol=2, fontsize=8, frameon=False)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_metric_agreement(ma: pd.DataFrame, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    questions = list(dict.fromkeys(ma["question"]))
    fig, axes = plt.subplots(1, max(1, len(questions)), figsize=(5.2 * max(1, len(questions)),
                                                                   0.32 * ma["metric"].nunique() + 1.6),
                             squeeze=False, sharey=True)
    for ax, q in zip(axes[0], questions):
        d = ma[ma["question"] == q].reset_index(drop=True)
        y = np.arange(len(d))[::-1]
        err = np.vstack([d["agreement_pct"] - d["ci_low_pct"], d["ci_high_pct"] - d["agreement_pct"]])
        ax.barh(y, d["agreement_pct"], xerr=np.nan_to_num(err), color="#3a8d5c", alpha=.8, capsize=2)
        ax.axvline(50, color="grey", lw=.8, ls="--")
        ax.set_yticks(y, d["metric"])
        ax.set_xlim(0, 103)
        ax.set_title(f"{q}: metric agrees with the human majority", fontsize=9)
        ax.set_xlabel("% of pairs (95% CI); dashed: chance")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def analyze_study(study_dir: str | Path, manifest: dict, votes: list[dict], tie_rule: str = "half",
                  max_check_failure_rate: float = 0.25, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0,
                  lower_is_better: Sequence[str] = LOWER_IS_BETTER,
                  exclude_raters: Sequence[str] = ()) -> dict[str, pd.DataFrame]:
    """Analyse ``votes`` (db.all_votes) of the study; write every file into ``study_dir``; return the tables.
    ``exclude_raters``: rater ids left out by hand (e.g. crowd ids the platform does not know), counted."""
    out = Path(study_dir)
    rows = vote_rows(manifest, votes)
    df = pd.DataFrame(rows, columns=list(EXPORT_COLUMNS))
    df.to_csv(out / "votes.csv", index=False)
    n_by_hand = int(df["rater_id"].isin(set(exclude_raters)).sum())
    df = df[~df["rater_id"].isin(set(exclude_raters))]
    if df.empty:
        raise ValueError(f"study.dir={out}: no votes yet (serve the study or import votes first)")
    questions, baselines = list(manifest["questions"]), list(manifest["baselines"])
    raters = rater_checks(df, max_check_failure_rate)
    kept = kept_pair_votes(df, raters, tie_rule)
    t4 = preference_table(kept, baselines, questions, n_boot, confidence, seed)
    agree = agreement_table(kept, questions)
    trials = {t["id"]: t for t in manifest["trials"]}
    ma = metric_agreement_table(pair_scores(kept, trials, lower_is_better), n_boot, confidence, seed)
    rules = rules_text(tie_rule, max_check_failure_rate, n_boot, confidence)
    counts = {"votes": len(df), "pair_votes_kept": len(kept), "raters": len(raters),
              "raters_excluded": int(raters["excluded"].sum()), "raters_without_checks": int((raters["checks"] == 0).sum()),
              "check_votes": int((df["check"] != "").sum()), "votes_of_raters_excluded_by_hand": n_by_hand,
              "ties": int((df["preferred"] == "tie").sum()),
              "left_out_of_design": manifest.get("left_out", {}).get("n_failed", 0)}
    t4.to_csv(out / "table4_human.csv", index=False)
    agree.to_csv(out / "agreement.csv", index=False)
    ma.to_csv(out / "metrics_vs_people.csv", index=False)
    raters.to_csv(out / "raters.csv", index=False)
    head = (f"Table 4 (left half), reference: {manifest['reference']}. Cells: ours [95% CI] / paper / ours - paper "
            f"(% of votes preferring the reference). {rules} Raters: {counts['raters']}, excluded "
            f"{counts['raters_excluded']}, without checks {counts['raters_without_checks']}.")
    (out / "table4_human.md").write_text(head + "\n\n" + _wide_markdown(t4, questions) + "\n\nAgreement:\n\n"
                                         + agree.to_markdown(index=False, floatfmt=".3f") + "\n")
    (out / "metrics_vs_people.md").write_text(
        "Agreement of each automatic metric with the human majority per pair (%, 95% bootstrap CI over pairs) and "
        f"Kendall's tau-b over pairs. Lower is better for: {', '.join(lower_is_better)}.\n\n"
        + ma.to_markdown(index=False, floatfmt=".2f") + "\n")
    plot_table4(t4, questions, out / "table4_human.png")
    if not ma.empty:
        plot_metric_agreement(ma, out / "metrics_vs_people.png")
    (out / "analysis.json").write_text(json.dumps({"rules": rules, "tie_rule": tie_rule,
                                                   "max_check_failure_rate": max_check_failure_rate,
                                                   "n_boot": n_boot, "confidence": confidence, "counts": counts},
                                                  indent=1))
    write_report_page(out, manifest, head, t4, agree, ma)
    return {"table4_human": t4, "agreement": agree, "metrics_vs_people": ma, "raters": raters}


def write_report_page(out: Path, manifest: dict, head: str, t4: pd.DataFrame, agree: pd.DataFrame,
                      ma: pd.DataFrame) -> Path:
    """``report.html``: the study's tables and plots on one self-contained page (relative paths)."""
    e = html.escape
    imgs = "".join(f'<img src="{p}" alt="{p}" style="max-width:100%">' for p in
                   ("table4_human.png", "metrics_vs_people.png") if (out / p).is_file())
    page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{e(manifest["name"])}: human study'
            f'</title></head><body style="font-family:sans-serif;max-width:1200px;margin:auto">'
            f'<h1>Human study: {e(manifest["name"])}</h1><p>{e(head)}</p>{imgs}<h2>Table 4, left half</h2>'
            f'{t4.to_html(index=False, float_format="%.2f")}<h2>Inter-rater agreement</h2>'
            f'{agree.to_html(index=False, float_format="%.3f")}<h2>Metrics against people</h2>'
            f'{ma.to_html(index=False, float_format="%.2f")}<p>Files: table4_human.csv, metrics_vs_people.csv, '
            f'agreement.csv, raters.csv, votes.csv, analysis.json</p></body></html>')
    (out / REPORT).write_text(page)
    return out / REPORT
