"""Registries of pluggable things, one per kind: a name maps to a typed entry (a frozen dataclass declaring what
the thing is and how it is built). Plain Python, no Hydra: the library and its CLI use them directly; the Hydra
edge (experiments/) keeps its own registries of this class (tasks, methods, method sets).

    TASKS = Registry("task")
    TASKS.register(Task("edit", run="videoshop_bench.experiments.runner.run_edit", reads=("model", "method")))
    TASKS.get("edit")            # the entry; an unknown name raises one line naming the choices
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Generic, Iterator, TypeVar

E = TypeVar("E")


class UnknownEntry(KeyError):
    """A name no entry of the registry has (``str(e)`` is the one line, without KeyError's quotes)."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(Generic[E]):
    """Name -> entry for one kind. Entries carry their own ``name``; registering a name twice is an error unless
    ``replace=True`` (so two modules cannot silently claim one name). ``subscribe(fn)``: ``fn()`` runs after every
    change (the Hydra edge keeps its config store equal to a registry this way)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, E] = {}
        self._listeners: list[Callable[[], None]] = []

    def register(self, entry: E, replace: bool = False) -> E:
        name = getattr(entry, "name")
        if name in self._entries and not replace:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        self._changed()
        return entry

    def unregister(self, name: str) -> None:
        if self._entries.pop(name, None) is not None:
            self._changed()

    def subscribe(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` now and after every later register / unregister."""
        if fn not in self._listeners:
            self._listeners.append(fn)
        fn()

    def _changed(self) -> None:
        for fn in self._listeners:
            fn()

    def get(self, name: str) -> E:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownEntry(f"unknown {self.kind} {name!r}: expected one of {', '.join(self._entries)}") from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[E]:
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)


def load_object(path: str) -> Any:
    """The object a dotted path names (``'videoshop_bench.experiments.runner.run_edit'``), imported on demand."""
    module, _, attr = path.rpartition(".")
    return getattr(importlib.import_module(module), attr)
