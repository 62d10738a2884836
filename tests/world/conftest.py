"""Shared fixtures of the world's tests: a few small files of every task, built once."""

import pytest

from visual_rft import world as W


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    """JSONL files of the four tasks (classification few-shot, detection base and novel, grounding)."""
    out = tmp_path_factory.mktemp("world")
    return {
        "cls": W.build("classification", out, 48, seed=3, categories=W.CLASSIFICATION_FEWSHOT),
        "det_base": W.build("detection", out, 60, seed=3, categories=W.DETECTION_BASE, name="det_base"),
        "det_novel": W.build("detection", out, 40, seed=3, categories=W.DETECTION_NOVEL, name="det_novel"),
        "grd": W.build("grounding", out, 140, seed=3, categories=W.GROUNDING_KINDS),
    }
