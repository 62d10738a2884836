"""GRPO learns: on a simple synthetic task, a CPU run of under a minute raises the reward clearly.

The task: "What colour is the circle?" on 112-px images of red or blue circles. The starting policy is the
tiny model after a short SFT (20 steps), which writes the answer format but is often wrong; GRPO with the
classification reward alone must then make the answer follow the image.
"""

import json

import pytest

from visual_rft.config import SFTTrainConfig, TrainConfig, load_config
from visual_rft.rl.trainer import GRPOTrainer
from visual_rft.sft.trainer import SFTTrainer


@pytest.mark.slow
def test_grpo_raises_the_reward(tiny_model_dir, tmp_path, draw_samples):
    samples = draw_samples(tmp_path / "img", n=32, detection_every=0)
    quiet = ["run.tensorboard=false", "run.progress=false", "run.save_every=0"]
    sft = load_config(
        SFTTrainConfig,
        None,
        [
            f"model.path={tiny_model_dir}",
            f"run.output_dir={tmp_path}/sft",
            "run.steps=20",
            "sft.batch_size=8",
            "optim.lr=3e-3",
            *quiet,
        ],
    )
    SFTTrainer(sft, samples=samples).fit()
    grpo = load_config(
        TrainConfig,
        None,
        [
            f"model.path={tmp_path}/sft/checkpoint-20/model",
            f"run.output_dir={tmp_path}/grpo",
            "run.steps=100",
            "grpo.group_size=8",
            "grpo.prompts_per_step=4",
            "grpo.max_completion_length=16",
            "optim.lr=1e-3",
            "grpo.rewards={cls: 1}",
            *quiet,
        ],
    )
    GRPOTrainer(grpo, samples=samples).fit()
    rows = [json.loads(x) for x in (tmp_path / "grpo" / "metrics.jsonl").read_text().splitlines()]
    curve = [r["reward/total"] for r in rows]
    first, last = sum(curve[:10]) / 10, sum(curve[-10:]) / 10
    print("reward curve:", [round(c, 2) for c in curve])
    assert last >= first + 0.3, (first, last)
    assert last >= 0.7, last
