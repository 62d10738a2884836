"""Render the metric dicts of several models side by side: a markdown table, or JSON.

``results`` maps a model name to its metrics, e.g. ``{"base": {"accuracy": 0.41, "n": 200}, "rft": ...}``
as returned by `visual_rft.eval.metrics`. Fractions (accuracy, AP, IoU) are shown as percentages with
one decimal, as the paper reports them; integers (counts) as they are; a missing or None value as "-".
A metric name may be a dotted path into a nested dict: ``"per_category.dog"``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

MISSING = "-"


def markdown_table(
    results: Mapping[str, Mapping[str, Any]],
    metrics: Sequence[str] | None = None,
    *,
    percent: bool | Collection[str] = True,
    decimals: int = 1,
    models_as_rows: bool = False,
) -> str:
    """A markdown table with one column per model (or one row per model with `models_as_rows`).

    `metrics`: the rows, in order (default: every scalar metric of any model, in first-seen order;
    nested dicts such as per-class results are left out unless named by a dotted path).
    `percent`: which float metrics are fractions shown x100: True (all floats), False (none), or a
    collection of metric names. Other floats are shown with ``decimals + 2`` decimals.
    """
    models = list(results)
    names = list(metrics) if metrics is not None else _scalar_metrics(results)

    def cell(model: str, name: str) -> str:
        as_percent = percent if isinstance(percent, bool) else name in percent
        return format_value(lookup(results[model], name), as_percent=as_percent, decimals=decimals)

    if models_as_rows:
        header = ["model", *names]
        rows = [[model, *(cell(model, n) for n in names)] for model in models]
    else:
        header = ["metric", *models]
        rows = [[name, *(cell(m, name) for m in models)] for name in names]
    lines = [_row(header), _row([":---", *["---:"] * (len(header) - 1)])]
    lines += [_row(r) for r in rows]
    return "\n".join(lines) + "\n"


def format_value(value: Any, *, as_percent: bool = True, decimals: int = 1) -> str:
    """One cell: None / NaN -> "-", bool -> yes/no, int as is, float x100 (or not) with `decimals`."""
    if value is None:
        return MISSING
    kind = getattr(getattr(value, "dtype", None), "kind", None)  # numpy scalars
    if isinstance(value, bool) or kind == "b":
        return "yes" if value else "no"
    if isinstance(value, int) or kind in ("i", "u"):
        return str(int(value))
    if isinstance(value, str):
        return value
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(x):
        return MISSING
    return f"{100 * x:.{decimals}f}" if as_percent else f"{x:.{decimals + 2}f}"


def lookup(metrics: Mapping[str, Any], name: str) -> Any:
    """The value of `name` in `metrics`: the key itself, else a dotted path into nested dicts; None if absent."""
    if name in metrics:
        return metrics[name]
    node: Any = metrics
    for part in name.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def to_json(results: Mapping[str, Any], path: str | Path | None = None, *, indent: int = 2) -> str:
    """`results` as JSON text (numpy values made plain, NaN / inf as null); also written to `path` if given."""
    text = json.dumps(_plain(results), indent=indent, allow_nan=False) + "\n"
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return text


def _scalar_metrics(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    names: dict[str, None] = {}
    for metrics in results.values():
        for key, value in metrics.items():
            if not isinstance(value, (Mapping, list, tuple)):
                names.setdefault(key)
    return list(names)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def _plain(obj: Any) -> Any:
    """JSON-ready copy: mappings with string keys, lists, plain numbers; NaN and inf become None."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy arrays and scalars
        return _plain(obj.tolist())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    return str(obj)
