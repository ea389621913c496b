from videoshop import _compat  # noqa: F401

from . import stored_configs  # noqa: F401,E402  (metric sets and dataset entries in Hydra's config store, before composing)
