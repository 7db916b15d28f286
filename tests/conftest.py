"""Shared test setup: offline hubs, few threads, GPU tests skipped cleanly without CUDA."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")  # tiny models: one thread is faster than two fighting

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="module")
def teacher():
    """A tiny random latent diffusion pipeline built locally (the teacher of the distillation tests)."""
    from t2i.diffusion.testing import make_tiny_pipeline

    pipe = make_tiny_pipeline()
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(autouse=True)
def _library_log_handlers_write_to_this_tests_stderr():
    """diffusers and transformers bind their log handler to the ``sys.stderr`` of the moment it is made; made
    inside a ``capsys`` test, it later writes to a closed stream ("--- Logging error ---" with a traceback in a
    later test's output). Point it at the current stream before every test."""
    import sys

    for name in ("diffusers.utils.logging", "transformers.utils.logging"):
        handler = getattr(sys.modules.get(name), "_default_handler", None)
        if handler is not None:
            handler.stream, handler.flush = sys.stderr, sys.stderr.flush  # not setStream: it flushes the old one
    yield
