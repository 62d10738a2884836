"""Per-reward numbers for the training log.

For each reward: ``{prefix}/{name}/mean``, the mean value over the batch, and, for the registered rewards
that read an answer, ``{prefix}/{name}/parse_fail``, the share of completions whose answer that reward
could not read at all (no closed answer tag; for detection, text that is not a list of objects; for
grounding, no single valid box; for classification, an empty answer). A readable detection answer whose
objects are all invalid is not a parse failure: it is a wrong answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from visual_rft.data.answer import readable
from visual_rft.rewards.registry import answer_kind


def parse_fail_share(completions: Sequence[object], kind: str) -> float:
    """The share of completions whose answer of this kind cannot be read (0.0 for an empty batch)."""
    if not completions:
        return 0.0
    failures = sum(1 for c in completions if not readable(c, kind))
    return failures / len(completions)


def reward_metrics(
    completions: Sequence[object], values: Mapping[str, Sequence[float]], prefix: str = "reward"
) -> dict[str, float]:
    """{"reward/iou/mean": ..., "reward/iou/parse_fail": ..., ...} for the rewards in ``values``.

    ``values`` maps reward names to one value per completion, as `visual_rft.rewards.score` returns them.
    """
    metrics = {}
    for name, scores in values.items():
        metrics[f"{prefix}/{name}/mean"] = sum(scores) / len(scores) if scores else 0.0
        kind = answer_kind(name)
        if kind is not None:
            metrics[f"{prefix}/{name}/parse_fail"] = parse_fail_share(completions, kind)
    return metrics
