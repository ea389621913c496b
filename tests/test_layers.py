"""docs/architecture.md's floors hold: no module imports a folder above its own (read from the code's imports)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOOR = {"videoshop": 1, "datasets": 1, "eval": 2, "baselines": 3, "experiments": 4, "research": 5, "run": 6, "notebooks": 6}
# the two floor-1 folders: datasets may use videoshop (I/O, files, seeds), never the other way round
BELOW = {("datasets", "videoshop")}
NAMESPACE = "videoshop_bench."  # the install namespace of the top-level folders (videoshop_bench/__init__.py)


def local(name: str) -> str:
    """A module name without the install prefix ``videoshop_bench.`` (the folder layout the floors are written in)."""
    return name[len(NAMESPACE):] if name.startswith(NAMESPACE) else name


def imported_folders(path: Path) -> set[str]:
    """Top-level names of this repository that ``path`` imports (absolute imports, at any depth of the file)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {local(a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(local(node.module).split(".")[0])
    return out & set(FLOOR)


def test_no_module_imports_a_folder_above_its_own():
    wrong = []
    for folder, floor in FLOOR.items():
        files = [ROOT / "run.py"] if folder == "run" else sorted((ROOT / folder).rglob("*.py"))
        for f in files:
            for other in imported_folders(f) - {folder}:
                if FLOOR[other] > floor or (FLOOR[other] == floor and (folder, other) not in BELOW):
                    wrong.append(f"{f.relative_to(ROOT)} imports {other}")
    assert not wrong, wrong


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports_of(path: Path, modules: set[str]) -> set[str]:
    """The repository modules ``path`` imports, anywhere in the file (function-level imports included)."""
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [local(a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = local(node.module or "")
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        for n in names:
            while n and n not in modules:
                n = n.rpartition(".")[0]
            if n and n != me:
                out.add(n)
    return out


def test_no_import_cycles_between_modules():
    import networkx as nx

    files = [ROOT / "run.py"] + [f for d in FLOOR if d != "run" for f in sorted((ROOT / d).rglob("*.py"))]
    modules = {_module_name(f) for f in files}
    packages = {_module_name(f) for f in files if f.name == "__init__.py"}  # re-export hubs, not a layer
    graph = nx.DiGraph([(_module_name(f), m) for f in files for m in _imports_of(f, modules) if m not in packages])
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, cycles[:5]
