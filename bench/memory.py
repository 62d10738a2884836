"""Peak memory of one GRPO step with Qwen2-VL-2B's text dimensions and vocabulary: full logits vs chunks.

Usage::

    python bench/memory.py [--layers 2] [--group-size 8] [--completion-length 256]
                           [--variants 0 512] [--head-tokens 2048 4096] [--out bench/results/memory.json]

Each variant (a `model.logprob_chunk_size`; 0 = the full [R, T, V] logits, the code before chunking)
runs in a fresh Python process, so that one's allocations never count in another's peak; the peak is the
process's resident-set high-water mark (Linux's VmHWM, reset just before the step through
/proc/self/clear_refs; torch's CPU allocations do not show in ``tracemalloc``), and the step's own share
is that peak minus the resident set just before the step (model, reference copy and AdamW's state already built, as at every step of a run but the
first; that state is the same in every variant).

The model: `Qwen2VLForConditionalGeneration` with random weights from a config written here: Qwen2-VL-2B's
text dimensions (hidden 1536, MLP 8960, 12 heads with 2 key/value heads, vocabulary 151,936, tied
embeddings) but only ``--layers`` of its 28 decoder layers, and a vision tower of 1 block of its 32
(width 1280) -- so that it fits and runs on this CPU. The logits' share of memory depends on rows x
tokens x vocabulary only, the layers' share grows with depth. fp32 (run.precision's CPU default).

The step, as `visual_rft.rl.trainer.GRPOTrainer` does it with micro_batch_size 0 and mu 1, built from the
same functions: `sample_group` (1 prompt with a 224 px image, G completions of exactly
``--completion-length`` tokens: an end id that never occurs), the reference pass (`completion_logprobs`
of a frozen copy, no grad), the policy pass with gradients, `policy_loss` (beta 0.04, group-normalised
random rewards), backward, gradient clipping and one AdamW step.

Then the log-probability pass alone at more tokens (``--head-tokens``: rows x tokens), where the logits'
share grows: Qwen2-VL-2B's head (151,936 x 1536, fp32) on random hidden states, forward and backward of
`head_logprobs` against the full logits (`token_logprobs(head(hidden))`), each in a fresh process too, the
head's gradient buffer already allocated (as in a step, where the tied embedding's gradient exists).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from transformers import Qwen2VLForConditionalGeneration  # noqa: E402

from visual_rft.data.types import ClassTarget, Sample  # noqa: E402
from visual_rft.models.forward import completion_logprobs  # noqa: E402
from visual_rft.models.inputs import encode_prompts  # noqa: E402
from visual_rft.models.logprobs import head_logprobs, token_logprobs  # noqa: E402
from visual_rft.models.lora import eval_mode  # noqa: E402
from visual_rft.models.tiny import TinySize, build_tiny, tiny_config  # noqa: E402
from visual_rft.report.machine import machine  # noqa: E402
from visual_rft.rl.advantages import group_advantages  # noqa: E402
from visual_rft.rl.loss import policy_loss  # noqa: E402
from visual_rft.rl.rollout import sample_group  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from gpu_step import QWEN2_VL_2B_TEXT  # noqa: E402  the 2B text config, written once; layers reduced below

NEVER = -1
"""An end-of-turn id no token has: every completion is exactly --completion-length tokens."""


def build_model(layers: int):
    """(policy, processor): Qwen2-VL with 2B text dims and `layers` decoder layers, random init, fp32."""
    _, processor = build_tiny("qwen2_vl", "1m")  # its tokenizer and image processor (ids < vocab size)
    size = TinySize(hidden=1536, layers=layers, heads=12, vision_hidden=1280, vision_depth=1, vision_heads=16)
    config = tiny_config("qwen2_vl", size, processor.tokenizer)
    for key, value in {**QWEN2_VL_2B_TEXT, "num_hidden_layers": layers}.items():
        setattr(config.text_config, key, value)
    torch.manual_seed(0)
    return Qwen2VLForConditionalGeneration(config).train(), processor


def rss_mb() -> float:
    """The resident set now, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb() -> float:
    """The process's resident-set high-water mark since the last `reset_peak`, in MB (VmHWM; without
    /proc, ``ru_maxrss``: the peak since the process started)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> bool:
    """Reset the high-water mark to the current resident set (Linux: 5 > /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def one_step(args) -> dict:
    """Build everything, then time and measure one GRPO step at chunk size args.chunk_size."""
    torch.set_num_threads(args.threads)
    policy, processor = build_model(args.layers)
    reference = copy.deepcopy(policy).requires_grad_(False).eval()
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-6)
    for p in params:  # AdamW's state exists from the second step of a run on: create it before measuring
        p.grad = torch.zeros_like(p)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "a.png"
        im = Image.new("RGB", (224, 224), "white")
        ImageDraw.Draw(im).ellipse((40, 40, 150, 150), fill="red")
        im.save(image)
        sample = Sample("a", [str(image)], "classification", "What colour is the circle?", ClassTarget("red"))
        inputs, _ = encode_prompts([sample], processor, "norm1000")
    G, c = args.group_size, args.chunk_size
    setup_peak = peak_mb()
    reset = reset_peak()  # the step's peak alone (building the model and optimizer peaked higher)
    before = rss_mb()
    t0 = time.perf_counter()
    with eval_mode(policy):
        rollout = sample_group(
            policy,
            inputs,
            group_size=G,
            max_new_tokens=args.completion_length,
            eos_token_ids=[NEVER],
            pad_token_id=processor.tokenizer.pad_token_id,
        )
    t1 = time.perf_counter()
    with torch.no_grad():
        ref = completion_logprobs(reference, rollout, chunk_size=c)  # [G, T]
    t2 = time.perf_counter()
    advantages = group_advantages(torch.randn(G, generator=torch.Generator().manual_seed(0)), G)  # [G]
    logp = completion_logprobs(policy, rollout, chunk_size=c)  # [G, T]
    loss = policy_loss(logp, logp.detach(), ref, advantages, rollout.completion_mask, beta=0.04)
    loss.backward()
    backward_peak = peak_mb()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    t3 = time.perf_counter()
    return {
        "chunk_size": c,
        "completion_tokens": list(rollout.completion_ids.shape),
        "parameters": sum(p.numel() for p in policy.parameters()),
        "rss_before_step_mb": round(before, 1),
        "setup_peak_mb": round(setup_peak, 1),
        "peak_reset_before_step": reset,
        "peak_through_backward_mb": round(backward_peak, 1),
        "peak_mb": round(peak_mb(), 1),
        "step_peak_over_rss_before_mb": round(peak_mb() - before, 1),
        "full_logits_fp32_mb": round(G * (args.completion_length + 1) * 151_936 * 4 / 2**20, 1),
        "time_rollout_s": round(t1 - t0, 2),
        "time_reference_s": round(t2 - t1, 2),
        "time_policy_update_s": round(t3 - t2, 2),
        "loss": float(loss),
    }


