"""The Hydra edge of the study: ``task=study_build | study_serve | study_analyze | study_import`` (conf/study/).

Each reads ``cfg.study`` and calls the library functions with plain arguments.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig, OmegaConf

from . import db
from .design import StudyError, build_study, load_manifest, read_tokens

log = logging.getLogger(__name__)


def _study(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg.study, resolve=True)


def _dir(s: dict) -> Path:
    if not s.get("dir"):
        raise StudyError("study.dir: missing; set study.dir=DIR (the study folder)")
    return Path(s["dir"])


def _db_url(s: dict) -> str:
    return s.get("db") or db.default_url(_dir(s))


def run_study_build(cfg: DictConfig, label: Optional[str] = None) -> dict:
    s = _study(cfg)
    runs = s.get("runs") or []
    if isinstance(runs, str):
        runs = [runs]
    if not runs:
        raise StudyError("study.runs: missing; set study.runs=[DIR,...] (run or multirun folders)")
    manifest = build_study(runs, _dir(s), reference=s["reference"], baselines=s.get("baselines"),
                           questions=s.get("questions"), instructions=s.get("instructions") or "",
                           trials_per_rater=s["trials_per_rater"], raters_per_pair=s["raters_per_pair"],
                           attention_rate=s["attention_rate"], seed=s.get("seed", cfg.seed),
                           lab_raters=s.get("lab_raters"), name=s.get("name") or _dir(s).name)
    link_galleries(runs, _dir(s))
    n_pairs = sum(not t.get("check") for t in manifest["trials"])
    print(f"study: {_dir(s)}: {n_pairs} pairs, {len(manifest['trials']) - n_pairs} attention checks, "
          f"{len(manifest['slots'])} rater slots; {manifest['left_out']['n_failed']} failed samples left out; "
          f"serve it with: python run.py task=study_serve study.dir={_dir(s)}")
    return manifest


def run_study_serve(cfg: DictConfig, label: Optional[str] = None) -> None:
    from .server import serve

    s = _study(cfg)
    d = _dir(s)
    load_manifest(d)
    base = f"http://{s['host'] if s['host'] not in ('0.0.0.0', '::') else 'localhost'}:{s['port']}"
    tokens = read_tokens(d)
    print(f"study: serving {d} on {base} (votes: {_db_url(s)})")
    print(f"  admin page: {base}/admin?token=<{d / 'admin_token.txt'}>")
    print(f"  {len(tokens)} lab links: {base}/rate?token=<token> (tokens in {d / 'tokens.csv'})")
    print(f"  crowd link: {base}/rate?{s['crowd']['id_param']}={{{{%{s['crowd']['id_param']}%}}}}")
    serve(d, _db_url(s), s["host"], s["port"], admin_token=s.get("admin_token"), crowd_param=s["crowd"]["id_param"],
          completion_url=s["crowd"].get("completion_url"), allow_tie=s["allow_tie"])


def run_study_import(cfg: DictConfig, label: Optional[str] = None) -> dict:
    from .votes_io import import_votes

    s = _study(cfg)
    if not s.get("votes"):
        raise StudyError("study.votes: missing; set study.votes=FILE.csv")
    manifest = load_manifest(_dir(s))
    got = import_votes(db.open_db(_db_url(s)), manifest, s["votes"])
    for line in got["refused"]:
        print(f"refused: {line}")
    print(f"study: {s['votes']}: {got['rows']} rows, {got['added']} votes added, {got['duplicates']} already there, "
          f"{len(got['refused'])} refused")
    return got


def run_study_analyze(cfg: DictConfig, label: Optional[str] = None) -> dict:
    from .report import analyze_study

    s = _study(cfg)
    d = _dir(s)
    manifest = load_manifest(d)
    a = s["analysis"]
    tables = analyze_study(d, manifest, db.all_votes(db.open_db(_db_url(s))), tie_rule=a["tie_rule"],
                           max_check_failure_rate=a["max_check_failure_rate"], n_boot=a["n_boot"],
                           confidence=a["confidence"], seed=s.get("seed", cfg.seed),
                           lower_is_better=a["lower_is_better"], exclude_raters=a.get("exclude_raters") or ())
    print((d / "table4_human.md").read_text())
    print((d / "metrics_vs_people.md").read_text())
    from videoshop_bench.experiments.loggers import make_logger

    logger_cfg = OmegaConf.to_container(cfg.logger, resolve=True) if cfg.get("logger") else None
    try:  # W&B (offline by default) into the study folder, beside the tables
        logger = make_logger(logger_cfg, {"study": s}, default_dir=str(d))
        plots = {k: d / f"{k}.png" for k in ("table4_human", "metrics_vs_people") if (d / f"{k}.png").is_file()}
        logger.log_tables({f"study_{k}": v for k, v in tables.items()}, {}, plots)
        logger.finish()
    except Exception as e:  # noqa: BLE001  (the tables are written; a tracker failure is reported, not fatal)
        log.error("logger %s failed: %s", (logger_cfg or {}).get("name"), str(e).splitlines()[0] if str(e) else e)
    return tables


def link_galleries(runs, study_dir: Path) -> None:
    """Record the study in each results folder (``studies.json``) and rewrite its gallery, which links it."""
    import json
    import os

    from videoshop_bench.experiments.report import write_gallery

    from .design import run_dirs_under
    from .report import REPORT

    for r in runs:
        r = Path(r)
        path = r / "studies.json"
        try:
            known = json.loads(path.read_text()) if path.is_file() else []
        except ValueError:
            known = []
        rel = os.path.relpath(study_dir.resolve() / REPORT, r.resolve())
        if rel not in known:
            path.write_text(json.dumps(known + [rel], indent=1))
        if (r / "gallery.html").is_file():
            write_gallery(run_dirs_under(r), r / "gallery.html", title=f"videoshop-bench: {r.name}")
