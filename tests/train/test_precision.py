"""Mixed precision: fp32 master weights that learn at RL learning rates, bf16/fp16 compute, fp32 saves."""

import pytest
import torch
from safetensors import safe_open

from visual_rft.config import SFTTrainConfig, TrainConfig, load_config
from visual_rft.rl.trainer import GRPOTrainer
from visual_rft.sft.trainer import SFTTrainer
from visual_rft.train.precision import Precision, policy_dtype, resolve_precision

CPU = torch.device("cpu")


def _common(model_dir, run_dir, *extra):
    return [
        f"model.path={model_dir}",
        f"run.output_dir={run_dir}",
        "run.steps=1",
        "run.tensorboard=false",
        "run.progress=false",
        *extra,
    ]


def test_one_bf16_mixed_grpo_step_at_lr_1e6_moves_every_weight_where_pure_bf16_would_not(
    tiny_model_dir, toy_samples, tmp_path, letters_reward
):
    overrides = _common(
        tiny_model_dir,
        tmp_path / "run",
        "run.precision=bf16-mixed",
        "optim.lr=1e-6",
        "grpo.group_size=4",
        "grpo.max_completion_length=8",
        'grpo.rewards={"toy_rewards:letters": 1}',
    )
    trainer = GRPOTrainer(load_config(TrainConfig, None, overrides), samples=toy_samples)
    assert trainer.precision.compute_dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in trainer.params)  # fp32 master weights
    before = [p.detach().clone() for p in trainer.params]
    metrics = trainer.step(0).metrics
    assert metrics["skipped"] == 0 and metrics["grad_norm"] > 0
    after = [p.detach() for p in trainer.params]
    # bf16-mixed: every trainable tensor moved (AdamW's first step is about lr per element)
    assert all(not torch.equal(a, b) for a, b in zip(before, after))
    moved = sum(int((a != b).sum()) for a, b in zip(before, after)) / sum(a.numel() for a in before)
    assert moved > 0.9
    # the same update applied to pure-bf16 weights (the old model.dtype=bf16 mode): rounds to nothing
    in_bf16 = [(b.bfloat16() + (a - b).bfloat16()) != b.bfloat16() for b, a in zip(before, after)]
    moved_bf16 = sum(int(c.sum()) for c in in_bf16) / sum(c.numel() for c in in_bf16)
    # measured: 100% of the elements move in bf16-mixed, 2.3% in pure bf16, where 10 of 56 tensors
    # (norms at 1.0, whose bf16 spacing is 0.008) do not move at all
    assert moved_bf16 < 0.05, moved_bf16
    assert any(not bool(c.any()) for c in in_bf16)
    # the checkpoint holds the fp32 master weights
    ckpt = trainer.save(1) / "model" / "model.safetensors"
    with safe_open(str(ckpt), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F32"}


def test_fp16_mixed_sft_uses_a_grad_scaler_and_resumes_it(tiny_model_dir, toy_samples, tmp_path):
    overrides = _common(tiny_model_dir, tmp_path / "run", "run.precision=fp16-mixed", "sft.batch_size=2")
    trainer = SFTTrainer(load_config(SFTTrainConfig, None, overrides), samples=toy_samples)
    scaler = trainer.precision.scaler
    assert scaler is not None and all(p.dtype == torch.float32 for p in trainer.params)
    before = [p.detach().clone() for p in trainer.params]
    # GradScaler starts at 2**16: a step whose scaled gradients overflow fp16 is skipped, the weights left as
    # they were and the scale halved, until the scale fits (the tiny model overflows at first)
    scales = [scaler.get_scale()]
    for step in range(8):
        if not trainer.step(step).metrics["skipped"]:
            break
        assert all(torch.equal(a, p) for a, p in zip(before, trainer.params))
        scales.append(scaler.get_scale())
        assert scales[-1] == scales[-2] / 2
    else:
        raise AssertionError(f"every step overflowed, scales {scales}")
    assert any(not torch.equal(a, p) for a, p in zip(before, trainer.params))
    trainer.save(1)
    resumed = SFTTrainer(load_config(SFTTrainConfig, None, overrides), samples=toy_samples, resume=True)
    assert resumed.precision.scaler.get_scale() == scaler.get_scale()


def test_an_overflow_in_fp16_skips_the_step_and_lowers_the_scale():
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.AdamW([w], lr=0.1)
    precision = Precision("fp16-mixed", CPU)
    scale = precision.scaler.get_scale()
    precision.backward((w * float("inf")).sum())
    _, skipped = precision.step(opt, [w], max_grad_norm=1.0)
    assert skipped and torch.equal(w.detach(), torch.ones(3)) and precision.scaler.get_scale() < scale


def test_a_full_fine_tune_refuses_half_precision_weights_before_anything_loads(tmp_path):
    for dtype in ("bf16", "fp16"):
        with pytest.raises(ValueError, match=f"model.dtype={dtype}.*fp32.*run.precision"):
            GRPOTrainer(
                load_config(TrainConfig, None, _common(tmp_path / "none", tmp_path, f"model.dtype={dtype}"))
            )
    assert policy_dtype("bf16", lora=True) == "bf16"  # a LoRA run's frozen base may be bf16
    assert policy_dtype("auto", lora=False) == "fp32"


def test_a_lora_run_on_a_bf16_base_trains_fp32_adapters(tiny_model_dir, toy_samples, tmp_path):
    overrides = _common(
        tiny_model_dir, tmp_path, "model.dtype=bf16", "model.lora.enabled=true", "grpo.beta=0"
    )
    trainer = GRPOTrainer(load_config(TrainConfig, None, overrides), samples=toy_samples)
    assert {p.dtype for p in trainer.params} == {torch.float32}
    frozen = {p.dtype for p in trainer.model.parameters() if not p.requires_grad}
    assert frozen == {torch.bfloat16}


def test_precision_names():
    assert resolve_precision("auto", CPU) == "fp32"
    assert Precision("fp32", CPU).compute_dtype is None and Precision("fp32", CPU).scaler is None
    with pytest.raises(ValueError, match="run.precision"):
        resolve_precision("bf16", CPU)
    with pytest.raises(ValueError, match="run.precision"):
        GRPOTrainer(load_config(TrainConfig, None, ["run.precision=mixed"]))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_auto_precision_on_a_gpu():
    cuda = torch.device("cuda")
    expected = "bf16-mixed" if torch.cuda.is_bf16_supported() else "fp32"
    assert resolve_precision("auto", cuda) == expected
    if not torch.cuda.is_bf16_supported():
        with pytest.raises(ValueError, match="no bf16"):
            resolve_precision("bf16-mixed", cuda)


def test_grpo_takes_every_pass_s_log_probs_in_the_compute_precision(
    tiny_model_dir, toy_samples, tmp_path, letters_reward
):
    """The reference, old and policy passes run where the rollout ran: under bf16 autocast in bf16-mixed."""
    extra = ("grpo.group_size=2", "grpo.max_completion_length=4", 'grpo.rewards={"toy_rewards:letters": 1}')
    runs = {}
    for name in ("fp32", "bf16-mixed"):
        overrides = _common(tiny_model_dir, tmp_path / name, f"run.precision={name}", *extra)
        runs[name] = GRPOTrainer(load_config(TrainConfig, None, overrides), samples=toy_samples)
    rollout, _ = runs["fp32"].rollout(toy_samples[:1])
    with torch.no_grad():
        full, mixed = (runs[name].logprobs(rollout) for name in ("fp32", "bf16-mixed"))
    assert full.dtype == mixed.dtype == torch.float32  # log-softmax upcast either way
    gap = float((full - mixed).abs().max())
    assert 1e-4 < gap < 0.5, gap  # bf16 rounding, not another model
