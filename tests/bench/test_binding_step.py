"""bench/binding_step.py: the step time of plain SFT and of SFT with the binding loss (eager everywhere, eager in
the held layers, that with the tower's tokens cached, with the position loss too, and with short prompts), side by
side, for one model or several (a wider language model against the 5m)."""

import json
import sys
from dataclasses import replace

import pytest

from visual_rft.models.tiny import SIZES, write_tiny
from visual_rft.world import build

NAMES = [
    "sft + binding (eager)",
    "sft + binding (held eager)",
    "sft + binding (held eager, tower cached)",
]
POSITION = "sft + binding + position (held eager, tower cached)"
SHORT = [
    "the same, short prompts 4 steps in 5",
    "the same, short prompts every step",
    "the same, short prompts 4 steps in 5 at the full prompt's positions",
]


def run_bench(load_bench, monkeypatch, tmp_path, models, *extra):
    data = build("grounding", tmp_path / "w", 8, seed=1, categories=["pair"], name="pair")
    argv = [
        "binding_step.py",
        "--model",
        *map(str, models),
        "--data",
        str(data),
        "--out",
        str(tmp_path / "o"),
    ]
    options = ["--steps", "2", "--warmup", "1", "--batch", "4", "--position-layer", "1"]  # 1m: 2 layers
    monkeypatch.setattr(sys, "argv", [*argv, *options, *extra])
    load_bench("binding_step").main()
    return json.loads((tmp_path / "o" / "binding_step.json").read_text())


@pytest.mark.slow
def test_every_variant_trains_and_is_timed_and_the_binding_ones_agree(
    load_bench, tiny_model_dir, tmp_path, monkeypatch
):
    result = run_bench(load_bench, monkeypatch, tmp_path, [tiny_model_dir])
    timed = result["models"][str(tiny_model_dir)]
    assert set(timed["s_per_step"]) == {"sft (sdpa)", *NAMES, POSITION, *SHORT}
    assert all(t > 0 for t in timed["s_per_step"].values())
    assert "binding/selectivity" not in timed["last_metrics"]["sft (sdpa)"]
    assert "position/cell_rmse" in timed["last_metrics"][POSITION]
    assert [timed["last_metrics"][n]["short_prompts"] for n in (POSITION, *SHORT)] == [0, 1, 1, 1]  # step 2
    assert not any("position/" in k for n in NAMES for k in timed["last_metrics"][n])
    last = [timed["last_metrics"][n] for n in NAMES]
    assert 0 < last[0]["binding/selectivity"] <= 1  # it read attention
    for m in last[1:]:  # the same 5 steps from the same model: the same numbers, however computed
        for key in ("loss", "binding/loss", "binding/selectivity"):
            assert m[key] == pytest.approx(last[0][key], rel=1e-3), key


@pytest.mark.slow
def test_several_models_are_timed_side_by_side_on_the_chosen_variants(
    load_bench, tiny_model_dir, tmp_path, monkeypatch
):
    wide = write_tiny(tmp_path / "wide", size=replace(SIZES["1m"], hidden=192), seed=0)
    result = run_bench(load_bench, monkeypatch, tmp_path, [tiny_model_dir, wide], "--variants", "0", "4")
    assert list(result["models"]) == [str(tiny_model_dir), str(wide)]
    narrow, wider = result["models"][str(tiny_model_dir)], result["models"][str(wide)]
    assert wider["parameters"]["language"] > narrow["parameters"]["language"]  # each model's own counts
    for timed in (narrow, wider):
        assert list(timed["s_per_step"]) == ["sft (sdpa)", POSITION]
        assert all(t > 0 for t in timed["s_per_step"].values())
    assert (
        narrow["last_metrics"][POSITION]["loss"] != wider["last_metrics"][POSITION]["loss"]
    )  # its own model
