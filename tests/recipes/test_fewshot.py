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


def test_answers_table_shows_each_models_answer_per_image(tmp_path):
    from visual_rft.data.types import ClassTarget, Sample
    from visual_rft.eval.completions import Completion, write_completions
    from visual_rft.recipes.fewshot import answers_table

    def record(i, label, answer):
        sample = Sample(f"c{i}", [f"images/t{i}.png"], "classification", "?", ClassTarget(label), 112, 112)
        return Completion(
            sample, None if answer is None else f"<think>t</think><answer>{answer}</answer>", None
        )

    labels = ["dark red square", "light blue circle"]
    said = {
        "base": ["dark red star", "light blue circle"],
        "sft": ["Dark red square", None],
        "rft": ["x", "y"],
    }
    for model, answers in said.items():
        (tmp_path / model).mkdir()
        rows = [record(i, label, a) for i, (label, a) in enumerate(zip(labels, answers))]
        write_completions(tmp_path / model / "completions.jsonl", rows)
    table = answers_table(tmp_path).splitlines()
    assert table[0] == "| test image | truth | base | sft | rft |"
    assert table[2] == "| t0.png | dark red square | dark red star ✗ | dark red square ✓ | x ✗ |"
    assert table[3] == "| t1.png | light blue circle | light blue circle ✓ | (none) ✗ | y ✗ |"
