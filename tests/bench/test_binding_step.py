"""bench/binding_step.py: the step time of plain SFT and of SFT with the binding loss, side by side."""

import json
import sys

import pytest

from visual_rft.world import build


@pytest.mark.slow
def test_both_variants_train_and_are_timed(load_bench, tiny_model_dir, tmp_path, monkeypatch):
    data = build("grounding", tmp_path / "w", 8, seed=1, categories=["pair"], name="pair")
    argv = [
        "binding_step.py",
        "--model",
        str(tiny_model_dir),
        "--data",
        str(data),
        "--out",
        str(tmp_path / "o"),
    ]
    monkeypatch.setattr(sys, "argv", [*argv, "--steps", "2", "--warmup", "1", "--batch", "4"])
    load_bench("binding_step").main()
    result = json.loads((tmp_path / "o" / "binding_step.json").read_text())
    assert set(result["s_per_step"]) == {"sft (sdpa)", "sft + binding (eager)"}
    assert all(t > 0 for t in result["s_per_step"].values())
    assert "binding/selectivity" not in result["last_metrics"]["sft (sdpa)"]
    assert (
        0 < result["last_metrics"]["sft + binding (eager)"]["binding/selectivity"] <= 1
    )  # it read attention
