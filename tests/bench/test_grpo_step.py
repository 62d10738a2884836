"""bench/grpo_step.py at a tiny size: ours (prefix shared), ours per row and TRL in one run, every row
complete, each image encoded once per pass by ours and G times by TRL."""

import json

import pytest


@pytest.mark.slow
def test_grpo_step_bench_runs_all_three_trainers_at_two_group_sizes(load_bench, tmp_path, capsys):
    bench = load_bench("grpo_step")
    out = tmp_path / "grpo_step.json"
    argv = ["--size", "1m", "--image-sizes", "56", "--group-sizes", "2", "3", "--prompts", "1"]
    argv += ["--completion-length", "3", "--warmup", "0", "--steps", "1", "--repeats", "1", "--threads", "1"]
    assert bench.main([*argv, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [(r["group_size"], r["image_px"]) for r in result["rows"]] == [(2, 56), (3, 56)]
    for row in result["rows"]:
        G = row["group_size"]
        assert row["same_completion_length"]  # every trainer sampled exactly 3 tokens per completion
        # three vision passes a step (rollout, reference, update): ours one image each, TRL G copies of it
        for ours in ("ours", "ours_per_row"):
            assert (row[ours]["vision_calls_per_step"], row[ours]["images_encoded_per_step"]) == (3, 3)
        assert (row["trl"]["vision_calls_per_step"], row["trl"]["images_encoded_per_step"]) == (3, 3 * G)
        parts = row["ours"]["mean_parts_s"]
        assert 0 < parts["reference_logprobs"] + parts["update"] <= parts["time/update"]
        assert 0 < parts["policy_forward_backward"] < parts["update"]
        assert set(row["sharing_gain"]) == {"step", "reference_logprobs", "policy_forward_backward", "update"}
        assert all(v > 0 for v in row["sharing_gain"].values())
    table = capsys.readouterr().out
    assert "| 3 | 56 px |" in table and "ours per row steps/s" in table
