"""Evaluation: batched generation, metrics (accuracy, COCO-style mAP, grounding IoU), the runner, tables.

- `metrics`: pure metric functions over parsed predictions (no model, no torch);
- `table`: the metrics of several models side by side (markdown, JSON);
- `generate`: batched, length-sorted generation over samples (greedy by default);
- `runner`: evaluate model folders on a JSONL test set, save completions, re-score them (`vrft eval`).

`generate` and `runner` import torch and transformers; the runner's names below are loaded on first use,
so ``import visual_rft.eval`` stays light. (The function `generate` is
``visual_rft.eval.generate.generate``: the package attribute ``generate`` is its module.)
"""

from __future__ import annotations

import importlib

from visual_rft.eval.metrics import (
    classification_metrics,
    detection_metrics,
    grounding_metrics,
    open_vocab_metrics,
)
from visual_rft.eval.table import markdown_table, to_json

_LAZY = {
    "DecodeOptions": "visual_rft.eval.generate",
    "Generation": "visual_rft.eval.generate",
    "EvalOptions": "visual_rft.eval.runner",
    "evaluate_model": "visual_rft.eval.runner",
    "evaluate_models": "visual_rft.eval.runner",
    "rescore": "visual_rft.eval.runner",
    "score": "visual_rft.eval.runner",
    "plan_queries": "visual_rft.eval.runner",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'visual_rft.eval' has no attribute {name!r}")


__all__ = [
    "DecodeOptions",
    "EvalOptions",
    "Generation",
    "classification_metrics",
    "detection_metrics",
    "evaluate_model",
    "evaluate_models",
    "grounding_metrics",
    "markdown_table",
    "open_vocab_metrics",
    "plan_queries",
    "rescore",
    "score",
    "to_json",
]
