"""Test setup: offline, deterministic, the torchvision shim before anything imports torchvision."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

import pytest  # noqa: E402
import torch  # noqa: E402

from videoshop import _compat  # noqa: E402,F401

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def tiny_components():
    from videoshop.models import build_random_components, tiny_component_configs

    return build_random_components(tiny_component_configs(), seed=0)


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_components):
    from videoshop.pipeline import VideoshopPipeline

    pipe = VideoshopPipeline(**tiny_components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture
def one_thread():
    """Tiny models gain nothing from intra-op threads; on a shared 2-core machine one thread is ~10x faster."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
