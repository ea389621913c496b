"""Typed, checked options: each option of a library dataclass (``videoshop.config.VideoshopConfig``,
``videoshop.inversion.InversionOptions``) declares its default, type, range and choices once, with ``option(...)``.

The dataclass validates itself with ``check_options`` when built (a ValueError naming the option), and the run's
config schema (experiments/config_schema.py) reads the same declarations to check ``method.<option>`` keys before any
work, so the two can never disagree.
"""

from __future__ import annotations

import copy
import difflib
import math
import re
from dataclasses import MISSING, dataclass, field, fields
from collections.abc import Mapping
from typing import Any, Optional


@dataclass(frozen=True)
class Check:
    """What one key may hold. ``kind``: int | float | str | bool | list | dict | any; ranges are inclusive unless
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
    doc: str = ""  # what the option does, one line (docs tables, ``--help``-style listings)

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
        if self.kind == "dict" and not isinstance(value, Mapping):
            return f"must be a mapping of sub-options (got {value!r})"
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


def option(default: Any, kind: str, doc: str = "", **kw: Any) -> Any:
    """A dataclass field with a default, a ``Check`` and a one-line ``doc``:
    ``noise: str = option("fixed", "str", "one eps reused (code) | fresh per step", choices=("fixed", "fresh"))``.
    A mutable default (list, dict) is copied for every instance."""
    meta = {"check": Check(kind, doc=doc, **kw)}
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


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


# ------------------------------------------------------------------------------------------------ method classes
# A method class declares its options once, as a dataclass of ``option(...)`` fields in its class attribute
# ``options`` (e.g. ``videoshop_bench.baselines.rave.RAVEOptions``); a class that passes the keys it does not declare on to another
# options dataclass names it in ``inner_options`` (the Videoshop family: ``videoshop.config.VideoshopConfig``).
# The constructor builds them with ``build_options``; the run's config schema reads the same declarations
# (``declared_options``) before any work, and the registry's config node takes its defaults from them.


def option_defaults(cls) -> dict[str, Any]:
    """Field name -> default of every option of the dataclass ``cls`` (mutable defaults freshly copied)."""
    return {f.name: (f.default_factory() if f.default_factory is not MISSING else f.default)  # type: ignore[misc]
            for f in fields(cls) if "check" in f.metadata}


def unknown_option(key: str, known, owner: str = "", what: str = "method") -> str:
    """One line for an option nobody declares: its close matches first, then every choice."""
    known = sorted(known)
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return f"{what}.{key}: not an option{' of ' + owner if owner else ''} ({hint}options: {', '.join(known)})"


def build_options(cls, values: dict[str, Any], what: str = "method", owner: str = ""):
    """``cls(**values)`` for an options dataclass, refusing an unknown key or a value its Check refuses with one
    line naming ``<what>.<key>`` (the same lines the config schema prints before any work)."""
    checks = option_checks(cls)
    for key, value in values.items():
        if key not in checks:
            raise ValueError(unknown_option(key, checks, owner or cls.__name__, what))
        problem = checks[key].problem(value)
        if problem:
            raise ValueError(f"{what}.{key}={value!r}: {problem}")
    return cls(**values)


def split_options(cls, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``values`` split into the keys the dataclass ``cls`` declares and the rest (passed on to an inner one)."""
    own = option_checks(cls)
    return {k: v for k, v in values.items() if k in own}, {k: v for k, v in values.items() if k not in own}


def option_classes(cls) -> list[type]:
    """The options dataclasses a method class declares (``options``, then ``inner_options``)."""
    return [c for c in (getattr(cls, "options", None), getattr(cls, "inner_options", None)) if c is not None]


def declared_options(cls) -> tuple[dict[str, Check], bool]:
    """Every keyword a method class takes, with its Check: its constructor's typed keywords (``name``, ``height``,
    ...), its ``options`` and its ``inner_options`` dataclasses. The second value: whether other keys may pass
    (a constructor with ``**kwargs`` and no declared options: a plugin; then its own code checks them)."""
    checks, open_ended = signature_checks(cls)
    declared = option_classes(cls)
    for options_cls in declared:
        checks.update(option_checks(options_cls))
    return checks, open_ended and not declared


def options_markdown(cls) -> str:
    """The options of the dataclass ``cls`` as a Markdown table: option, default, type and range, what it does."""
    rows = ["| option | default | type | what |", "|---|---|---|---|"]
    defaults = option_defaults(cls)
    for name, chk in option_checks(cls).items():
        kind = chk.kind + (" or null" if chk.nullable else "")
        if chk.choices:
            kind += ": " + " \\| ".join(map(str, chk.choices))
        elif chk.min is not None or chk.max is not None:
            lo = "" if chk.min is None else ("(" if chk.min_open else "[") + f"{chk.min:g}"
            hi = "" if chk.max is None else f"{chk.max:g}" + (")" if chk.max_open else "]")
            kind += f" {lo or '(-inf'}, {hi or 'inf)'}"
        rows.append(f"| `{name}` | `{defaults[name]!r}` | {kind} | {chk.doc.replace('|', chr(92) + '|')} |")
    return "\n".join(rows)


def option_like(cls, name: str, default: Any, doc: str = "") -> Any:
    """A field with the Check of option ``name`` of the dataclass ``cls`` and another default (and doc): a method
    that gives some of Videoshop's options its own defaults declares them with Videoshop's types and ranges."""
    check = option_checks(cls)[name]
    import dataclasses

    return option(default, check.kind, doc or check.doc,
                  **{f.name: getattr(check, f.name) for f in dataclasses.fields(Check) if f.name not in ("kind", "doc")})
