"""The project installs under one import namespace (issue 33, Build 6): a wheel holds only ``videoshop`` and
``videoshop_bench`` at the top level, so it never shadows or overwrites another distribution's ``datasets``, ``eval``
... (Hugging Face ``datasets`` above all); the code imports its folders only through ``videoshop_bench.``."""

import ast
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

from videoshop_bench import SUBPACKAGES as FOLDERS  # the folders installed under the namespace

ROOT = Path(__file__).resolve().parents[1]
SIDES = ROOT / "experiments" / "official" / "sides"  # run in the official code's own venvs, import nothing of ours


def python_files():
    for top in ("run.py", "videoshop", "videoshop_bench", "notebooks", "tests", *FOLDERS):
        p = ROOT / top
        yield from ([p] if p.is_file() else (f for f in sorted(p.rglob("*.py")) if SIDES not in f.parents))


def test_no_module_imports_a_folder_by_its_bare_name():
    """A bare ``import eval`` beside ``import videoshop_bench.eval`` would load the module twice (two registries)."""
    bare = []
    for f in python_files():
        for node in ast.walk(ast.parse(f.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            bare += [f"{f.relative_to(ROOT)}:{node.lineno} imports {n}" for n in names if n.split(".")[0] in FOLDERS]
    assert not bare, bare


def _targets(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "_target_" and isinstance(v, str):
                yield v
            yield from _targets(v)
    elif isinstance(node, list):
        for v in node:
            yield from _targets(v)


def test_hydra_targets_name_the_namespace():
    wrong = []
    for f in sorted((ROOT / "conf").rglob("*.yaml")):
        for t in _targets(yaml.safe_load(f.read_text()) or {}):
            if t.split(".")[0] in FOLDERS:
                wrong.append(f"{f.relative_to(ROOT)}: _target_ {t}")
    assert not wrong, wrong


def test_pyproject_maps_every_package_folder():
    """A new sub-package must be listed in pyproject.toml, or the wheel silently lacks it."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {"videoshop_bench"}
    for top in ("videoshop", *FOLDERS):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT).as_posix().replace("/", ".")
            found.add(rel if top == "videoshop" else f"videoshop_bench.{rel}")
    assert set(tool["packages"]) == found
    assert tool["package-dir"] == {f"videoshop_bench.{f}": f for f in FOLDERS}


def test_hashes_ignore_the_namespace():
    """Runs saved before the namespace resume: their config hashes are unchanged (``_target_`` paths)."""
    from videoshop_bench.experiments.components import stable_hash

    old = {"method": {"_target_": "baselines.rave.RAVE", "steps": 3},  # old-name-ok
           "dataset": ["datasets.folder.FolderDataset"]}  # old-name-ok
    new = {"method": {"_target_": "videoshop_bench.baselines.rave.RAVE", "steps": 3},
           "dataset": ["videoshop_bench.datasets.folder.FolderDataset"]}
    assert stable_hash(old) == stable_hash(new) != stable_hash({**new, "seed": 1})


# --- the wheel beside another distribution named `datasets` ------------------------------------------------------

def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def standin_datasets_wheel(out: Path) -> Path:
    """A minimal wheel of a distribution called ``datasets`` whose top-level package ``datasets`` marks itself: the
    offline stand-in for Hugging Face ``datasets`` (what matters here is the top-level name it installs)."""
    files = {
        "datasets/__init__.py": b'"""stand-in for Hugging Face datasets"""\nTHIRD_PARTY = "hf-datasets-standin"\n'
                                b"def load_dataset(*a, **k):\n    return 'hf'\n",
        "datasets/arrow_dataset.py": b"class Dataset:\n    pass\n",
        "datasets-9.9.9.dist-info/METADATA": b"Metadata-Version: 2.1\nName: datasets\nVersion: 9.9.9\n",
        "datasets-9.9.9.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                          b"Tag: py3-none-any\n",
    }
    record = [_record_line(n, d) for n, d in files.items()] + ["datasets-9.9.9.dist-info/RECORD,,"]
    path = out / "datasets-9.9.9-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for n, d in files.items():
            z.writestr(n, d)
        z.writestr("datasets-9.9.9.dist-info/RECORD", "\n".join(record) + "\n")
    return path


@pytest.fixture(scope="module")
def source_copy(tmp_path_factory) -> Path:
    """A copy of this checkout (setuptools builds in the source tree: a copy keeps this one clean and keeps stale
    files of an old ``build/`` out)."""
    src = tmp_path_factory.mktemp("src") / "videoshop-bench"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "outputs", "multirun", ".cache", "build",
                                                             "*.egg-info", "__pycache__", ".pytest_cache", "wandb"))
    return src


@pytest.fixture(scope="module")
def project_wheel(tmp_path_factory, source_copy) -> Path:
    out, src = tmp_path_factory.mktemp("wheel"), source_copy
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
                    "--disable-pip-version-check", "-w", str(out)], check=True, capture_output=True, env=clean_env())
    (wheel,) = out.glob("videoshop_bench-*.whl")
    return wheel


def test_wheel_holds_only_its_own_top_level_names(project_wheel):
    with zipfile.ZipFile(project_wheel) as z:
        names = z.namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"videoshop", "videoshop_bench"}, tops
    # every folder is there, with the data the engine reads at run time
    for must in ("videoshop_bench/datasets/schema.py", "videoshop_bench/eval/fvd.py", "videoshop_bench/baselines/rave.py",
                 "videoshop_bench/experiments/runner.py", "videoshop_bench/research/train_toy.py",
                 "videoshop_bench/experiments/templates/gallery.html",
                 "videoshop_bench/experiments/paper_numbers/table2_magicbrush.csv",
                 "videoshop_bench/experiments/study/static/rate.html", "videoshop/assets/toy/MODEL_CARD.md"):
        assert must in names, must


def clean_env() -> dict:
    """This environment without PYTHONPATH: pip and python must see the venv's installed copy, not this checkout."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def install_beside(datasets_wheel: Path, project_wheel: Path, venv: Path) -> Path:
    """A fresh venv with ``datasets_wheel`` installed first and the project's wheel second (no dependencies: the
    test's own environment is appended after the venv's site-packages, so the venv's ``datasets`` comes first)."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, cwd=venv.parent)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True, env=clean_env()).stdout.strip())
    for wheel in (datasets_wheel, project_wheel):
        subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--disable-pip-version-check",
                        str(wheel)], check=True, capture_output=True, env=clean_env(), cwd=venv.parent)
    # after the installs (else pip would find the test environment's own editable copy and install nothing)
    (site / "zz_test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return py


IMPORT_BOTH = """
import json, datasets, importlib.metadata as md
import videoshop_bench.datasets.schema as schema, videoshop_bench.experiments.components as comp, videoshop
print(json.dumps({"datasets": datasets.__file__, "load_dataset": hasattr(datasets, "load_dataset"),  # old-name-ok
                  "schema": schema.__file__, "components": comp.__file__, "videoshop": videoshop.__file__,
                  "dist_files": sorted(str(f) for f in md.files("datasets") if f.suffix == ".py")}))
"""


def _import_both(py: Path, cwd: Path) -> dict:
    r = subprocess.run([str(py), "-c", IMPORT_BOTH], cwd=cwd, env=clean_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _check_beside(datasets_wheel, project_wheel, tmp_path):
    venv = tmp_path / "venv"
    py = install_beside(datasets_wheel, project_wheel, venv)
    with zipfile.ZipFile(datasets_wheel) as z:
        init_before = z.read("datasets/__init__.py")
    got = _import_both(py, tmp_path)
    site = Path(got["schema"]).parents[2]
    assert Path(got["datasets"]) == site / "datasets" / "__init__.py" and got["load_dataset"]
    assert (site / "datasets" / "__init__.py").read_bytes() == init_before  # not overwritten
    assert Path(got["schema"]) == site / "videoshop_bench" / "datasets" / "schema.py"
    assert Path(got["components"]).parent == site / "videoshop_bench" / "experiments"
    assert Path(got["videoshop"]).parent == site / "videoshop"
    assert all(f.startswith("datasets/") for f in got["dist_files"])  # pip still owns only its own files
    return got


def test_wheel_installs_beside_a_distribution_named_datasets(project_wheel, tmp_path):
    _check_beside(standin_datasets_wheel(tmp_path), project_wheel, tmp_path)


@pytest.mark.skipif(not os.environ.get("HF_DATASETS_WHEEL"),
                    reason="set HF_DATASETS_WHEEL to a Hugging Face datasets wheel (pip download datasets --no-deps) "
                           "and install its dependencies into this environment to run it beside the real one")
def test_wheel_installs_beside_hugging_face_datasets(project_wheel, tmp_path):
    got = _check_beside(Path(os.environ["HF_DATASETS_WHEEL"]), project_wheel, tmp_path)
    assert "arrow_dataset.py" in {Path(f).name for f in got["dist_files"]}


def test_editable_install_exposes_only_the_namespace(source_copy, tmp_path):
    """``pip install -e .`` (what `make install` does) maps ``videoshop_bench.<folder>`` to the checkout's folders and
    puts no top-level ``datasets``, ``eval``, ... on the path of programs run outside the checkout."""
    venv = tmp_path / "venv"  # no pip of its own: this environment's pip and setuptools build it (offline)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True,
                   cwd=tmp_path)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True, env=clean_env()).stdout.strip())
    (site / "zz_test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    r = subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "--no-build-isolation", "-q",
                        "--disable-pip-version-check", "-e", str(source_copy)], capture_output=True, text=True,
                       env=clean_env(), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    code = ("import importlib.util as u, json; import videoshop_bench.eval, videoshop_bench.experiments;"
            "print(json.dumps({'bare': {n: u.find_spec(n) is not None for n in %r},"
            " 'eval': videoshop_bench.eval.__file__, 'experiments': videoshop_bench.experiments.__file__}))" % (FOLDERS,))
    r = subprocess.run([str(py), "-c", code], cwd=tmp_path, env=clean_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert not any(got["bare"].values()), got["bare"]
    assert Path(got["eval"]) == source_copy / "eval" / "__init__.py"
    assert Path(got["experiments"]) == source_copy / "experiments" / "__init__.py"
