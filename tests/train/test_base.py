"""What both trainers share: device memory statistics in the metrics (CUDA only)."""

import json

import pytest
import torch

from visual_rft.config import TrainConfig, load_config
from visual_rft.rl.trainer import GRPOTrainer
from visual_rft.train.base import device_memory


def test_a_cpu_logs_no_memory_statistics():
    assert device_memory(torch.device("cpu")) == {}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_gpu_run_logs_its_peak_memory_and_trains_in_bf16_mixed(tiny_model_dir, toy_samples, tmp_path):
    cfg = load_config(
        TrainConfig,
        None,
        [
            f"model.path={tiny_model_dir}",
            f"run.output_dir={tmp_path}",
            "model.device=cuda",
            "run.steps=1",
            "run.tensorboard=false",
            "run.progress=false",
            "grpo.group_size=2",
            "grpo.max_completion_length=8",
        ],
    )
    trainer = GRPOTrainer(cfg, samples=toy_samples)
    expected = "bf16-mixed" if torch.cuda.is_bf16_supported() else "fp32"
    assert trainer.precision.name == expected and {p.dtype for p in trainer.params} == {torch.float32}
    trainer.fit()
    row = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert (
        row["memory/peak_allocated_gb"] > 0 and row["memory/reserved_gb"] >= row["memory/peak_allocated_gb"]
    )
