"""Evaluation: query planning, batched generation, scoring, metrics, reports, and the runner (`vrft eval`).

- `queries`: which queries are asked (the file's, present categories, all, an existence map);
- `generate`: batched, length-sorted generation over samples (greedy by default);
- `completions`: the saved completions format (what re-scoring needs);
- `scoring`: per-task scoring of completions (`score`), boxes converted to original pixels;
- `metrics`: pure metric functions over parsed predictions (no model, no torch);
- `report`, `table`: metrics.json and the markdown table of several models side by side;
- `runner`: evaluate model folders on a JSONL test set, save completions, re-score them.

Importing this package stays light (no torch): `generate` and `runner` import torch when they are imported.
"""

from visual_rft.eval.metrics import (
    classification_metrics,
    detection_metrics,
    grounding_metrics,
    open_vocab_metrics,
)
from visual_rft.eval.table import markdown_table, to_json

__all__ = [
    "classification_metrics",
    "detection_metrics",
    "grounding_metrics",
    "markdown_table",
    "open_vocab_metrics",
    "to_json",
]
