"""Verifiable rewards: plain functions of a completion string and its solution, returning a float.

Every reward is called as ``reward(completion, solution)``, returns a finite float in [0, 1] and never
raises, whatever completion and solution it is given (only a bad option, such as an unknown ``match``
mode, is an error). ``solution`` is a target object (`DetectionTarget`, `ClassTarget`,
`GroundingTarget`, boxes already in the completion's coordinate convention) or the solution string of
Visual-RFT's released datasets. Reading an answer out of a completion (the rules every reward shares) is
`visual_rft.data.answer`; box validity, IoU, GIoU and the paper's greedy matching are
`visual_rft.data.boxes`. The modules here, one idea each:

- `detection`, `classification`, `grounding`, `format`: the rewards, one module per task;
- `registry`: rewards by name, task defaults with weights, user rewards, `score` for a batch;
- `metrics`: per-reward mean and parse-failure share for the log;
- `trl`: the adapter to TRL's reward-function signature.

Nothing here imports torch or the model and training code.
"""

from visual_rft.rewards.classification import cls_lenient_reward, cls_reward, cls_words_reward
from visual_rft.rewards.detection import confidence_reward, iou_reward
from visual_rft.rewards.format import format_reward
from visual_rft.rewards.grounding import grounding_giou_reward, grounding_reward
from visual_rft.rewards.metrics import reward_metrics
from visual_rft.rewards.registry import answer_kind, get, load, names, score, task_defaults
from visual_rft.rewards.trl import TrlReward, to_trl, trl_rewards

__all__ = [
    "TrlReward",
    "answer_kind",
    "cls_lenient_reward",
    "cls_reward",
    "cls_words_reward",
    "confidence_reward",
    "format_reward",
    "get",
    "grounding_giou_reward",
    "grounding_reward",
    "iou_reward",
    "load",
    "names",
    "reward_metrics",
    "score",
    "task_defaults",
    "to_trl",
    "trl_rewards",
]
