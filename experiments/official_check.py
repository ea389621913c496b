"""Run a baseline beside its official implementation on identical tiny weights and compare them stage by stage.

    python -m videoshop_bench.experiments.official_check pix2video --official /path/to/pix2video-clone [--config square --config 16:9]

For METHOD (the modules under ``experiments/official/``) this
1. creates once (cached under ``.cache/official_venvs/METHOD``, rebuilt when the requirements file changes) a side
   virtual environment from ``experiments/official/requirements/METHOD.txt`` (the official pins, CPU adaptations
   commented), always with ``torch==2.13.0`` as a constraint;
2. writes the project's tiny random components (one seed) in the layout the official side loads and prints the
   sha256 of every file: both sides read these very files;
3. for each input configuration (the method's native size; the paper's 16:9 frames), runs the official code (imported from
   DIR by ``experiments/official/sides/METHOD_side.py`` in the side environment, monkeypatches listed) and the
   project's method on the same input and settings, and prints one table: stage | max abs | max rel | first
   divergence. ``--out DIR`` also writes the tables (markdown) and the checksums (JSON).

The official clone is never copied into this repository. Exit status: 0 when every stage compared (whatever the
differences: they are reported, and classified in docs/baselines.md), 2 for bad arguments or a failing side.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("pix2video", "fatezero", "rave", "anyv2v", "spacetime")
VENV_ROOT = ROOT / ".cache" / "official_venvs"
TORCH_PIN = "torch==2.13.0"


def requirements_file(method: str) -> Path:
    return ROOT / "experiments" / "official" / "requirements" / f"{method}.txt"


def side_script(method: str) -> Path:
    return ROOT / "experiments" / "official" / "sides" / f"{method}_side.py"


def venv_python(method: str, root: Path = VENV_ROOT) -> Path:
    return root / method / "bin" / "python"


def ensure_venv(method: str, root: Path = VENV_ROOT, log=print) -> Path:
    """The side environment's python, creating/updating it when the requirements file's hash changed."""
    req = requirements_file(method)
    digest = hashlib.sha256(req.read_bytes()).hexdigest()
    env = root / method
    stamp = env / ".requirements-sha256"
    py = venv_python(method, root)
    if py.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return py
    log(f"[{method}] creating the side environment {env} from {req.relative_to(ROOT)} (once)")
    env.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as c:
        c.write(TORCH_PIN + "\n")
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-c", c.name, "-r", str(req)]
    subprocess.run(pip, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    stamp.write_text(digest)
    return py


def print_checksums(sums: dict[str, str], log=print) -> None:
    log("weights (sha256, both sides load these files):")
    for path, h in sums.items():
        log(f"  {h[:16]}  {path}")


def run_side(method: str, python: Path, official: Path, weights: Path, inputs: dict, work: Path) -> dict:
    """Run the official side in its environment; returns what it recorded (torch.load of its output)."""
    import torch

    inp, out = work / "inputs.pt", work / "official.pt"
    torch.save(inputs, inp)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    extra = list(getattr(importlib.import_module(f"videoshop_bench.experiments.official.{method}"), "SIDE_ARGS", []))
    extra = [a.format(root=ROOT) for a in extra] + list(inputs.get("side_flags", []))
    proc = subprocess.run([str(python), str(side_script(method)), "--official", str(official), "--weights",
                           str(weights), "--inputs", str(inp), "--out", str(out), *extra], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
        (work / "official_stderr.txt").write_text(proc.stderr)
        raise RuntimeError(f"official {method} failed: {tail} (full log: {work / 'official_stderr.txt'})")
    return torch.load(out, weights_only=False)


def check(method: str, official: Path, configs: list[str], out: Path | None, log=print) -> dict[str, str]:
    """Run every configuration; returns {config: markdown table}."""
    from videoshop_bench.experiments.official.compare import compare_stages, format_table, worst_float_rel

    mod = importlib.import_module(f"videoshop_bench.experiments.official.{method}")
    python = ensure_venv(method, log=log)
    work = Path(tempfile.mkdtemp(prefix=f"official_{method}_"))
    weights = work / "weights"
    sums = mod.write_weights(weights)
    print_checksums(sums, log)
    log(f"official: {official} (compared commit {mod.OFFICIAL_COMMIT}); official-side patches:")
    tables = {}
    for config in configs or list(mod.CONFIGS):
        inputs = mod.make_inputs(config)
        off = run_side(method, python, official, weights, inputs, work)
        if config == (configs or list(mod.CONFIGS))[0]:
            for p in off.get("patches", []):
                log(f"  - {p}")
            log("project-side patches:")
            for p in mod.PROJECT_PATCHES:
                log(f"  - {p}")
        for note in off.get("notes", []):
            log(f"  [{config}] official side: {note}")
        ours = mod.run_project(weights, inputs, off)
        st = mod.stages(ours, off)
        rows = compare_stages(st)
        table = format_table(rows, st)
        h, w = inputs["frames"].shape[1:3]
        head = (f"### {method}, {config} input ({h}x{w}, {len(inputs['frames'])} frames) vs official "
                f"{mod.OFFICIAL_COMMIT}: worst float stage {worst_float_rel(rows, st):.2e} relative")
        log("\n" + head + "\n" + table + "\n")
        tables[config] = head + "\n\n" + table
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{method}.md").write_text("\n\n".join(tables.values()) + "\n")
        (out / f"{method}_weights_sha256.json").write_text(json.dumps(sums, indent=2))
    return tables


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m videoshop_bench.experiments.official_check", description=__doc__.split("\n")[0])
    ap.add_argument("method", choices=METHODS)
    ap.add_argument("--official", required=True, help="clone of the official repository (commit in docs/baselines.md)")
    ap.add_argument("--config", action="append", default=[], help="input configuration (default: all of the method's)")
    ap.add_argument("--out", default=None, help="directory for the markdown tables and the weights' checksums")
    args = ap.parse_args(argv)
    official = Path(args.official)
    if not official.is_dir():
        print(f"official_check: --official {official}: no such directory (clone the official repository)",
              file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from videoshop import _compat  # noqa: F401  (torchvision shim)
    import torch

    torch.set_num_threads(1)
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # the .bin weights make diffusers log a failed safetensors lookup per model
    try:
        check(args.method, official.resolve(), args.config, Path(args.out) if args.out else None)
    except (RuntimeError, subprocess.CalledProcessError) as e:
        print(f"official_check: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