def head_pass(args) -> dict:
    """Peak memory of the log-prob pass alone: args.head_tokens (in args.group_size rows) x 1536 hidden
    states through the head."""
    torch.set_num_threads(args.threads)
    V, H, M = QWEN2_VL_2B_TEXT["vocab_size"], QWEN2_VL_2B_TEXT["hidden_size"], args.head_tokens[0]
    head = torch.nn.Linear(H, V, bias=False)
    head.weight.grad = torch.zeros_like(head.weight)  # [V, H]
    g = torch.Generator().manual_seed(0)
    R = args.group_size  # rows, as in a step (token_logprobs, the old path, goes row by row)
    hidden = torch.randn(R, M // R, H, generator=g).requires_grad_(True)  # [R, M/R, H]
    tokens = torch.randint(0, V, (R, M // R), generator=g)  # [R, M/R]
    reset_peak()
    before = rss_mb()
    t0 = time.perf_counter()
    if args.chunk_size == 0:
        logp = token_logprobs(head(hidden), tokens)  # [R, M/R] from the full [R, M/R, V] logits
    else:
        logp = head_logprobs(hidden, head, tokens, chunk_size=args.chunk_size)  # [R, M/R]
    forward_peak = peak_mb() - before
    logp.sum().backward()
    return {
        "tokens": M,
        "chunk_size": args.chunk_size,
        "forward_peak_over_start_mb": round(forward_peak, 1),
        "peak_over_start_mb": round(peak_mb() - before, 1),
        "full_logits_fp32_mb": round(M * V * 4 / 2**20, 1),
        "time_s": round(time.perf_counter() - t0, 2),
    }


def child(args, *extra: str) -> dict:
    """Run this script for one measurement in a fresh process; its JSON line."""
    cmd = [sys.executable, __file__, "--chunk-size", str(args.chunk_size), "--threads", str(args.threads)]
    out = subprocess.run([*cmd, *extra], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=2, help="decoder layers (Qwen2-VL-2B has 28)")
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--completion-length", type=int, default=256)
    parser.add_argument("--variants", type=int, nargs="+", default=[0, 512], help="chunk sizes (0: full)")
    parser.add_argument(
        "--head-tokens", type=int, nargs="*", default=[2048, 4096], help="log-prob pass alone"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/results/memory.json"))
    parser.add_argument("--chunk-size", type=int, default=None, help=argparse.SUPPRESS)  # one variant
    parser.add_argument("--head-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.chunk_size is not None:  # the child: one measurement, JSON on stdout
        print(json.dumps(head_pass(args) if args.head_only else one_step(args)))
        return
    rows, head_rows = [], []
    for c in args.variants:  # a fresh process per variant: peaks never mix
        args.chunk_size = c
        shape = ["--layers", str(args.layers), "--group-size", str(args.group_size)]
        rows.append(child(args, *shape, "--completion-length", str(args.completion_length)))
        r = rows[-1]
        print(
            f"chunk {c:>5}: peak {r['peak_mb']:8.1f} MB, step over its start {r['step_peak_over_rss_before_mb']:8.1f} MB"
            f" (rollout {r['time_rollout_s']} s, reference {r['time_reference_s']} s,"
            f" policy + update {r['time_policy_update_s']} s)",
            flush=True,
        )
    for m in args.head_tokens:
        for c in args.variants:
            args.chunk_size = c
            head_rows.append(
                child(args, "--head-only", "--head-tokens", str(m), "--group-size", str(args.group_size))
            )
            r = head_rows[-1]
            print(
                f"log-prob pass alone, {m} tokens, chunk {c:>5}: forward {r['forward_peak_over_start_mb']:8.1f} MB,"
                f" forward + backward {r['peak_over_start_mb']:8.1f} MB over its start",
                flush=True,
            )
    args.chunk_size = None
    result = {
        "command": " ".join(["python bench/memory.py", *sys.argv[1:]]),
        "model": f"Qwen2-VL-2B text dims and vocabulary, {args.layers} of 28 decoder layers, 1 of 32 vision blocks",
        "group_size": args.group_size,
        "completion_length": args.completion_length,
        "load_average": os.getloadavg(),
        "machine": machine("transformers"),
        "variants": rows,
        "logprob_pass_alone": head_rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
