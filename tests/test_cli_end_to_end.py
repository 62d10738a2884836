"""Issue 5's end to end: `vrft sft` a few steps, then `vrft eval` base and SFT side by side in one table."""

import json

import pytest
import torch

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
                "max_new_tokens=8",
                "progress=false",
            ]
        )
        == 0
    )
    table = (out / "metrics.md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| metric"))
    assert header.split("|")[2:4] == [" base ", " sft "]
    assert "| classification.accuracy |" in table and "| detection.mAP |" in table
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == ["base", "sft"]  # one column per model, in the order given
    for name, folder in (("base", tiny_model_dir), ("sft", sft_model)):
        m = metrics[name]
        assert m["task"] == "mixed" and m["classification"]["n"] == 6 and m["detection"]["n_queries"] == 2
        run = json.loads((out / name / "run.json").read_text())
        assert run["model_dir"] == str(folder) and run["options"]["max_new_tokens"] == 8
        records = (out / name / "completions.jsonl").read_text().splitlines()
        assert len(records) == 8 and all(json.loads(r)["n_tokens"] <= 8 for r in records)
    # the table shows each model's own numbers, in its own column
    row = next(line for line in table.splitlines() if line.startswith("| classification.unparseable |"))
    cells = [c.strip() for c in row.split("|")[2:4]]
    for cell, name in zip(cells, ("base", "sft")):
        assert cell == f"{100 * metrics[name]['classification']['unparseable']:.1f}"


def test_bad_config_key_is_a_clear_cli_error(tiny_model_dir, capsys):
    assert main(["train", f"model.path={tiny_model_dir}", "grpo.grup_size=3"]) == 2
    assert "unknown key 'grpo.grup_size'; did you mean 'grpo.group_size'" in capsys.readouterr().err


def test_eval_options_are_key_value_and_old_flags_get_a_hint(tiny_model_dir, toy_samples, tmp_path, capsys):
    data = tmp_path / "test.jsonl"
    write_samples(data, toy_samples[:2])
    args = ["eval", str(tiny_model_dir), "--data", str(data), "--out", str(tmp_path / "e")]
    with pytest.raises(SystemExit):
        main([*args, "--max-new-tokens", "4"])
    assert "--max-new-tokens is now max_new_tokens=VALUE" in capsys.readouterr().err
    assert main([*args, "batch_sise=2"]) == 2  # not an option and not a folder: a clear error
    assert "unknown option 'batch_sise'; did you mean 'batch_size'?" in capsys.readouterr().err
    assert main([*args, f"rft={tmp_path / 'nothing'}"]) == 2  # checked before the first model loads
    err = capsys.readouterr().err
    assert (
        "not a model folder (no config.json or adapter_config.json): rft=" in err
        and "Loading weights" not in err
    )
    assert main([*args, "max_new_tokens=four"]) == 2
    assert "'max_new_tokens' must be int" in capsys.readouterr().err


