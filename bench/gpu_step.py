"""One GRPO step of a Qwen2-VL-2B-sized model on a GPU: rollout / reference / update, tokens/s and MFU.

Usage::

    python bench/gpu_step.py [--group-size 8] [--completion-length 256] [--max-pixels 401408]
                             [--image-size 896 448] [--prompts 1] [--precision bf16-mixed]
                             [--variants shared per_row compiled trl] [--warmup 1] [--steps 2]
                             [--out bench/results/gpu_step.json]
    python bench/gpu_step.py --device cpu --reduced ...     # the same code at a tiny size (the test)

Each variant (`VARIANTS`) takes ``--warmup`` untimed steps, then ``--steps`` timed ones, on the same model
in one process: ``shared`` is the code (each prompt once in the log-prob passes), ``per_row`` the log-prob
passes as before prefix sharing, ``compiled`` the rollout on a static cache with a torch.compile'd step
(``grpo.compiled_decode``; its warm-up step includes the compilation); ``trl`` TRL's GRPOTrainer on the
same step (`time_trl`: whole steps; it runs last, after our optimizer state is freed, and saves a copy of
the policy beside --out, since TRL loads its reference from the policy's folder). The JSON is rewritten
after each variant.

Without CUDA (and without ``--device cpu``) it prints that it is skipped and exits 0.

The model: `Qwen2VLForConditionalGeneration` with random weights (seeded) from Qwen2-VL-2B-Instruct's
config written below (`QWEN2_VL_2B_TEXT`, `QWEN2_VL_2B_VISION`: 28 decoder layers of width 1536, 32 vision
blocks of width 1280, vocabulary 151,936, tied embeddings), built directly on the device; nothing is
downloaded. The tokenizer and image processor are the tiny model's (their ids are below the vocabulary),
with the paper's pixel budget (``--max-pixels`` 401,408 = 512 merged image tokens; the default image,
896 x 448, is exactly that). ``--reduced``: the tiny 1m dimensions instead (for the CPU test).

The step, as `visual_rft.rl.trainer.GRPOTrainer` does it (mu = 1, micro_batch_size 0), from the same
functions: `sample_group` (G completions of exactly ``--completion-length`` tokens: an end id that never
occurs) under ``run.precision``'s autocast; the reference pass (`completion_logprobs` of a frozen copy,
bf16 weights on a GPU, as model.dtype=auto loads it); the update (`completion_logprobs` with gradients,
`policy_loss` with beta 0.04 and group-normalised random rewards, backward, clipping to 1.0, one AdamW
step on fp32 master weights: `train.precision.Precision`). Each part is timed between CUDA synchronisations.

FLOPs (`pass_flops`), counted from the config, the usual model-FLOPs convention (Kaplan et al. 2020; PaLM,
Chowdhery et al. 2022, appendix B): a forward pass costs 2 FLOPs per multiply-add of every weight matrix a
token goes through (for a text token: 2 x [d(n_h h + 2 n_kv h) + n_h h d + 3 d d_ff] per layer, and 2 d V
for the head where log-probs or samples are taken; for an image patch: 2 x [4 e^2 + 2 e (r e)] per vision
block and the patch embedding, and 2 x [(4e)^2 + 4e d] per merged token for the merger), plus attention:
4 n_h h c per token per layer, with c the keys it attends to (causal in the decoder, the whole image in the
vision tower); a backward pass costs twice its forward (so forward + backward = 3x forward, "6N").
The counted work is the algorithm's with each prompt run once per pass (what the code does now): the
rollout is one prefill per prompt and G x T decode tokens; the reference pass and the update's forward are
the prompt once and the completion tokens per row. MFU = FLOPs / (seconds x the GPU's dense bf16 peak,
`PEAK_TFLOPS` by device name or ``--peak-tflops``). Anchor: EasyR1 reports 16-23% MFU for Qwen2.5-VL-7B on
8 x H100 (as issue 16 quotes it).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration  # noqa: E402
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil  # noqa: E402

from visual_rft.data.types import ClassTarget, Sample  # noqa: E402
from visual_rft.models.forward import completion_logprobs  # noqa: E402
from visual_rft.models.inputs import encode_prompts  # noqa: E402
from visual_rft.models.lora import eval_mode  # noqa: E402
from visual_rft.models.processor import QwenVLImageProcessor  # noqa: E402
from visual_rft.models.tiny import MIN_PIXELS, SIZES, tiny_config  # noqa: E402
from visual_rft.models.tokenizer import train_tokenizer  # noqa: E402
from visual_rft.report.machine import machine  # noqa: E402
from visual_rft.rl.advantages import group_advantages  # noqa: E402
from visual_rft.rl.loss import policy_loss  # noqa: E402
from visual_rft.rl.rollout import sample_group  # noqa: E402
from visual_rft.train.precision import Precision  # noqa: E402

QWEN2_VL_2B_TEXT = {"hidden_size": 1536, "intermediate_size": 8960, "num_attention_heads": 12}
QWEN2_VL_2B_TEXT.update(num_key_value_heads=2, vocab_size=151_936, num_hidden_layers=28, rms_norm_eps=1e-6)
QWEN2_VL_2B_TEXT.update(max_position_embeddings=32768)
QWEN2_VL_2B_TEXT["rope_parameters"] = {
    "rope_type": "default",
    "mrope_section": [16, 24, 24],
    "rope_theta": 1e6,
}
"""The text model of Qwen2-VL-2B-Instruct (its config.json)."""
QWEN2_VL_2B_VISION = {"depth": 32, "embed_dim": 1280, "hidden_size": 1536, "mlp_ratio": 4, "num_heads": 16}
QWEN2_VL_2B_VISION.update(in_channels=3, patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
"""Its vision tower (hidden_size: the merger's output, the text width)."""
PEAK_TFLOPS = {"H200": 989.4, "H100": 989.4, "H800": 989.4, "A100": 312.0, "L40S": 362.1, "L4": 121.0}
"""Dense bf16 tensor-core peak (NVIDIA's data sheets, SXM parts, without sparsity), by name in the device's."""
NEVER = -1
"""An end-of-turn id no token has: every completion is exactly --completion-length tokens."""


def build(args, device: torch.device):
    """(policy, processor): Qwen2-VL-2B's config (or the tiny 1m one with --reduced), random init, fp32."""
    tokenizer = train_tokenizer(seed=0)
    config = tiny_config("qwen2_vl", SIZES["1m"], tokenizer)  # its special-token ids are our tokenizer's
    if not args.reduced:  # a fresh config (set afterwards, num_hidden_layers would not resize layer_types)
        ids = {k: getattr(config, k) for k in ("image_token_id", "video_token_id", "vision_start_token_id")}
        ids["vision_end_token_id"] = config.vision_end_token_id
        text = {k: getattr(config.text_config, k) for k in ("bos_token_id", "eos_token_id", "pad_token_id")}
        config = Qwen2VLConfig(
            text_config={**text, **QWEN2_VL_2B_TEXT},
            vision_config=QWEN2_VL_2B_VISION,
            tie_word_embeddings=True,
            **ids,
        )
    image_processor = Qwen2VLImageProcessorPil(min_pixels=MIN_PIXELS, max_pixels=args.max_pixels)
    processor = QwenVLImageProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=tokenizer.chat_template
    )
    torch.manual_seed(0)
    with device:  # initialised where it runs (a 2B init on the CPU takes minutes)
        model = Qwen2VLForConditionalGeneration(config)
    return model.train(), processor


