"""bench/scaling.py runs 1 and 2 processes (the real command lines) and writes its JSON."""

import json

import pytest


@pytest.mark.slow
def test_scaling_bench_runs_one_and_two_processes(load_bench, tmp_path):
    out = tmp_path / "scaling.json"
    argv = ["--procs", "1", "2", "--steps", "1", "--warmup", "1", "--group-size", "2", "--prompts", "1"]
    load_bench("scaling").main([*argv, "--completion-length", "4", "--px", "56", "--out", str(out)])
    report = json.loads(out.read_text())
    assert [r["procs"] for r in report["results"]] == [1, 2]
    assert [r["global_prompts_per_step"] for r in report["results"]] == [1, 2]
    for r in report["results"]:
        assert r["steps_per_s"] == pytest.approx(1 / r["step_s"]) and r["step_s"] > 0
        assert r["prompts_per_s"] == pytest.approx(r["global_prompts_per_step"] * r["steps_per_s"])
        assert 1 <= r["completion_length"] <= 4 and r["wall_s"] > r["step_s"]
    assert report["machine"]["accelerate"] and len(report["load_average"]["start"]) == 3