def test_a_lora_run_trains_evaluates_resumes_and_merges_from_the_command_line(
    tiny_model_dir, toy_samples, tmp_path, capsys
):
    """`vrft train` with LoRA: checkpoint-N/model is a peft adapter; `vrft eval` takes it as a model folder,
    `--resume` continues from it, `vrft model merge` writes an ordinary folder whose logits are the
    adapter model's."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    from visual_rft.models.loading import is_adapter, load_model, load_processor

    data = tmp_path / "train.jsonl"
    write_samples(data, toy_samples)
    run = tmp_path / "lora"
    train = [
        "sft",
        f"model.path={tiny_model_dir}",
        f"data.train={data}",
        f"run.output_dir={run}",
        "model.lora.enabled=true",
        "model.lora.r=4",
        "optim.lr=1e-2",
        "sft.batch_size=2",
        "run.save_every=1",
        "run.progress=false",
        "run.tensorboard=false",
    ]
    assert main([*train, "run.steps=1"]) == 0
    assert main([*train, "run.steps=2", "--resume"]) == 0  # the LoRA checkpoint resumes
    adapter = run / "checkpoint-2" / "model"
    assert is_adapter(adapter) and not (adapter / "config.json").exists()
    out = tmp_path / "eval"
    assert main(["eval", f"lora={adapter}", "--data", str(data), "--out", str(out), "max_new_tokens=4"]) == 0
    assert json.loads((out / "metrics.json").read_text())["lora"]["classification"]["n"] == 6
    merged = tmp_path / "merged"
    assert main(["model", "merge", str(adapter), str(merged)]) == 0
    assert (merged / "config.json").exists() and (merged / "tokenizer_config.json").exists()
    assert main(["model", "merge", str(adapter), str(merged)]) == 2  # a model there: refused, a clear error
    assert "already holds a model" in capsys.readouterr().err
    assert (
        load_processor(merged).tokenizer.get_vocab() == load_processor(tiny_model_dir).tokenizer.get_vocab()
    )

    plain = AutoModelForImageTextToText.from_pretrained(merged).eval()  # ordinary transformers loading
    base = AutoModelForImageTextToText.from_pretrained(tiny_model_dir).eval()
    with_adapter = PeftModel.from_pretrained(
        AutoModelForImageTextToText.from_pretrained(tiny_model_dir), str(adapter)
    ).eval()  # unmerged: base + LoRA branch
    ids = torch.tensor([[5, 17, 42, 9, 77, 3]])
    with torch.no_grad():
        merged_logits, adapter_logits = plain(input_ids=ids).logits, with_adapter(input_ids=ids).logits
        base_logits = base(input_ids=ids).logits
    assert not torch.allclose(adapter_logits, base_logits, atol=1e-4)  # the two steps did train
    torch.testing.assert_close(merged_logits, adapter_logits, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # load_model merges an adapter folder itself
        torch.testing.assert_close(load_model(adapter, device="cpu")(input_ids=ids).logits, merged_logits)


def test_qwen3_vl_builds_trains_and_evaluates_through_the_same_commands(
    toy_samples, tmp_path, letters_reward, capsys
):
    """The third family end to end: `vrft model tiny --family qwen3_vl`, one SFT step, one GRPO step
    (rollout, reference, policy passes with the deepstack features), `vrft eval` of all three."""
    from safetensors.torch import load_file

    base = tmp_path / "qwen3"
    assert main(["model", "tiny", str(base), "--size", "1m", "--family", "qwen3_vl"]) == 0
    data = tmp_path / "train.jsonl"
    write_samples(data, toy_samples)
    common = [f"data.train={data}", "run.steps=1", "run.progress=false", "run.tensorboard=false"]
    assert (
        main(["sft", f"model.path={base}", f"run.output_dir={tmp_path / 'sft'}", "sft.batch_size=4", *common])
        == 0
    )
    grpo = [
        "train",
        f"model.path={base}",
        f"run.output_dir={tmp_path / 'rft'}",
        "grpo.group_size=2",
        "grpo.prompts_per_step=2",
        "grpo.max_completion_length=6",
        "grpo.beta=0.1",
        "optim.lr=1e-3",
        f'grpo.rewards={{"{letters_reward}": 1}}',
    ]
    assert main([*grpo, *common]) == 0
    before = load_file(base / "model.safetensors")
    models = {"base": base, "sft": tmp_path / "sft" / "checkpoint-1" / "model"}
    models["rft"] = tmp_path / "rft" / "checkpoint-1" / "model"
    for name in ("sft", "rft"):  # each step trained the language model
        after = load_file(models[name] / "model.safetensors")
        assert any(not torch.equal(after[k], before[k]) for k in before if "language_model" in k), name
    out = tmp_path / "eval"
    args = ["eval", *(f"{n}={p}" for n, p in models.items()), "--data", str(data), "--out", str(out)]
    assert main([*args, "max_new_tokens=6", "progress=false"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == ["base", "sft", "rft"]
    for name in models:
        assert json.loads((out / name / "run.json").read_text())["family"] == "qwen3_vl"
        records = [json.loads(r) for r in (out / name / "completions.jsonl").read_text().splitlines()]
        boxed = [r for r in records if r["sample"]["task"] == "detection"]
        assert boxed and all(r["frame"]["convention"] == "norm1000" for r in boxed)  # 0-1000, from model_type
