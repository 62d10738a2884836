"""`run_fewshot` settings beyond the demo's: the GRPO rewards reach the trainer."""

import json

import pytest

from visual_rft.config import load_config
from visual_rft.recipes.base_model import THINK
from visual_rft.recipes.fewshot import FewShotConfig, run_fewshot


@pytest.mark.slow
def test_rft_rewards_replace_the_task_defaults(tiny_model_dir, tmp_path):
    out = tmp_path / "fewshot"
    cfg = load_config(
        FewShotConfig,
        None,
        [
            "task=classification",
            "shots=1",
            f"base_model={tiny_model_dir}",
            f"out_dir={out}",
            "sft.run.steps=1",
            "sft.sft.batch_size=2",
            "rft.run.steps=1",
            "rft.grpo.group_size=2",
            "rft.grpo.max_completion_length=6",
            "eval.max_new_tokens=6",
            "eval.limit=2",
            "eval_base=false",
            "progress=false",
            "rft.grpo.rewards={cls: 1, cls_words: 0.5, format: 1}",
        ],
    )
    results = run_fewshot(cfg)
    assert results["config"]["rft"]["grpo"]["rewards"] == {"cls": 1.0, "cls_words": 0.5, "format": 1.0}
    # a recipe's own defaults survive an override of one key of the same section
    assert (
        results["config"]["sft"]["sft"]["think"] == THINK and results["config"]["rft"]["optim"]["lr"] == 5e-5
    )
    (row,) = [json.loads(x) for x in (out / "rft" / "metrics.jsonl").read_text().splitlines()]
    assert {"reward/cls/mean", "reward/cls_words/mean", "reward/format/mean"} <= set(row)
    assert row["reward/total"] == pytest.approx(
        row["reward/cls/mean"] + 0.5 * row["reward/cls_words/mean"] + row["reward/format/mean"]
    )
