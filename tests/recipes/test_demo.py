"""A miniature of `vrft demo`: the same code path, a random 1M base model and tiny budgets."""

import json

from PIL import Image

from visual_rft.demo import run_demo


def test_demo_miniature_writes_table_curve_and_pictures(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "demo"
    assert (
        run_demo(
            out,
            base_model=str(tiny_model_dir),
            sft_steps=2,
            sft_batch_size=2,
            rft_steps=2,
            group_size=2,
            prompts_per_step=2,
            max_completion_length=8,
            test_limit=4,
            progress=False,
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "| metric | base | sft | rft |" in printed and "detection.mAP" in printed
    results = json.loads((out / "results.json").read_text())
    assert set(results["metrics"]) == {"base", "sft", "rft"}
    assert results["budget"]["examples"] == 20  # 2 shots x 10 novel categories
    assert results["budget"]["rft"]["sequences"] == 2 * 2 * 2
    assert Image.open(out / "reward_curve.png").size[0] > 300
    for name in ("base", "rft"):
        assert (out / f"test0_{name}.png").exists()
    # the same examples trained both: SFT and RFT read the same k-shot file
    rows = [json.loads(x) for x in (out / "rft" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]


def test_the_longest_world_answer_fits_the_completion_budget():
    """A 4-box detection answer (one token a digit) must fit, or SFT and RFT train on cut-off answers."""
    from visual_rft.data.answer import answer_text
    from visual_rft.data.types import Box, DetectionTarget, Sample
    from visual_rft.models.loading import load_processor
    from visual_rft.recipes.fewshot import THINK, FewShotConfig
    from visual_rft.recipes.pretrain import SHIPPED_BASE
    from visual_rft.world import WorldConfig

    assert WorldConfig().max_instances == 4
    boxes = tuple(Box(100 + i, 123, 188, 199 - i) for i in range(4))  # three-digit coordinates everywhere
    sample = Sample("x", ["x.png"], "detection", "?", DetectionTarget(boxes, "red circle"), 224, 224)
    tokenizer = load_processor(SHIPPED_BASE).tokenizer
    n = (
        len(tokenizer(answer_text(sample, None, THINK), add_special_tokens=False)["input_ids"]) + 1
    )  # + <|im_end|>
    assert 120 <= n <= FewShotConfig().max_completion_length
