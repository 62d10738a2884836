"""`run_fewshot` settings beyond the demo's: the GRPO rewards reach the trainer."""

import json

import pytest

from visual_rft.config import load_config
from visual_rft.recipes.base_model import THINK
from visual_rft.recipes.fewshot import FewShotConfig, ensure_world, run_fewshot, task_files
from visual_rft.world import WorldConfig, world_settings


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


def test_a_world_folder_drawn_with_other_settings_is_refused_before_any_run(tmp_path):
    """A base pre-trained with digit fills must not be benchmarked on a world drawn without them (or on
    another seed): the folder's world.json says how it was drawn, and a mismatch names the setting."""
    (tmp_path / "world.json").write_text(json.dumps({"seed": 0, "config": world_settings(WorldConfig())}))
    assert ensure_world(tmp_path, 0, WorldConfig()) == tmp_path  # the same settings: used as it is
    with pytest.raises(ValueError, match=r"world.json: the world there was drawn with digit_fills=False"):
        ensure_world(tmp_path, 0, WorldConfig(digit_fills=True))
    with pytest.raises(ValueError, match="drawn with seed=0, this run asks for 3"):
        ensure_world(tmp_path, 3, WorldConfig())
    cfg = load_config(
        FewShotConfig,
        None,
        ["world.digit_fills=true", f"world_dir={tmp_path}", f"out_dir={tmp_path / 'run'}", "progress=false"],
    )
    with pytest.raises(ValueError, match="digit_fills"):
        run_fewshot(cfg)  # before any training


@pytest.mark.parametrize(
    "override, message",
    [
        ("sft.sft.short_prompts=2", r"sft: sft.short_prompts: 2.0 is not a share"),
        ("sft.run.steps=0", r"sft: run.steps must be >= 1"),
        ("rft.grpo.temperature=0", r"rft: grpo.temperature must be > 0"),
        ("rft.model.cache_images=true", r"rft: model.cache_images is an SFT option"),
        (
            "rft.grpo.rewards={cls: 1, format: 1}",
            r"rft: grpo.rewards.cls reads classification answers, and the data has none \(detection\)",
        ),
        ("eval.categories=presnt", r"eval: categories 'presnt': expected one of"),
        ("eval.limit=-1", r"eval: limit must be >= 1, got -1"),
        ("shots=3", r"shots: the world has k-shot files for k in \[1, 2, 4, 8, 16\], not 3"),
    ],
)
def test_methods_the_trainers_would_refuse_are_refused_before_the_world_is_drawn(tmp_path, override, message):
    cfg = load_config(FewShotConfig, None, [override, f"out_dir={tmp_path / 'run'}", "progress=false"])
    with pytest.raises(ValueError, match=message):
        run_fewshot(cfg)
    assert not (tmp_path / "run").exists()


def test_a_world_from_before_world_json_kept_its_settings_is_used_as_it_is(tmp_path):
    (tmp_path / "world.json").write_text(json.dumps({"files": {}}))
    assert ensure_world(tmp_path, 5, WorldConfig(digit_fills=True)) == tmp_path


def test_a_world_folder_without_the_tasks_files_is_refused_before_any_training(tmp_path):
    """A world folder from before world.json kept its settings passes ensure_world; a file it lacks is named
    before SFT runs, the test file too (read only after both trainings)."""
    world = tmp_path / "world"
    world.mkdir()
    (world / "world.json").write_text(json.dumps({"files": {}}))
    (world / "cls_fewshot_2shot.jsonl").write_text("")
    with pytest.raises(FileNotFoundError, match=r"cls_fewshot_test.jsonl: the world folder has no such file"):
        task_files(world, "classification", 2)
    (world / "cls_fewshot_test.jsonl").write_text("")
    assert task_files(world, "classification", 2) == (
        world / "cls_fewshot_2shot.jsonl",
        world / "cls_fewshot_test.jsonl",
    )
    cfg = load_config(
        FewShotConfig,
        None,
        ["task=detection", f"world_dir={world}", f"out_dir={tmp_path / 'run'}", "progress=false"],
    )
    with pytest.raises(FileNotFoundError, match=r"det_novel_2shot.jsonl: the world folder has no such file"):
        run_fewshot(cfg)
    assert not (tmp_path / "run" / "sft").exists()
