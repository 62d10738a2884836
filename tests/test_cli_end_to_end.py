"""Issue 5's end to end: `vrft sft` a few steps, then `vrft eval` base and SFT side by side in one table."""

import json

from visual_rft.cli import main
from visual_rft.data.jsonl import write_samples


def test_sft_then_eval_base_and_sft_in_one_table(tiny_model_dir, toy_samples, tmp_path, capsys):
    data = tmp_path / "train.jsonl"
    write_samples(data, toy_samples)
    run = tmp_path / "sft"
    assert (
        main(
            [
                "sft",
                f"model.path={tiny_model_dir}",
                f"data.train={data}",
                f"run.output_dir={run}",
                "run.steps=3",
                "sft.batch_size=4",
                "run.progress=false",
                "run.tensorboard=false",
            ]
        )
        == 0
    )
    sft_model = run / "checkpoint-3" / "model"
    assert (sft_model / "config.json").exists()
    out = tmp_path / "eval"
    assert (
        main(
            [
                "eval",
                f"base={tiny_model_dir}",
                f"sft={sft_model}",
                "--data",
                str(data),
                "--out",
                str(out),
                "--max-new-tokens",
                "8",
                "--no-progress",
            ]
        )
        == 0
    )
    table = (out / "metrics.md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| metric"))
    assert header.split("|")[2:4] == [" base ", " sft "]
    assert "| classification.accuracy |" in table and "| detection.mAP |" in table
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"base", "sft"} <= set(json.dumps(metrics).replace('"', " ").split())
    for name in ("base", "sft"):
        assert (out / name / "completions.jsonl").exists()


def test_bad_config_key_is_a_clear_cli_error(tiny_model_dir, capsys):
    assert main(["train", f"model.path={tiny_model_dir}", "grpo.grup_size=3"]) == 2
    assert "unknown key 'grpo.grup_size'; did you mean 'grpo.group_size'" in capsys.readouterr().err
