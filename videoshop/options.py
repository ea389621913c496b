"""Typed, checked options: each option of a library dataclass (``videoshop.config.VideoshopConfig``,
``videoshop.inversion.InversionOptions``) declares its default, type, range and choices once, with ``option(...)``.

The dataclass validates itself with ``check_options`` when built (a ValueError naming the option), and the run's
config schema (experiments/config_schema.py) reads the same declarations to check ``method.<option>`` keys before any
work, so the two can never disagree.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from typing import Any, Optional


@dataclass(frozen=True)
class Check:
    """What one key may hold. ``kind``: int | float | str | bool | list | any; ranges are inclusive unless
    ``*_open``."""

    kind: str
    nullable: bool = False
    required: bool = False  # the key must be present in the composed config
    min: Optional[float] = None
    max: Optional[float] = None
    min_open: bool = False
    max_open: bool = False
    choices: Optional[tuple] = None
    multiple_of: Optional[int] = None
    pattern: Optional[str] = None
    hint: str = ""  # message for a value that does not match ``pattern``
    why: str = ""  # appended to a range problem (the reason for the bound)

    def problem(self, value: Any) -> Optional[str]:
        """None when ``value`` fits, else the reason (without the key)."""
        if value is None:
            return None if self.nullable else "must be set (got null)"
        if self.kind == "any":
            return None
        if self.kind == "bool":
            if not isinstance(value, bool):
                return f"must be true or false (got {value!r})"
            return None
        if self.kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
            return f"must be an integer (got {value!r})"
        if self.kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"must be a number (got {value!r})"
            if not math.isfinite(value):
                return f"must be a finite number (got {value!r})"
        if self.kind == "str" and not isinstance(value, str):
            return f"must be a string (got {value!r})"
        if self.kind == "list" and not isinstance(value, (list, tuple)):
            return f"must be a list (got {value!r})"
        if self.choices is not None and value not in self.choices:
            return f"must be one of {', '.join(map(str, self.choices))} (got {value!r})"
        if self.pattern is not None and not re.match(self.pattern, str(value)):
            return f"{self.hint or 'has an invalid form'} (got {value!r})"
        if self.kind in ("int", "float"):
            lo_bad = self.min is not None and (value <= self.min if self.min_open else value < self.min)
            hi_bad = self.max is not None and (value >= self.max if self.max_open else value > self.max)
            if lo_bad or hi_bad:
                lo = "" if self.min is None else ("(" if self.min_open else "[") + f"{self.min:g}"
                hi = "" if self.max is None else f"{self.max:g}" + (")" if self.max_open else "]")
                rng = f"in {lo}, {hi}" if lo and hi else (f">{'' if self.min_open else '='} {self.min:g}" if lo else
                                                           f"<{'' if self.max_open else '='} {self.max:g}")
                return f"must be {rng} (got {value!r})" + (f": {self.why}" if self.why else "")
            if self.multiple_of and value % self.multiple_of:
                return f"must be a multiple of {self.multiple_of} (got {value!r})"
        return None


# Upper bounds of the counts a user sets, so that no value can make a run allocate without limit
# (`num_inference_steps=1000000000` once ran a minute before it was killed for memory). Generous: every preset and
# every paper setting is well inside (Spacetime's official inversion keeps 999 timesteps).
MAX_STEPS = 1000  # sampling / inversion steps (diffusion models are trained on 1000 timesteps)
MAX_ITERATIONS = 100  # inner iterations per step (fixed-point inversion, latent optimisation)
MAX_FRAMES = 1000  # frames a method or model handles at once (= limits.max_frames' default)
MAX_BATCH = 1024  # frames or grids per batch / chunk


def check_counts(what: str = "option", **counts: tuple[Any, int, int]) -> None:
    """Raise ValueError naming the first count outside its range: ``check_counts("method", num_inference_steps=
    (steps, 1, MAX_STEPS))`` -> ``method.num_inference_steps=1000000000: must be in [1, 1000]``. None passes."""
    for name, (value, lo, hi) in counts.items():
        problem = Check("int", nullable=True, min=lo, max=hi).problem(value)
        if problem:
            raise ValueError(f"{what}.{name}={value!r}: {problem}")


def check_choices(what: str = "option", **choices: tuple[Any, tuple]) -> None:
    """Raise ValueError naming the first value outside its choices: ``check_choices("metrics.tifa", backbone=
    (backbone, ("real", "tiny")))`` -> ``metrics.tifa.backbone='big': must be one of real, tiny (got 'big')``."""
    for name, (value, allowed) in choices.items():
        problem = Check("str", choices=tuple(allowed)).problem(value)
        if problem:
            raise ValueError(f"{what}.{name}={value!r}: {problem}")


def option(default: Any, kind: str, **kw: Any) -> Any:
    """A dataclass field with a default and a ``Check``: ``noise: str = option("fixed", "str", choices=("fixed", "fresh"))``."""
    return field(default=default, metadata={"check": Check(kind, **kw)})


def option_checks(cls) -> dict[str, Check]:
    """Field name -> Check for every checked field of the dataclass ``cls``."""
    return {f.name: f.metadata["check"] for f in fields(cls) if "check" in f.metadata}


def check_options(obj: Any, what: str = "option") -> None:
    """Raise ValueError naming the first field of ``obj`` whose value its Check refuses."""
    for name, check in option_checks(type(obj)).items():
        problem = check.problem(getattr(obj, name))
        if problem:
            raise ValueError(f"{what} {name}={getattr(obj, name)!r}: {problem}")


_KINDS = {int: "int", float: "float", str: "str", bool: "bool", list: "list", tuple: "list"}


def signature_checks(cls) -> tuple[dict[str, Check], bool]:
    """Name -> Check for every keyword of ``cls``'s constructor whose annotation is a plain type (int, float, str,
    bool, list, tuple, or ``Optional`` of one: nullable); other annotations (dicts of sub-options, models) accept
    anything. The second value: whether the constructor takes ``**kwargs`` (then an unknown key is not an error
    here; its own dataclass checks it when built). One declaration, the signature, checked before any work."""
    import inspect
    import typing

    sig = inspect.signature(cls.__init__ if inspect.isclass(cls) else cls)
    hints = typing.get_type_hints(cls.__init__ if inspect.isclass(cls) else cls)
    checks: dict[str, Check] = {}
    open_ended = False
    for name, p in sig.parameters.items():
        if p.kind is p.VAR_KEYWORD:
            open_ended = True
            continue
        if name == "self" or p.kind is p.VAR_POSITIONAL:
            continue
        hint, nullable = hints.get(name, Any), False
        args = typing.get_args(hint)
        if typing.get_origin(hint) is typing.Union and type(None) in args:
            rest = [a for a in args if a is not type(None)]
            hint, nullable = (rest[0] if len(rest) == 1 else Any), True
        kind = _KINDS.get(typing.get_origin(hint) or hint)
        checks[name] = Check(kind, nullable=nullable or p.default is None) if kind else Check("any", nullable=True)
    return checks, open_ended
