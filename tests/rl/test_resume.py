"""A run killed with SIGKILL mid-training and resumed ends with the same weights as an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from visual_rft.data.jsonl import write_samples


def _cmd(model_dir, data, run_dir, *extra):
    return [
        sys.executable,
        "-m",
        "visual_rft.cli",
        "train",
        f"model.path={model_dir}",
        f"data.train={data}",
        f"run.output_dir={run_dir}",
        "run.steps=6",
        "run.save_every=2",
        "run.keep_last=5",
        "grpo.group_size=4",
        "grpo.prompts_per_step=2",
        "grpo.max_completion_length=6",
        "grpo.mu=2",
        "optim.lr=1e-3",
        "optim.schedule=cosine",
        "optim.warmup_steps=2",
        'grpo.rewards={"toy_rewards:letters": 1}',
        "run.tensorboard=false",
        "run.progress=false",
        *extra,
    ]


@pytest.mark.slow
def test_sigkill_then_resume_gives_identical_weights(tiny_model_dir, toy_samples, tmp_path, letters_reward):
    """letters_reward: tmp_path/toy_rewards.py, on the PYTHONPATH of the training processes below."""
    data = tmp_path / "train.jsonl"
    write_samples(data, toy_samples)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
    }
    a, b = tmp_path / "a", tmp_path / "b"
    subprocess.run(_cmd(tiny_model_dir, data, a), check=True, env=env, capture_output=True)

    proc = subprocess.Popen(
        _cmd(tiny_model_dir, data, b), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while not (b / "checkpoint-2").exists():
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and not (b / "checkpoint-6").exists()

    subprocess.run(_cmd(tiny_model_dir, data, b, "--resume"), check=True, env=env, capture_output=True)
    wa = load_file(a / "checkpoint-6" / "model" / "model.safetensors")
    wb = load_file(b / "checkpoint-6" / "model" / "model.safetensors")
    assert wa.keys() == wb.keys()
    start = load_file(tiny_model_dir / "model.safetensors")
    assert any(not torch.equal(wa[k], start[k]) for k in wa)  # training did change the weights
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    # the log has every step once, with the same rewards as the uninterrupted run
    rows_a = [json.loads(x) for x in (a / "metrics.jsonl").read_text().splitlines()]
    rows_b = [json.loads(x) for x in (b / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows_b] == [1, 2, 3, 4, 5, 6]
    assert [r["reward/total"] for r in rows_a] == [r["reward/total"] for r in rows_b]
    assert [r["loss"] for r in rows_a] == [r["loss"] for r in rows_b]
