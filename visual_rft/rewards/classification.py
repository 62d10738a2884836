"""Classification reward: the answer names the one correct class.

``solution`` is a `ClassTarget` or a solution string ``<answer>class name</answer>`` (tags optional).

``match="exact"`` (the default): the answer and the ground truth are normalised
(`visual_rft.data.answer.normalize_class`: case; surrounding white space and quotes; a final period; runs
of spaces, underscores and hyphens become one space) and the reward is 1.0 only when they are equal.
So an empty answer scores 0, and so does one that names several classes ("rose or lily or tulip"), a
sentence around the name ("it is a rose"), or no closed answer tag.

``match="lenient"`` reproduces the paper's rule, for reproducing its numbers only: spaces and underscores
removed, lower case, and 1.0 when either string contains the other. It is gameable, as the paper's code
is: an empty answer, and any answer listing the right class among others, score 1.0. (Unlike the paper's
code, a completion without a closed answer tag still scores 0: the paper fell back to the whole completion.)

The reward is 0.0 or 1.0 and never raises.

`cls_words_reward` (not in the paper) gives partial credit for fine-grained names built of attribute words
("dark red circle"): the share of the true name's words the answer gets right, word by word, and only when
the answer has as many words as the name. A right answer scores 1.0, like `cls_reward`; a guess with the
right colour and shape but the wrong shade scores 2/3; an answer of another length (empty, a list of
classes, a sentence) scores 0, so listing every attribute word earns nothing. Meant as an addition to
``cls`` for a base model that never names a class exactly, where the exact reward is 0 for every sample.
"""

from __future__ import annotations

import functools

from visual_rft.data.answer import class_answer, extract_answer, normalize_class, solution_text
from visual_rft.data.types import ClassTarget

MATCHES = ("exact", "lenient")


def _truth_label(solution: object) -> str | None:
    if isinstance(solution, ClassTarget):
        solution = solution.label
    if not isinstance(solution, str):
        return None
    return solution_text(solution)


@functools.lru_cache(maxsize=4096)
def _normalized_truth(label: str) -> str:
    return normalize_class(label)


def _squash(text: str) -> str:
    """The paper's normalisation: strip, drop spaces and underscores, lower case."""
    return text.strip().replace(" ", "").replace("_", "").lower()


def cls_reward(completion: object, solution: object, match: str = "exact") -> float:
    """1.0 when the answer names the ground-truth class, else 0.0 (rules in the module docstring)."""
    if match not in MATCHES:
        raise ValueError(f"match must be one of {MATCHES}, got {match!r}")
    label = _truth_label(solution)
    if label is None:
        return 0.0
    if match == "lenient":
        answer = extract_answer(completion)
        if answer is None:
            return 0.0
        truth, guess = _squash(label), _squash(answer)
        return 1.0 if truth in guess or guess in truth else 0.0
    answer = class_answer(completion)
    if answer is None:
        return 0.0
    return 1.0 if answer == _normalized_truth(label) else 0.0


def cls_lenient_reward(completion: object, solution: object) -> float:
    """`cls_reward` with the paper's lenient substring rule (for reproduction only)."""
    return cls_reward(completion, solution, match="lenient")


def cls_words_reward(completion: object, solution: object) -> float:
    """Share of the class name's words the answer matches, position by position (0.0 on a length mismatch)."""
    label = _truth_label(solution)
    answer = class_answer(completion)
    if label is None or answer is None:
        return 0.0
    truth, guess = _normalized_truth(label).split(), answer.split()
    if not truth or len(guess) != len(truth):
        return 0.0
    return sum(t == g for t, g in zip(truth, guess)) / len(truth)
