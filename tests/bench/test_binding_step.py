"""bench/binding_step.py: the step time of plain SFT and of SFT with the binding loss (eager everywhere, eager in
the held layers, that with the tower's tokens cached, and with the position loss too), side by side."""

import json
import sys

import pytest

from visual_rft.world import build


@pytest.mark.slow
def test_every_variant_trains_and_is_timed_and_the_binding_ones_agree(
    load_bench, tiny_model_dir, tmp_path, monkeypatch
):
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
    options = ["--steps", "2", "--warmup", "1", "--batch", "4", "--position-layer", "1"]  # 1m: 2 layers
    monkeypatch.setattr(sys, "argv", [*argv, *options])
    load_bench("binding_step").main()
    result = json.loads((tmp_path / "o" / "binding_step.json").read_text())
    names = [
        "sft + binding (eager)",
        "sft + binding (held eager)",
        "sft + binding (held eager, tower cached)",
    ]
    position = "sft + binding + position (held eager, tower cached)"
    assert set(result["s_per_step"]) == {"sft (sdpa)", *names, position}
    assert all(t > 0 for t in result["s_per_step"].values())
    assert "binding/selectivity" not in result["last_metrics"]["sft (sdpa)"]
    assert "position/cell_rmse" in result["last_metrics"][position]
    assert not any("position/" in k for n in names for k in result["last_metrics"][n])
    last = [result["last_metrics"][n] for n in names]
    assert 0 < last[0]["binding/selectivity"] <= 1  # it read attention
    for m in last[1:]:  # the same 5 steps from the same model: the same numbers, however computed
        for key in ("loss", "binding/loss", "binding/selectivity"):
            assert m[key] == pytest.approx(last[0][key], rel=1e-3), key
