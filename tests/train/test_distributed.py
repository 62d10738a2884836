"""Two processes (gloo on the CPU, the process group set up by accelerate as under `accelerate launch`):
GRPO and SFT on 2 ranks end with the weights of one process over the same global batch; a 2-rank run stopped
mid-way and resumed ends where the uninterrupted one ends; rank 0 alone writes the run folder."""

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from visual_rft.config import SFTTrainConfig, TrainConfig, load_config
from visual_rft.data.jsonl import write_samples
from visual_rft.models.inputs import encode_prompts
from visual_rft.rl.rollout import sample_group
from visual_rft.rl.trainer import GRPOTrainer
from visual_rft.sft.trainer import SFTTrainer
from visual_rft.train import base
from visual_rft.train.distributed import combine_metrics, free_port, gathered

STEPS = 4
QUIET = ["run.tensorboard=false", "run.progress=false", f"run.steps={STEPS}", "run.save_every=2"]


def _cfg(cls, model_dir, data, out, *extra):
    return load_config(
        cls,
        None,
        [
            f"model.path={model_dir}",
            f"data.train={data}",
            f"run.output_dir={out}",
            "optim.lr=1e-4",
            *QUIET,
            *extra,
        ],
    )


def _grpo(model_dir, data, out, prompts_per_step, *extra):
    return _cfg(
        TrainConfig,
        model_dir,
        data,
        out,
        f"grpo.prompts_per_step={prompts_per_step}",
        "grpo.group_size=4",
        "grpo.micro_batch_size=4",  # one group per chunk: 2 chunks for one process, 1 per rank
        "grpo.max_completion_length=6",
        "grpo.mu=2",
        "run.sample_every=1",
        'grpo.rewards={"toy_rewards:letters": 1}',
        *extra,
    )


def _sft(model_dir, data, out, batch_size, *extra):
    return _cfg(
        SFTTrainConfig, model_dir, data, out, f"sft.batch_size={batch_size}", "sft.micro_batch_size=1", *extra
    )


