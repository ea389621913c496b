"""The import namespace of videoshop-bench.

The repository keeps its top-level folders (``baselines/``, ``datasets/``, ``eval/``, ``experiments/``,
``research/``), but they are imported as ``videoshop_bench.baselines``, ``videoshop_bench.datasets``, ... so that an
installed copy never shadows or overwrites another distribution's top-level package (Hugging Face ``datasets``, most
of all). ``pyproject.toml`` maps each folder into this package when a wheel is built; in a source checkout (and an
editable install) the folders are found next to this one, through ``__path__`` below. ``videoshop`` (the method as a
plain library) keeps its own top-level name.
"""
from pathlib import Path

SUBPACKAGES = ("baselines", "datasets", "eval", "experiments", "research")

_here = Path(__file__).resolve().parent
if not (_here / "experiments").is_dir() and (_here.parent / "experiments" / "__init__.py").is_file():
    __path__.append(str(_here.parent))  # source checkout: videoshop_bench.<folder> is <repo>/<folder>
