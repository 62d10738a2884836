"""Every preset of configs/paper/ loads, names known rewards, and trains one step on the tiny model with
only its model, data, size and step count overridden (so that a preset can never rot)."""

import dataclasses
import json
from pathlib import Path

import pytest
from PIL import Image

from visual_rft import rewards
from visual_rft.cli import main
from visual_rft.config import EvalOptions, SFTTrainConfig, TrainConfig, load_config
from visual_rft.data.builders import build_classification
from visual_rft.data.jsonl import write_samples
from visual_rft.data.types import GroundingTarget, Sample
from visual_rft.eval.runner import check_eval_options

PAPER = Path(__file__).parents[1] / "configs" / "paper"
TRAINING = sorted(p for p in PAPER.glob("table*.yaml") if not p.stem.endswith("_eval"))
EVALS = sorted([*PAPER.glob("eval_*.yaml"), *PAPER.glob("*_eval.yaml")])
TASK = {"classification": "classification", "coco": "detection", "lvis": "detection", "lisa": "grounding"}
SMALL = ["run.steps=1", "run.tensorboard=false", "run.progress=false", "run.sample_every=0"]
GRPO_SMALL = [
    "grpo.group_size=2",
    "grpo.micro_batch_size=2",
    "grpo.prompts_per_step=1",
    "grpo.max_completion_length=4",
]
SFT_SMALL = ["sft.batch_size=2", "sft.micro_batch_size=0"]


def _task(path: Path) -> str:
    return next(task for key, task in TASK.items() if key in path.stem)


def test_every_table_has_a_preset_and_an_sft_baseline():
    tables = {p.stem.split("_")[0] for p in TRAINING}
    assert tables >= {"table2", "table3", "table4", "table6", "table7"}
    assert (PAPER / "table8_lvis_ovd_eval.yaml").is_file()
    for table in tables:
        assert any(p.stem.startswith(table) and p.stem.endswith("_sft") for p in TRAINING), table


@pytest.mark.parametrize("path", EVALS, ids=lambda p: p.name)
def test_eval_presets_load(path):
    options = load_config(EvalOptions, path)
    assert options.temperature == 0.0
    check_eval_options(options)


@pytest.mark.parametrize("path", TRAINING, ids=lambda p: p.stem)
def test_preset_trains_one_step_on_the_tiny_model(path, tiny_model_dir, draw_samples, tmp_path):
    sft = path.stem.endswith("_sft")
    cfg = load_config(SFTTrainConfig if sft else TrainConfig, path)
    for name in getattr(getattr(cfg, "grpo", None), "rewards", {}):
        assert name in rewards.names()
    task = _task(path)
    every = 1 if task != "classification" else 0
    samples = draw_samples(tmp_path / "img", n=4, size=56, detection_every=every)
    if task == "grounding":
        samples = [
            Sample(
                s.id,
                s.images,
                "grounding",
                "Where is the circle?",
                GroundingTarget(s.target.boxes[0]),
                s.width,
                s.height,
            )
            for s in samples
        ]
    write_samples(tmp_path / "train.jsonl", samples)
    small = SMALL + (SFT_SMALL if sft else GRPO_SMALL)
    where = [
        f"model.path={tiny_model_dir}",
        f"data.train={tmp_path / 'train.jsonl'}",
        f"run.output_dir={tmp_path / 'run'}",
    ]
    assert main(["sft" if sft else "train", str(path), *where, *small]) == 0
    assert (tmp_path / "run" / "checkpoint-1").is_dir()
    assert dataclasses.asdict(cfg)["model"]["path"] == ""  # the preset itself names no model


def test_a_built_test_set_evaluates_with_its_paper_eval_preset(tiny_model_dir, tmp_path):
    for split in ("train", "test"):
        for cls in ("pink_primrose", "canterbury_bells"):
            (tmp_path / split / cls).mkdir(parents=True)
            Image.new("RGB", (32, 32), "white").save(tmp_path / split / cls / "0.png")
    build_classification(
        tmp_path / "data", train_dir=tmp_path / "train", test_dir=tmp_path / "test", dataset="flowers"
    )
    args = [
        f"base={tiny_model_dir}",
        "--data",
        str(tmp_path / "data" / "test.jsonl"),
        "--out",
        str(tmp_path / "ev"),
        "--config",
        str(PAPER / "eval_classification.yaml"),
        "max_new_tokens=4",
        "progress=false",
    ]
    assert main(["eval", *args]) == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())["base"]
    assert metrics["n"] == 2 and {"accuracy", "lenient_accuracy"} <= set(metrics)
