"""A miniature of `vrft demo`: the same code path, a random 1M base model and tiny budgets."""

import json
from hashlib import sha256

import pytest
from PIL import Image

from visual_rft.config import load_config
from visual_rft.data.jsonl import read_samples
from visual_rft.demo import run_demo
from visual_rft.recipes.fewshot import FewShotConfig


@pytest.mark.slow
def test_demo_miniature_writes_table_curve_and_pictures(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "demo"
    cfg = load_config(
        FewShotConfig,
        None,
        [
            f"base_model={tiny_model_dir}",
            "sft.run.steps=2",
            "sft.sft.batch_size=2",
            "rft.run.steps=2",
            "rft.grpo.group_size=2",
            "rft.grpo.prompts_per_step=2",
            "rft.grpo.max_completion_length=8",
            "eval.max_new_tokens=8",
            "eval.limit=4",
            "progress=false",
        ],
    )
    assert run_demo(out, cfg) == 0
    printed = capsys.readouterr().out
    assert "| metric | base | sft | rft |" in printed and "classification.accuracy" in printed
    assert "| test image | truth | base | sft | rft |" in printed  # the answers, image by image
    results = json.loads((out / "results.json").read_text())
    assert set(results["metrics"]) == {"base", "sft", "rft"}
    assert results["budget"]["examples"] == 24  # 1 shot x 24 few-shot classes
    assert results["budget"]["rft"]["sequences"] == 2 * 2 * 2
    assert Image.open(out / "reward_curve.png").size[0] > 300
    # the same examples trained both: SFT and RFT saw the very samples of the 1-shot file, in its order
    shots = read_samples(out / "world" / "cls_fewshot_1shot.jsonl")
    fingerprint = sha256("\n".join(s.id for s in shots).encode()).hexdigest()
    for name in ("sft", "rft"):
        record = json.loads((out / name / "data.json").read_text())
        assert record["n_samples"] == 24 and record["ids_sha256"] == fingerprint
        rows = [json.loads(x) for x in (out / name / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows] == [1, 2]


def test_the_longest_world_answer_fits_the_completion_budget():
    """A 4-box detection answer (one token a digit) must fit, or SFT and RFT train on cut-off answers."""
    from visual_rft.data.answer import answer_text
    from visual_rft.data.types import Box, DetectionTarget, Sample
    from visual_rft.models.loading import load_processor
    from visual_rft.recipes.base_model import SHIPPED_BASE, THINK
    from visual_rft.world import WorldConfig

    assert WorldConfig().max_instances == 4
    boxes = tuple(Box(100 + i, 123, 188, 199 - i) for i in range(4))  # three-digit coordinates everywhere
    sample = Sample("x", ["x.png"], "detection", "?", DetectionTarget(boxes, "red circle"), 224, 224)
    tokenizer = load_processor(SHIPPED_BASE).tokenizer
    n = (
        len(tokenizer(answer_text(sample, None, THINK), add_special_tokens=False)["input_ids"]) + 1
    )  # + <|im_end|>
    cfg = FewShotConfig()
    assert 120 <= n <= cfg.rft.grpo.max_completion_length and n <= cfg.eval.max_new_tokens
