"""Every registered method's ``edit_hash`` (the resume hash, experiments/components.py) and, with ``--run``, a
digest of what it edits on the tiny stand-ins: to check that a refactor changes neither (issue 33, Build 1).

    python research/method_fingerprints.py                  # edit_hash per method, model=tiny, default dataset
    python research/method_fingerprints.py --run out.json   # also run each method on one tiny sample
    python research/method_fingerprints.py --compare a.json b.json

Runs against whatever code is first on the path, so the same script measures two checkouts:
``PYTHONPATH=/tmp/base python research/method_fingerprints.py --run base.json`` (written to work at 5954a90 too).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import sys
import tempfile
from pathlib import Path

CONF = str(Path(__file__).resolve().parents[1] / "conf")
RUN = ["model.num_frames=6", "method.num_inference_steps=6", "dataset.loader.num_samples=1", "logger=none",
       "metrics=none"]


def project(module: str):
    """``experiments.<module>`` of the checkout first on the path, under the install namespace or (a checkout from
    before it, e.g. 5954a90) the old top-level name."""
    try:
        return importlib.import_module(f"videoshop_bench.{module}")
    except ModuleNotFoundError:
        return importlib.import_module(module)


def compose(conf: str, *overrides: str):
    from hydra import compose as hydra_compose, initialize_config_dir

    with initialize_config_dir(config_dir=conf, version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))


def frames_digest(out: Path) -> dict[str, str]:
    """sha256 of every sample's edited frames (uint8 array bytes and shape)."""
    from videoshop.video_io import read_video

    digests = {}
    for d in sorted((out / "samples").iterdir()):
        frames = read_video(d / "edited")[0]
        digests[d.name] = hashlib.sha256(frames.tobytes() + str(frames.shape).encode()).hexdigest()[:16]
    return digests


def fingerprints(conf: str, run: bool) -> dict[str, dict]:
    edit_hash = project("experiments.components").edit_hash  # old-name-ok: the namespace prefix is added above
    METHODS = project("experiments.methods").METHODS  # old-name-ok

    out: dict[str, dict] = {}
    for m in METHODS.names():
        if not (Path(conf) / "method" / f"{m}.yaml").is_file():
            continue
        cfg = compose(conf, "model=tiny", f"method={m}", "paths.output=/tmp/fingerprints", "paths.cache=/tmp/fp-cache")
        out[m] = {"edit_hash": edit_hash(cfg)}
        if run:
            Runner = project("experiments.runner").Runner  # old-name-ok
            with tempfile.TemporaryDirectory() as tmp:
                cfg = compose(conf, "model=tiny", f"method={m}", f"paths.output={tmp}", f"paths.cache={tmp}/cache", *RUN)
                Runner(cfg).run()
                out[m]["frames"] = frames_digest(Path(tmp))
        print(m, json.dumps(out[m]), flush=True)
    return out


def compare(a: dict, b: dict) -> int:
    """Print the methods whose hash or frames differ; 0 when none does."""
    bad = 0
    for m in sorted(set(a) | set(b)):
        x, y = a.get(m, {}), b.get(m, {})
        for key in ("edit_hash", "frames"):
            if x.get(key) != y.get(key):
                bad += 1
                print(f"{m}: {key} differs: {x.get(key)} -> {y.get(key)}")
    print("identical" if not bad else f"{bad} difference(s)")
    return int(bad > 0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", metavar="OUT", help="also edit one tiny sample per method; write everything to OUT")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"))
    p.add_argument("--conf", default=CONF)
    a = p.parse_args()
    if a.compare:
        return compare(*(json.loads(Path(f).read_text()) for f in a.compare))
    result = fingerprints(a.conf, run=bool(a.run))
    if a.run:
        Path(a.run).write_text(json.dumps(result, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
