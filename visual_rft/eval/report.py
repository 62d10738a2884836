"""The evaluation report: metrics.json ({model: metrics}) and metrics.md (the headline metrics, one column
per model).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from visual_rft.eval.table import markdown_table, to_json

METRICS_JSON = "metrics.json"
METRICS_MD = "metrics.md"

HEADLINE = {
    "classification": ["accuracy", "lenient_accuracy", "unparseable", "n"],
    "detection": [
        "mAP",
        "AP50",
        "AP75",
        "mAP_base",
        "mAP_novel",
        "mAP_all",
        "AP50_base",
        "AP50_novel",
        "unparseable",
        "n_queries",
    ],
    "grounding": ["giou", "ciou", "mask_giou", "mask_ciou", "acc@0.5", "missing", "n"],
}
"""The metrics shown in the markdown table, per task (the JSON holds everything)."""


def headline_rows(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The table rows for several models' metrics: each task's headline metrics that some model reports."""
    rows: dict[str, None] = {}
    for metrics in results.values():
        task = metrics.get("task")
        if task in HEADLINE:
            pairs = [(name, name, metrics) for name in HEADLINE[task]]
        else:  # mixed tasks: dotted paths into each task's metrics
            pairs = [(f"{t}.{name}", name, metrics.get(t) or {}) for t in HEADLINE for name in HEADLINE[t]]
        for row, key, source in pairs:
            if key in source:
                rows.setdefault(row)
    return list(rows)


def write_report(
    results: Mapping[str, Mapping[str, Any]],
    out_dir: str | os.PathLike,
    title: str = "",
    *,
    write_json: bool = True,
) -> None:
    """metrics.json ({model: metrics}, unless not `write_json`) and metrics.md (the headline table)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if write_json:
        to_json(results, out / METRICS_JSON)
    table = markdown_table(results, headline_rows(results))
    notes = (
        "Fractions x100. Classification: `accuracy` is the strict rule (exact match after normalisation, "
        "the training reward), `lenient_accuracy` the paper's substring rule. Detection: COCO AP at IoU "
        "0.50:0.95 (`mAP`), 0.50, 0.75. Grounding: `giou` = mean IoU (LISA), `ciou` = cumulative IoU; "
        "`mask_giou` / `mask_ciou` the same on SAM's masks of the boxes (`--sam`).\n"
    )
    head = f"# {title}\n\n" if title else ""
    (out / METRICS_MD).write_text(head + table + "\n" + notes, encoding="utf-8")
