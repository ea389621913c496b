"""The errors a run reports as one line (run.py): a component that cannot be built from its config, a config that
fails validation, and the library errors a user can cause and fix."""

from __future__ import annotations


class ConfigError(RuntimeError):
    """A component could not be built from its config (one line naming the key)."""


class ConfigErrors(ConfigError):
    """The config failed validation (experiments/config_schema.py): one line per problem in ``problems``."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def one_line(e: BaseException) -> str:
    """``'ValueError: first line of the message'``: how a failure is recorded and printed."""
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0] if msg else ''}"


def _anticipated() -> tuple[type[BaseException], ...]:
    """Errors a user can cause and fix (bad config, missing weights or files, bad manifest): one line in run.py."""
    from videoshop_bench.datasets.schema import SampleError
    from videoshop.models import MissingWeightsError

    return (ConfigError, MissingWeightsError, SampleError, FileNotFoundError, NotADirectoryError, PermissionError,
            KeyError, ValueError)


ANTICIPATED = _anticipated()