def _ranks(rank, world_size, port, jobs, logs):
    """One rank: the environment `accelerate launch` gives it, then each job (a run, or a run stopped
    after `stop` steps and resumed). Its stderr goes to logs/rank{rank}.err, which a failure prints."""
    os.dup2(os.open(logs / f"rank{rank}.err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
    )
    torch.set_num_threads(1)
    for kind, cfg, stop in jobs:
        if kind == "generate":
            _generate_unevenly(rank, cfg)
            continue
        trainer = GRPOTrainer if kind == "grpo" else SFTTrainer
        if stop:
            trainer(cfg).fit(stop_after=stop)
            trainer(cfg, resume=True).fit()
        else:
            trainer(cfg).fit()


def _generate_unevenly(rank, cfg):
    """Under FSDP2, rank 0 samples 2 tokens and rank 1 samples 8 (no end-of-turn can stop them), then both
    train a step: had generation called a collective per token, the ranks would wait on each other."""
    trainer = GRPOTrainer(cfg)
    inputs, _ = encode_prompts(trainer.samples[:1], trainer.processor, trainer.convention)
    with gathered(trainer.policy_pass):
        rollout = sample_group(
            trainer.model,
            inputs,
            group_size=2,
            max_new_tokens=2 + 6 * rank,
            eos_token_ids=[-1],
            pad_token_id=0,
        )
    trainer.step(0)
    (Path(cfg.run.output_dir) / f"rank{rank}-tokens.txt").write_text(str(rollout.completion_ids.shape[1]))


def _spawn(jobs, logs, world_size=2, timeout=600):
    """Run `jobs` on `world_size` ranks; a rank that fails or hangs fails the test with the end of each
    rank's stderr (a rank killed by a signal leaves no Python traceback, only what it printed)."""
    ctx = mp.spawn(_ranks, args=(world_size, free_port(), jobs, logs), nprocs=world_size, join=False)
    deadline = time.time() + timeout
    try:
        while not ctx.join(timeout=1):
            if time.time() > deadline:
                for p in ctx.processes:
                    p.kill()
                raise TimeoutError("the ranks did not finish (a collective left waiting?)")
    except (mp.ProcessExitedException, mp.ProcessRaisedException, TimeoutError) as e:
        tails = [
            f"--- rank {r} stderr, last lines:\n" + _tail(logs / f"rank{r}.err") for r in range(world_size)
        ]
        pytest.fail("\n".join([str(e), *tails]), pytrace=False)


def _tail(path, lines=15):
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(none)"


def _weights(run_dir):
    return load_file(run_dir / f"checkpoint-{STEPS}" / "model" / "model.safetensors")


def _rows(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def _assert_close(one, two, start):
    assert one.keys() == two.keys()
    moved = max(float((one[k] - start[k]).abs().max()) for k in one)
    gap = max(float((one[k] - two[k]).abs().max()) for k in one)
    assert moved > 1e-4, moved  # training did move the weights, by far more than the gap below
    # rounding of a near-zero gradient element (a sum split over ranks, or over threads) can move that
    # element's AdamW update by a visible fraction of the learning rate: one merger weight differed by 8e-6
    # of a largest move of 8e-4; a wrong batch, mask or loss moves elements by the move itself
    assert gap < 0.02 * moved, (gap, moved)


def _assert_rank_zero_wrote(run_dir):
    assert [p.name for p in run_dir.rglob("metrics.jsonl")] == ["metrics.jsonl"]
    assert [r["step"] for r in _rows(run_dir / "metrics.jsonl")] == list(range(1, STEPS + 1))


@pytest.mark.slow
def test_two_ranks_train_as_one_process_over_the_global_batch(
    tiny_model_dir, toy_samples, tmp_path, letters_reward
):
    data = tmp_path / "train.jsonl"
    write_samples(data, toy_samples)
    jobs = [
        ("grpo", _grpo(tiny_model_dir, data, tmp_path / "grpo2", 1), 0),
        ("grpo", _grpo(tiny_model_dir, data, tmp_path / "grpo2-resumed", 1), 2),
        ("sft", _sft(tiny_model_dir, data, tmp_path / "sft2", 2), 0),
        ("sft", _sft(tiny_model_dir, data, tmp_path / "sft2-resumed", 2), 2),
    ]
    for kind, cfg, stop in jobs[:2]:  # the same GRPO runs with the model sharded over the ranks (FSDP2)
        out = cfg.run.output_dir.replace("grpo2", "grpo-fsdp2")
        sharded = replace(cfg, dist=replace(cfg.dist, strategy="fsdp2"), run=replace(cfg.run, output_dir=out))
        jobs.append((kind, sharded, stop))
    # (no LoRA dropout: its masks are drawn per batch, and one process's batch is not the ranks' halves)
    lora = [
        "model.lora.enabled=true",
        "model.lora.dropout=0",
        "model.freeze_vision=true",
        "dist.strategy=fsdp2",
    ]
    jobs.append(("sft", _sft(tiny_model_dir, data, tmp_path / "lora2", 2, *lora), 0))
    jobs.append(("generate", _grpo(tiny_model_dir, data, tmp_path / "gen", 1, "dist.strategy=fsdp2"), 0))
    (tmp_path / "gen").mkdir()
    _spawn(jobs, tmp_path)
    assert [(tmp_path / "gen" / f"rank{r}-tokens.txt").read_text() for r in (0, 1)] == ["2", "8"]
    # the one-process references on one thread, as each rank ran, whatever thread count earlier tests left
    # this process with (bench/grpo_step.py's test sets 1, a test run alone has 2): the same sums every time
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        GRPOTrainer(_grpo(tiny_model_dir, data, tmp_path / "grpo1", 2)).fit()
        SFTTrainer(_sft(tiny_model_dir, data, tmp_path / "sft1", 4)).fit()
        # LoRA with a frozen vision tower, sharded: the adapters of 2 ranks are those of one process
        SFTTrainer(_sft(tiny_model_dir, data, tmp_path / "lora1", 4, *lora[:3])).fit()
    finally:
        torch.set_num_threads(threads)
    adapters = [
        load_file(tmp_path / d / f"checkpoint-{STEPS}" / "model" / "adapter_model.safetensors")
        for d in ("lora1", "lora2")
    ]
    assert adapters[0].keys() == adapters[1].keys() and not any("visual" in k for k in adapters[0])
    assert (
        max(float(adapters[0][k].abs().max()) for k in adapters[0] if "lora_B" in k) > 1e-4
    )  # trained (B starts 0)
    assert max(float((adapters[0][k] - adapters[1][k]).abs().max()) for k in adapters[0]) < 2e-6
    start = load_file(tiny_model_dir / "model.safetensors")

    for kind, two in (("grpo", "2"), ("sft", "2"), ("grpo", "-fsdp2")):
        one, two, resumed = (tmp_path / f"{kind}{s}" for s in ("1", two, f"{two}-resumed"))
        _assert_close(_weights(one), _weights(two), start)
        w2, wr = _weights(two), _weights(resumed)
        assert all(torch.equal(w2[k], wr[k]) for k in w2)  # resumed: bit for bit the uninterrupted run
        for run in (two, resumed):
            _assert_rank_zero_wrote(run)
        # the logged metrics are those of the global batch: the loss summed over ranks, rewards averaged
        r1, r2 = _rows(one / "metrics.jsonl"), _rows(two / "metrics.jsonl")
        assert [r["loss"] for r in r1] == pytest.approx([r["loss"] for r in r2], rel=1e-4, abs=1e-6)
        # the gradient too (AdamW's step hides a uniform scale error; the norm before clipping does not)
        assert [r["grad_norm"] for r in r1] == pytest.approx([r["grad_norm"] for r in r2], rel=1e-4)
        assert json.loads((two / f"checkpoint-{STEPS}" / "state.json").read_text())["world_size"] == 2
    r1, r2 = _rows(tmp_path / "grpo1" / "metrics.jsonl"), _rows(tmp_path / "grpo2" / "metrics.jsonl")
    assert [r["reward/total"] for r in r1] == pytest.approx([r["reward/total"] for r in r2], abs=1e-6)
    # samples.jsonl: rank 0's group only, each step once
    assert len(_rows(tmp_path / "grpo2" / "samples.jsonl")) == STEPS * 4


def test_metrics_of_the_ranks_combine_into_those_of_the_global_batch():
    rows = [
        {"loss": 0.25, "reward/total": 1.0, "time/rollout": 2.0, "answer_tokens": 7, "reward/cls": 1.0},
        {"loss": 0.5, "reward/total": 0.0, "time/rollout": 3.0, "answer_tokens": 5},
    ]
    assert combine_metrics(rows) == {
        "loss": 0.75,  # each rank's loss is its share of the global loss: they add up
        "reward/total": 0.5,  # the mean over ranks
        "time/rollout": 3.0,  # the slowest rank
        "answer_tokens": 12,
        "reward/cls": 1.0,  # only rank 0 had a classification prompt: the mean over the ranks that had one
    }


def _no_model_loads(monkeypatch):
    loads = []
    monkeypatch.setattr(base, "load_model", lambda *a, **k: loads.append(a))
    monkeypatch.setattr(base, "load_processor", lambda *a, **k: loads.append(a))
    return loads


def test_bad_multi_process_settings_fail_before_any_model_loads(
    tiny_model_dir, toy_samples, tmp_path, monkeypatch
):
    loads = _no_model_loads(monkeypatch)
    data = tmp_path / "train.jsonl"
    write_samples(data, toy_samples)
    cfg = _grpo(tiny_model_dir, data, tmp_path / "run", 1)
    cfg.grpo.micro_batch_size = 6  # splits a group of 4 between two micro-batches
    with pytest.raises(
        ValueError, match=r"grpo.micro_batch_size \(6\) must be a multiple of grpo.group_size"
    ):
        GRPOTrainer(cfg)
    cfg = _sft(tiny_model_dir, data, tmp_path / "run", 2)
    cfg.dist.strategy = "zero3"
    with pytest.raises(ValueError, match="dist.strategy must be one of auto, ddp, fsdp2"):
        SFTTrainer(cfg)
    cfg = _sft(tiny_model_dir, data, tmp_path / "run", 2)
    cfg.dist.strategy, cfg.run.precision = "fsdp2", "fp16-mixed"
    with pytest.raises(ValueError, match="fsdp2 with run.precision=fp16-mixed"):
        SFTTrainer(cfg)
    # an accelerate launch config of FSDP (what `accelerate launch --config_file ...` puts in the environment)
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", "1")
    with pytest.raises(ValueError, match="asks for FSDP version 1: only FSDP2 is built"):
        SFTTrainer(_sft(tiny_model_dir, data, tmp_path / "run", 2))
    monkeypatch.setenv("FSDP_VERSION", "2")
    cfg.dist.strategy, cfg.run.precision = "ddp", "fp32"
    with pytest.raises(
        ValueError, match="dist.strategy=ddp, but the accelerate launch config asks for FSDP2"
    ):
        SFTTrainer(cfg)
    monkeypatch.delenv("ACCELERATE_USE_FSDP")
    # a checkpoint written by 2 processes, resumed by one
    ckpt = tmp_path / "run" / "checkpoint-2"
    ckpt.mkdir(parents=True)
    (ckpt / "state.json").write_text(json.dumps({"step": 2, "world_size": 2}))
    with pytest.raises(
        ValueError, match=r"written by a run of 2 process\(es\), resumed with 1.*--num_processes 2"
    ):
        SFTTrainer(_sft(tiny_model_dir, data, tmp_path / "run", 2), resume=True)
    assert loads == []


@pytest.mark.slow
def test_accelerate_launch_runs_vrft_sft_on_two_processes(tiny_model_dir, toy_samples, tmp_path):
    """The command of the README, with its DDP launch config: `accelerate launch --config_file
    configs/accelerate/ddp_1x8.yaml --num_processes 2 -m visual_rft.cli sft ...` (on a CPU the ranks find no
    GPU and use gloo)."""
    data = tmp_path / "train.jsonl"
    write_samples(data, toy_samples)
    accelerate = Path(sys.executable).parent / "accelerate"
    config = Path(__file__).parents[2] / "configs" / "accelerate" / "ddp_1x8.yaml"
    flags = ["--config_file", str(config), "--num_processes", "2", "--main_process_port", str(free_port())]
    two, one = tmp_path / "two", tmp_path / "one"
    overrides = [
        f"model.path={tiny_model_dir}",
        f"data.train={data}",
        "optim.lr=1e-4",
        *QUIET,
        "sft.batch_size=2",
    ]
    cmd = [str(accelerate), "launch", *flags, "-m", "visual_rft.cli", "sft"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [*cmd, *overrides, f"run.output_dir={two}"], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"the 2-process launch failed:\n{done.stderr[-4000:]}"
    SFTTrainer(
        load_config(SFTTrainConfig, None, [*overrides, "sft.batch_size=4", f"run.output_dir={one}"])
    ).fit()
    _assert_close(_weights(one), _weights(two), load_file(tiny_model_dir / "model.safetensors"))
    _assert_rank_zero_wrote(two)
    state = json.loads((two / f"checkpoint-{STEPS}" / "state.json").read_text())
    assert (state["world_size"], state["strategy"]) == (2, "ddp")