def pass_flops(
    config, prompt_lens: list[int], patches: list[int], G: int, T: int, attention: bool = True
) -> dict[str, float]:
    """FLOPs of the step's passes (module docstring): rollout and reference (forward), update (forward +
    backward: 3x a log-prob pass). prompt_lens: each prompt's real tokens (image tokens included);
    patches: each image's patches; attention=False: the weight matmuls alone (what the test checks)."""
    t, v = config.text_config, config.vision_config
    d, h = t.hidden_size, t.hidden_size // t.num_attention_heads
    attn = t.num_attention_heads * h  # query width
    per_token = (
        2
        * t.num_hidden_layers
        * (d * (attn + 2 * t.num_key_value_heads * h) + attn * d + 3 * d * t.intermediate_size)
    )
    head = 2 * d * t.vocab_size
    per_key = 4 * t.num_hidden_layers * attn * attention  # attention FLOPs per (query, key) pair

    def causal(first: int, n: int) -> float:  # attention of n queries at contexts first+1 .. first+n
        return per_key * (n * first + n * (n + 1) / 2)

    e = v.embed_dim
    block = 2 * (4 * e * e + 2 * e * v.mlp_ratio * e)
    embed = 2 * v.in_channels * v.temporal_patch_size * v.patch_size**2 * e
    merger = 2 * (16 * e * e + 4 * e * v.hidden_size)
    vision = sum(
        p * (v.depth * block + embed) + 4 * v.depth * e * p * p * attention + (p // 4) * merger
        for p in patches
    )
    prompts = sum(per_token * n + causal(0, n) for n in prompt_lens)
    # the first token is sampled from the prefill's logits, then T-1 decode steps of one token per row
    decoded = sum(G * ((T - 1) * (per_token + head) + causal(n, T - 1)) for n in prompt_lens)
    rollout = vision + prompts + len(prompt_lens) * head + decoded
    logprob = (
        vision + prompts + sum(G * ((T - 1) * per_token + causal(n, T - 1) + T * head) for n in prompt_lens)
    )
    return {"rollout": rollout, "reference": logprob, "update": 3 * logprob}


def make_samples(args) -> list[Sample]:
    """`--prompts` classification samples, each one image of --image-size pixels."""
    tmp = Path(args.out).parent / "gpu_step_images"
    tmp.mkdir(parents=True, exist_ok=True)
    samples = []
    for i in range(args.prompts):
        w, hgt = args.image_size
        im = Image.new("RGB", (w, hgt), "white")
        ImageDraw.Draw(im).ellipse((w // 8, hgt // 6, w * 5 // 8, hgt * 2 // 3), fill="red")
        path = tmp / f"{i}.png"
        im.save(path)
        samples.append(Sample(f"s{i}", [str(path)], "classification", "What colour?", ClassTarget("red")))
    return samples


VARIANTS = {
    "shared": {"share_prefix": True, "compile_step": False},
    "per_row": {"share_prefix": False, "compile_step": False},
    "compiled": {"share_prefix": True, "compile_step": True},
}
"""What --variants can name: log-probs with each prompt once (the code) or per row (before), and the
rollout's simple loop or the static cache with a compiled step (grpo.compiled_decode)."""


def one_step(
    policy, reference, optimizer, precision, inputs, args, variant: dict, sync
) -> tuple[dict, object]:
    """One GRPO step: seconds of each part (between synchronisations), and the rollout."""
    G, T, share = args.group_size, args.completion_length, variant["share_prefix"]
    params = [p for p in policy.parameters() if p.requires_grad]
    t0 = sync()
    with eval_mode(policy), precision.autocast():
        rollout = sample_group(
            policy,
            inputs,
            group_size=G,
            max_new_tokens=T,
            eos_token_ids=[NEVER],
            pad_token_id=0,  # never used: no row ends
            compile_step=variant["compile_step"],
        )
    t1 = sync()
    with torch.no_grad(), precision.autocast():
        ref = completion_logprobs(reference, rollout, share_prefix=share)  # [R, T]
    t2 = sync()
    rewards = torch.rand(rollout.completion_ids.shape[0])  # [R]
    adv = group_advantages(rewards, G).to(ref.device)  # [R]
    optimizer.zero_grad(set_to_none=True)
    with precision.autocast():
        logp = completion_logprobs(policy, rollout, share_prefix=share)  # [R, T]
    loss = policy_loss(logp, logp.detach(), ref, adv, rollout.completion_mask, beta=0.04)
    precision.backward(loss)
    precision.step(optimizer, params, 1.0, bool(torch.isfinite(loss)))
    t3 = sync()
    return {"rollout": t1 - t0, "reference": t2 - t1, "update": t3 - t2}, rollout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--reduced", action="store_true", help="the tiny 1m dimensions (CPU test)")
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=1)
    parser.add_argument("--completion-length", type=int, default=256)
    parser.add_argument("--max-pixels", type=int, default=401_408)
    parser.add_argument("--image-size", type=int, nargs=2, default=[896, 448], metavar=("W", "H"))
    parser.add_argument("--precision", default="bf16-mixed")
    parser.add_argument("--variants", nargs="+", default=[*VARIANTS, "trl"], choices=[*VARIANTS, "trl"])
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps of each variant first")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--peak-tflops", type=float, default=0.0, help="0: from PEAK_TFLOPS by name")
    parser.add_argument("--out", type=Path, default=Path("bench/results/gpu_step.json"))
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_step: no CUDA device here; skipped (--device cpu --reduced runs it on the CPU)")
        return 0
    device = torch.device(args.device)
    cuda = device.type == "cuda"

    def sync() -> float:
        if cuda:
            torch.cuda.synchronize(device)
        return time.perf_counter()

    policy, processor = build(args, device)
    reference = copy.deepcopy(policy).requires_grad_(False).eval()
    if cuda:
        reference = reference.to(torch.bfloat16)  # model.dtype=auto on a GPU
    precision = Precision(args.precision, device)
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-6)
    samples = make_samples(args)
    inputs = encode_prompts(samples, processor, "norm1000")[0].to(device)
    name = torch.cuda.get_device_name(device) if cuda else "cpu"
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in name), 0.0)
    variants = {}
    result = {
        "benchmark": "gpu_step",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python bench/gpu_step.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine("transformers", "trl"),
        "device": name,
        "peak_tflops": peak or None,
        "workload": {
            "model": "Qwen2-VL (tiny 1m dims)" if args.reduced else "Qwen2-VL-2B config, random init",
            "parameters": sum(p.numel() for p in policy.parameters()),
            "precision": args.precision,
            "group_size": args.group_size,
            "completion_tokens": args.completion_length,
            "prompt_tokens": inputs["attention_mask"].sum(dim=1).tolist(),
            "image_patches": inputs["image_grid_thw"].prod(dim=-1).tolist(),
            "warmup_steps": args.warmup,
            "timed_steps": args.steps,
        },
        "variants": variants,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for key in args.variants:  # the JSON is rewritten after each, so a later failure keeps the earlier ones
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        if key == "trl":
            optimizer.state.clear()  # room for TRL's own copy, optimizer and reference
            policy.zero_grad(set_to_none=True)
            variants[key] = time_trl(policy, processor, samples, args, sync, peak)
        else:
            steps = []
            for i in range(args.warmup + args.steps):
                times, rollout = one_step(
                    policy, reference, optimizer, precision, inputs, args, VARIANTS[key], sync
                )
                if i >= args.warmup:
                    steps.append(times)
            variants[key] = summarise(steps, policy.config, rollout, args, peak)
        variants[key]["peak_memory_gb"] = torch.cuda.max_memory_allocated(device) / 1e9 if cuda else None
        print(key, json.dumps({k: variants[key][k] for k in ("mean_s", "mfu")}), flush=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


def time_trl(policy, processor, samples, args, sync, peak: float) -> dict:
    """TRL's GRPOTrainer on the same step (its own copy of the policy, the reference it loads itself from
    that copy saved to a folder beside --out,
    bf16 autocast with fp32 weights as its `bf16=True` does, DAPO loss, beta 0.04, min_new_tokens = max):
    whole steps only (TRL's step does not split), with the step's MFU on our FLOPs count."""
    sys.path.insert(0, str(Path(__file__).parent))
    import trl_setup

    G, T, cuda = args.group_size, args.completion_length, policy.device.type == "cuda"
    model, folder = copy.deepcopy(policy), Path(args.out).parent / "gpu_step_model"
    model.save_pretrained(folder)  # TRL builds its reference from the policy's folder
    model.config._name_or_path = str(folder)
    trainer = trl_setup.classification_trainer(
        model,
        processor,
        samples,
        Path(args.out).parent / "gpu_step_trl",
        "norm1000",
        prompts=len(samples),
        group_size=G,
        completion_length=T,
        beta=0.04,
        steps=args.warmup + args.steps,
        use_cpu=not cuda,
        bf16=args.precision == "bf16-mixed",
    )
    timed = trl_setup.timed_train(trainer, args.warmup, each_step=sync)
    mean = sum(timed["step_s"]) / len(timed["step_s"])
    inputs = encode_prompts(samples, processor, "norm1000")[0]
    lens = inputs["attention_mask"].sum(dim=1).tolist()
    flops = sum(
        pass_flops(policy.config, lens, inputs["image_grid_thw"].prod(dim=-1).tolist(), G, T).values()
    )
    out = {
        "steps_s": timed["step_s"],
        "mean_s": {"step": mean},
        "completion_length": timed["completion_length"],
    }
    return {**out, "flops": {"step": flops}, "mfu": {"step": flops / (mean * peak * 1e12)} if peak else None}


def summarise(steps: list[dict], config, rollout, args, peak: float) -> dict:
    """Mean seconds per part, tokens/s, FLOPs and MFU of each part and of the whole step (the same counted
    work in every variant: the prompt once per pass)."""
    G, T = args.group_size, args.completion_length
    mean = {k: sum(s[k] for s in steps) / len(steps) for k in ("rollout", "reference", "update")}
    mean["step"] = sum(mean.values())
    prompt_lens = rollout.prompt_mask.sum(dim=1).tolist()
    flops = pass_flops(config, prompt_lens, rollout.image_grid_thw.prod(dim=-1).tolist(), G, T)
    flops["step"] = sum(flops.values())
    processed = sum(prompt_lens) + G * len(prompt_lens) * T  # tokens of a log-prob pass, prefix once
    tokens = {"rollout": G * len(prompt_lens) * T, "reference": processed, "update": processed}
    return {
        "steps_s": steps,
        "mean_s": mean,
        "tokens_per_s": {k: tokens[k] / mean[k] for k in tokens},
        "flops": flops,
        "mfu": {k: flops[k] / (mean[k] * peak * 1e12) for k in flops} if peak else None,
    }


if __name__ == "__main__":
    raise SystemExit(main())
