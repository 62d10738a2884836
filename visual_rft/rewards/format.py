"""Format reward: the completion is one thinking block followed by one answer block.

1.0 when the whole completion, with surrounding white space stripped, is ``<think>...</think>``, then
optional white space, then ``<answer>...</answer>`` (the blocks may span lines), and neither block holds
another of these four tags; otherwise 0.0. So nothing may come before, between (but white space) or after
the two blocks, and the answer the accuracy rewards read (the first ``<answer>`` pair) is this one.
Never raises; a non-string scores 0.0.
"""

from __future__ import annotations

import re

_FORMAT = re.compile(r"<think>(.*)</think>\s*<answer>(.*)</answer>", re.DOTALL)
_TAGS = ("<think>", "</think>", "<answer>", "</answer>")


def format_reward(completion: object, solution: object = None) -> float:
    """1.0 for ``<think>...</think> <answer>...</answer>`` and nothing else, else 0.0.

    ``solution`` is ignored; it is accepted so that every reward can be called as ``reward(completion, solution)``.
    """
    if not isinstance(completion, str):
        return 0.0
    completion = completion.strip()
    if not (completion.startswith("<think>") and completion.endswith("</answer>")):
        return 0.0  # the common failures, decided without the regex (which could backtrack on long text)
    found = _FORMAT.fullmatch(completion)
    if found is None:
        return 0.0
    think, answer = found.groups()
    for tag in _TAGS:
        if tag in think or tag in answer:
            return 0.0
    return 1.0
