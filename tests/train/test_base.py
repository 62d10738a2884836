"""What both trainers share: device memory statistics in the metrics (CUDA only)."""

import json

import pytest
import torch

from visual_rft.config import SFTTrainConfig, TrainConfig, load_config
from visual_rft.rl.trainer import GRPOTrainer
from visual_rft.train.base import check_train_config, device_memory


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


# ---------------------------------------------------------------- check_train_config: the shared sections


@pytest.mark.parametrize("cls", [TrainConfig, SFTTrainConfig])
def test_the_defaults_pass(cls):
    check_train_config(cls())


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "run.precision=bf16",
            r"run.precision must be auto or one of fp32, bf16-mixed, fp16-mixed, got 'bf16'",
        ),
        ("dist.strategy=zero3", r"dist.strategy must be one of"),
        ("model.dtype=bf16", r"model.dtype=bf16: a full fine-tune keeps its trained weights in fp32"),
        ("model.dtype=bf61", r"model.dtype: unknown dtype 'bf61'"),
        (
            "optim.schedule=cosin",
            r"optim.schedule must be one of \['constant', 'cosine', 'linear'\], got 'cosin'",
        ),
        ("optim.lr=-1e-5", r"optim.lr must be a number >= 0, got -1e-05"),
        ("optim.lr=.nan", r"optim.lr must be a number >= 0, got nan"),
        ("optim.vision_lr=-1e-5", r"optim.vision_lr must be >= 0"),
        ("optim.betas=[0.9]", r"optim.betas must be two numbers in \[0, 1\), got \[0.9\]"),
        ("optim.betas=[0.9, 1.0]", r"optim.betas must be two numbers"),
        ("optim.warmup_steps=-5", r"optim.warmup_steps must be >= 0, got -5"),
        ("run.steps=-1", r"run.steps must be >= 0, got -1"),
        ("data.max_samples=-1", r"data.max_samples must be >= 0, got -1"),
        ("model.logprob_chunk_size=-2", r"model.logprob_chunk_size must be >= 0, got -2"),
        ("run.save_every=-50", r"run.save_every must be >= 0, got -50"),
        ("run.keep_last=-1", r"run.keep_last must be >= 0, got -1"),
        ("run.log_every=-1", r"run.log_every must be >= 0, got -1"),
        ("run.sample_every=-10", r"run.sample_every must be >= 0, got -10"),
    ],
)
@pytest.mark.parametrize("cls", [TrainConfig, SFTTrainConfig])
def test_a_bad_shared_setting_names_its_field(cls, override, message):
    with pytest.raises(ValueError, match=message):
        check_train_config(load_config(cls, None, [override]))


def test_a_lora_run_may_load_its_frozen_base_in_bf16():
    check_train_config(load_config(TrainConfig, None, ["model.dtype=bf16", "model.lora.enabled=true"]))
