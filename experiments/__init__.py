from videoshop import _compat  # noqa: F401

from . import metric_configs  # noqa: F401,E402  (the metric sets as Hydra's `metrics` group, before anything composes)
