"""Shared fixtures: everything offline, built on the fly in temporary folders."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A 1M-parameter Qwen2.5-VL folder written by the project's own factory."""
    from visual_rft.models.tiny import write_tiny

    return write_tiny(tmp_path_factory.mktemp("tiny") / "qwen2_5_vl-1m", "qwen2_5_vl", "1m", seed=0)


@pytest.fixture(scope="session")
def tiny_qwen2_dir(tmp_path_factory):
    """A 1M-parameter Qwen2-VL folder (the 0-1000 coordinate family)."""
    from visual_rft.models.tiny import write_tiny

    return write_tiny(tmp_path_factory.mktemp("tiny2") / "qwen2_vl-1m", "qwen2_vl", "1m", seed=0)
