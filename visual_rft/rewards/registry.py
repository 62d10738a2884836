"""Rewards by name, each task's default rewards with their weights, and scoring a batch.

Every reward is called as ``reward(completion, solution) -> float`` (`format_reward` ignores the solution).

Registered names (`names()`):

==================  ====================================================  ==============
name                function                                              reads answers
==================  ====================================================  ==============
``format``          `format_reward`                                       (format only)
``iou``             `iou_reward` (match at IoU > 0.5)                     detection
``confidence``      `confidence_reward` (match at IoU > 0.5)              detection
``cls``             `cls_reward` (exact match)                            classification
``cls_lenient``     `cls_lenient_reward` (the paper's substring rule)     classification
``cls_words``       `cls_words_reward` (word-by-word partial credit)      classification
``grounding``       `grounding_reward` (IoU)                              grounding
``grounding_giou``  `grounding_giou_reward` ((GIoU + 1) / 2)              grounding
==================  ====================================================  ==============

A reward with options has one registered name per useful setting, each a plain module-level function
with its own ``__name__``: that name is what trainers log, and it pickles. For another setting, pass your
own function, e.g. ``functools.partial(iou_reward, iou_threshold=0.75)``.

`get` also loads a user reward from a ``"package.module:function"`` string; the function must follow the
same signature and return a finite float.

Task defaults (`task_defaults`) follow the paper, which sums the rewards with weight 1:
detection = iou + confidence + format; classification = cls + format; grounding = grounding + format.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence

from visual_rft.rewards.classification import cls_lenient_reward, cls_reward, cls_words_reward
from visual_rft.rewards.detection import confidence_reward, iou_reward
from visual_rft.rewards.format import format_reward
from visual_rft.rewards.grounding import grounding_giou_reward, grounding_reward

Reward = Callable[[object, object], float]

_REWARDS: dict[str, Reward] = {
    "format": format_reward,
    "iou": iou_reward,
    "confidence": confidence_reward,
    "cls": cls_reward,
    "cls_lenient": cls_lenient_reward,
    "cls_words": cls_words_reward,
    "grounding": grounding_reward,
    "grounding_giou": grounding_giou_reward,
}

_ANSWER_KIND = {
    "iou": "detection",
    "confidence": "detection",
    "cls": "classification",
    "cls_lenient": "classification",
    "cls_words": "classification",
    "grounding": "grounding",
    "grounding_giou": "grounding",
}

_TASK_DEFAULTS = {
    "detection": {"iou": 1.0, "confidence": 1.0, "format": 1.0},
    "classification": {"cls": 1.0, "format": 1.0},
    "grounding": {"grounding": 1.0, "format": 1.0},
}


def names() -> list[str]:
    """The registered reward names."""
    return list(_REWARDS)


def get(name: str) -> Reward:
    """The reward registered under ``name``, or the user function a ``"package.module:function"`` string names.

    Raises ValueError, naming the string, when there is no such reward, the module cannot be imported, it
    has no such attribute, or the attribute is not callable.
    """
    if not isinstance(name, str):
        raise ValueError(f"a reward name must be a string, got {name!r}")
    if name in _REWARDS:
        return _REWARDS[name]
    if ":" in name:
        return load(name)
    raise ValueError(
        f"unknown reward {name!r}; registered rewards: {', '.join(_REWARDS)}; "
        "or name your own function as 'package.module:function'"
    )


def load(spec: str) -> Reward:
    """Import the function a ``"package.module:function"`` string names (see `get` for the errors)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute or ":" in attribute:
        raise ValueError(f"reward {spec!r}: expected the form 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # ImportError, or any error raised while the module runs
        raise ValueError(f"reward {spec!r}: cannot import module {module_name!r}: {error}") from error
    try:
        function = getattr(module, attribute)
    except AttributeError as error:
        raise ValueError(f"reward {spec!r}: module {module_name!r} has no attribute {attribute!r}") from error
    if not callable(function):
        raise ValueError(
            f"reward {spec!r}: {attribute!r} is not callable (it is a {type(function).__name__})"
        )
    return function


def answer_kind(name: str) -> str | None:
    """The kind of answer a registered reward reads ("detection", "classification", "grounding"), else None."""
    return _ANSWER_KIND.get(name)


def task_defaults(task: str) -> dict[str, float]:
    """The paper's rewards for a task, as {name: weight} (a fresh dict, yours to change)."""
    if task not in _TASK_DEFAULTS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(_TASK_DEFAULTS)}")
    return dict(_TASK_DEFAULTS[task])


def score(
    completions: Sequence[object], solutions: Sequence[object], weights: Mapping[str, float]
) -> tuple[list[float], dict[str, list[float]]]:
    """Score a batch: (weighted total per completion, {reward name: value per completion}).

    ``weights`` maps reward names (or ``"package.module:function"`` strings) to weights, e.g.
    ``task_defaults("detection")``. ``completions`` and ``solutions`` are paired one to one.
    """
    if len(completions) != len(solutions):
        raise ValueError(f"{len(completions)} completions but {len(solutions)} solutions")
    per_reward = {}
    for name in weights:
        reward = get(name)
        per_reward[name] = [float(reward(c, s)) for c, s in zip(completions, solutions)]
    totals = [0.0] * len(completions)
    for name, values in per_reward.items():
        weight = float(weights[name])
        for i, value in enumerate(values):
            totals[i] += weight * value
    return totals, per_reward
