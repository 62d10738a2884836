"""Our rewards with TRL's reward-function signature, for ``trl.GRPOTrainer(reward_funcs=...)``.

TRL (1.16) calls every reward function with keyword arguments only::

    reward_func(prompts=prompts, completions=completions, completion_ids=completion_ids,
                <every dataset column but "prompt", one value per completion>,
                trainer_state=state, log_extra=log_extra, log_metric=log_metric)

and expects one float (or None, "does not apply") per completion. A completion is a string for plain-text
prompts; for conversational prompts it is a list of messages, ``[{"role": "assistant", "content": "..."}]``,
where ``content`` is a string or a list of parts ``{"type": "text", "text": "..."}``. The adapter scores the
text of the last assistant message (the last message when none says it is the assistant's).

The ground truth comes from the dataset column ``solution`` (a solution string of Visual-RFT's datasets).
TRL logs each reward as ``rewards/{__name__}/mean``; the adapter's ``__name__`` is the registry name
("iou", "cls", ...). It also logs ``rewards/{name}/parse_fail`` through ``log_metric`` for the registered
rewards that read an answer (see `visual_rft.rewards.metrics`).

This module does not import TRL; the adapter is a plain callable object, so it pickles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from visual_rft.rewards.metrics import parse_fail_share
from visual_rft.rewards.registry import Reward, answer_kind, get

SOLUTION_COLUMN = "solution"


def completion_text(completion: object) -> object:
    """The text a reward scores: the string itself, or the text of the last assistant message.

    Anything else is returned unchanged (the rewards give it 0).
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if not isinstance(completion, (list, tuple)) or not completion:
        return completion
    messages = [m for m in completion if isinstance(m, dict)]
    assistant = [m for m in messages if m.get("role") == "assistant"]
    if not (assistant or messages):
        return None
    content = (assistant or messages)[-1].get("content")
    if isinstance(content, list):  # content parts: keep the text ones
        content = "".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return content


class TrlReward:
    """One reward, called the way TRL calls reward functions (see the module docstring)."""

    def __init__(self, reward: str | Reward, name: str | None = None, solution_column: str = SOLUTION_COLUMN):
        if isinstance(reward, str):
            self.reward, self.kind = get(reward), answer_kind(reward)
            default_name = reward
        else:
            self.reward, self.kind = reward, None
            default_name = getattr(reward, "__name__", type(reward).__name__)
        self.__name__ = name or default_name
        self.solution_column = solution_column

    def __call__(self, prompts=None, completions=None, log_metric=None, **columns) -> list[float]:
        completions = list(completions or [])
        texts = [completion_text(c) for c in completions]
        solutions = columns.get(self.solution_column)
        if solutions is None:
            if self.kind is not None:
                raise ValueError(
                    f"reward {self.__name__!r} needs the ground truth in a dataset column "
                    f"{self.solution_column!r}; the columns passed are {sorted(columns)}"
                )
            solutions = [None] * len(texts)
        if len(solutions) != len(texts):
            raise ValueError(
                f"{len(texts)} completions but {len(solutions)} values in {self.solution_column!r}"
            )
        values = [float(self.reward(text, solution)) for text, solution in zip(texts, solutions)]
        if log_metric is not None and self.kind is not None:
            log_metric(f"rewards/{self.__name__}/parse_fail", parse_fail_share(texts, self.kind))
        return values

    def __repr__(self) -> str:
        return f"TrlReward({self.__name__!r})"


def to_trl(reward: str | Reward, name: str | None = None) -> TrlReward:
    """A reward (registered name, ``"package.module:function"`` or function) with TRL's signature."""
    return TrlReward(reward, name=name)


def trl_rewards(weights: Mapping[str, float] | Sequence[str]) -> tuple[list[TrlReward], list[float]]:
    """(reward_funcs, reward_weights) for ``GRPOTrainer(reward_funcs=...)`` and ``GRPOConfig(reward_weights=...)``.

    ``weights``: {name: weight}, e.g. ``task_defaults("detection")``, or a list of names (weight 1 each).
    """
    if not isinstance(weights, Mapping):
        weights = {name: 1.0 for name in weights}
    return [TrlReward(name) for name in weights], [float(w) for w in weights.values()]
