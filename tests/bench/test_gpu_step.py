"""bench/gpu_step.py on the CPU at a reduced size: the step runs and reports each part, and its FLOPs
formula matches torch's own FLOP counter on the same passes."""

import argparse
import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from visual_rft.models.forward import completion_logprobs
from visual_rft.models.inputs import encode_prompts
from visual_rft.rl.rollout import sample_group

TINY = ["--reduced", "--max-pixels", "6272", "--image-size", "112", "56", "--group-size", "2"]
TINY += ["--completion-length", "5", "--precision", "fp32", "--warmup", "0", "--steps", "1"]


@pytest.fixture(scope="module")
def bench(load_bench):
    return load_bench("gpu_step")


def test_gpu_step_runs_on_the_cpu_at_a_reduced_size(bench, tmp_path):
    out = tmp_path / "gpu_step.json"
    argv = ["--device", "cpu", *TINY, "--variants", "shared", "per_row", "--peak-tflops", "1"]
    assert bench.main([*argv, "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["workload"]["completion_tokens"] == 5 and r["workload"]["image_patches"] == [32]  # 112x56 / 14^2
    assert set(r["variants"]) == {"shared", "per_row"}
    parts = ("rollout", "reference", "update")
    for v in r["variants"].values():
        assert all(v["mean_s"][k] > 0 for k in parts)
        assert v["mean_s"]["step"] == pytest.approx(sum(v["mean_s"][k] for k in parts))
        assert v["tokens_per_s"]["rollout"] == pytest.approx(2 * 5 / v["mean_s"]["rollout"])
        assert v["flops"]["update"] == pytest.approx(3 * v["flops"]["reference"])
        for k in (*parts, "step"):  # MFU = FLOPs / (seconds x peak), here a 1 TFLOP/s peak
            assert v["mfu"][k] == pytest.approx(v["flops"][k] / (v["mean_s"][k] * 1e12))
    assert r["variants"]["shared"]["flops"] == r["variants"]["per_row"]["flops"]  # the same counted work


def test_gpu_step_without_cuda_is_skipped(bench, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here: the script would run")
    assert bench.main(["--out", str(tmp_path / "x.json")]) == 0
    assert "skipped" in capsys.readouterr().out and not (tmp_path / "x.json").exists()


def test_pass_flops_equal_torch_flop_counter_on_the_weight_matmuls(bench, tmp_path):
    """torch's FlopCounterMode (mm, addmm, convolution; it does not count CPU attention kernels) on the
    rollout and a log-prob pass equals the formula without its attention term, to the FLOP; the update's
    count is 3x the forward less the patch embedding's input gradient, which backward never computes."""
    args = argparse.Namespace(
        reduced=True, max_pixels=6272, prompts=1, image_size=[112, 56], out=tmp_path / "o"
    )
    model, processor = bench.build(args, torch.device("cpu"))
    inputs = encode_prompts(bench.make_samples(args), processor, "norm1000")[0]
    G, T = 2, 5
    counted = {}
    with FlopCounterMode(display=False) as fc:
        r = sample_group(
            model.eval(), inputs, group_size=G, max_new_tokens=T, eos_token_ids=[-1], pad_token_id=0
        )
    counted["rollout"] = fc.get_total_flops()
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        completion_logprobs(model, r)
    counted["reference"] = fc.get_total_flops()
    with FlopCounterMode(display=False) as fc:
        completion_logprobs(model.train(), r).sum().backward()
    patch_embed_input_grad = fc.get_flop_counts()["Global"][torch.ops.aten.convolution_backward]
    counted["update"] = fc.get_total_flops() + patch_embed_input_grad
    formula = bench.pass_flops(
        model.config, r.prompt_mask.sum(1).tolist(), r.image_grid_thw.prod(-1).tolist(), G, T, attention=False
    )
    assert formula == counted
    with_attention = bench.pass_flops(
        model.config, r.prompt_mask.sum(1).tolist(), r.image_grid_thw.prod(-1).tolist(), G, T
    )
    assert all(with_attention[k] > formula[k] for k in formula)


def test_the_config_is_qwen2_vl_2b(bench):
    """Built on the meta device (no memory): Qwen2-VL-2B-Instruct's 2,208,985,600 parameters (the
    count its release has), 28 decoder layers, 32 vision blocks, the head tied to the embedding."""
    args = argparse.Namespace(reduced=False, max_pixels=401_408)
    model, _ = bench.build(args, torch.device("meta"))
    assert sum(p.numel() for p in model.parameters()) == 2_208_985_600
    assert len(model.model.language_model.layers) == 28 and len(model.model.visual.blocks) == 32
    assert model.lm_head.weight is model.model.language_model.embed_tokens.weight


@pytest.mark.slow
def test_gpu_step_times_trl_on_the_same_step(bench, tmp_path):
    """TRL's GRPOTrainer at the reduced size: whole steps, each completion exactly --completion-length."""
    out = tmp_path / "gpu_step.json"
    argv = ["--device", "cpu", *TINY, "--variants", "trl", "--peak-tflops", "1"]
    assert bench.main([*argv, "--out", str(out)]) == 0
    trl = json.loads(out.read_text())["variants"]["trl"]
    assert trl["completion_length"] == [5] and len(trl["steps_s"]) == 1
    assert trl["mfu"]["step"] == pytest.approx(trl["flops"]["step"] / (trl["mean_s"]["step"] * 1e12))
