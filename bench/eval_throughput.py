"""Evaluation throughput: batched, length-sorted generation against one-at-a-time generation, in one run.

Usage::

    python bench/eval_throughput.py [--model DIR | --size 5m] [--images 48] [--batch-sizes 1 4 8 16 32]
                                    [--max-new-tokens 64] [--repeats 3] [--out bench/results/eval_throughput.json]

The workload: ``--images`` synthetic images of 112 to 224 px a side (random sizes, so prompts differ in
length and batches need padding), each with a few coloured shapes drawn with PIL, and a classification
question; the tiny Qwen2.5-VL model (random weights, built on the fly unless ``--model`` is given) answers
greedily. A random model may never stop, or stop at once, so every configuration generates exactly
``--max-new-tokens`` tokens per sample (``min_new_tokens = max_new_tokens``): the same work everywhere.

Each row times `visual_rft.eval.generate.generate` over all images (image loading, prompt encoding,
generation and decoding included): batch size 1 in file order (one at a time), each batch size with
length-sorted batches, and ``--unsorted`` (16) in file order, to show what sorting saves. The configurations take turns within each repeat (so a burst of load from other
processes hits them alike) and the best of ``--repeats`` is kept. Speedups are against batch size 1.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from visual_rft.data.types import ClassTarget, Sample  # noqa: E402
from visual_rft.eval.generate import DecodeOptions, generate  # noqa: E402
from visual_rft.models.loading import load_model, load_processor  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from visual_rft.report.machine import machine  # noqa: E402

COLOURS = [(220, 45, 45), (40, 160, 60), (40, 70, 220), (230, 190, 30), (150, 60, 200)]


def make_samples(root: Path, n: int, seed: int = 0) -> list[Sample]:
    """`n` images of random size (112-224 px a side) with 1-4 shapes each, and a classification question."""
    rng = random.Random(seed)
    samples = []
    for i in range(n):
        w, h = rng.randint(112, 224), rng.randint(112, 224)
        im = Image.new("RGB", (w, h), tuple(rng.randint(200, 250) for _ in range(3)))
        draw = ImageDraw.Draw(im)
        for _ in range(rng.randint(1, 4)):
            x1, y1 = rng.randint(0, w - 30), rng.randint(0, h - 30)
            box = (x1, y1, x1 + rng.randint(15, 30), y1 + rng.randint(15, 30))
            (draw.rectangle if rng.random() < 0.5 else draw.ellipse)(box, fill=rng.choice(COLOURS))
        path = root / f"bench-{i:03d}.png"
        im.save(path)
        samples.append(
            Sample(
                f"b{i}",
                [str(path)],
                "classification",
                "What is the object in the image?",
                ClassTarget("shape"),
                w,
                h,
            )
        )
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="a local model folder (default: build a tiny one)")
    parser.add_argument("--size", default="5m", choices=["1m", "5m", "20m"], help="tiny model size")
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--unsorted", type=int, default=16, help="also time this batch size in file order")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=Path("bench/results/eval_throughput.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if 1 not in args.batch_sizes:
        args.batch_sizes = [1, *args.batch_sizes]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = args.model
        if model_dir is None:
            from visual_rft.models.tiny import write_tiny

            model_dir = write_tiny(tmp / f"tiny-{args.size}", "qwen2_5_vl", args.size)
        model = load_model(model_dir, dtype=args.dtype, device=args.device)
        processor = load_processor(model_dir)
        samples = make_samples(tmp, args.images)
        options = DecodeOptions(max_new_tokens=args.max_new_tokens, min_new_tokens=args.max_new_tokens)
        generate(model, processor, samples[:4], batch_size=4, options=options)  # warm up

        configs = [(bs, bs > 1) for bs in args.batch_sizes]
        if args.unsorted in args.batch_sizes and args.unsorted > 1:
            configs.append((args.unsorted, False))
        best: dict[tuple[int, bool], float] = {}
        load = [os.getloadavg()[0]] if hasattr(os, "getloadavg") else []
        for _ in range(args.repeats):
            for bs, sort in configs:
                t0 = time.perf_counter()
                gens = generate(model, processor, samples, batch_size=bs, options=options, sort=sort)
                seconds = time.perf_counter() - t0
                assert all(g.n_tokens == args.max_new_tokens for g in gens)
                best[bs, sort] = min(best.get((bs, sort), float("inf")), seconds)
        if load:
            load.append(os.getloadavg()[0])

    tokens = args.images * args.max_new_tokens
    rows = []
    for (bs, sort), s in best.items():
        name = "one at a time" if bs == 1 else f"batched {bs}, " + ("length-sorted" if sort else "file order")
        rows.append(
            {
                "config": name,
                "batch_size": bs,
                "sorted": sort,
                "seconds": round(s, 3),
                "samples_per_s": round(args.images / s, 2),
                "tokens_per_s": round(tokens / s, 1),
                "speedup": round(best[1, False] / s, 2),
            }
        )
    result = {
        "benchmark": "eval_throughput",
        "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "date": datetime.now().isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_1min": load,
        "model": str(args.model) if args.model else f"tiny qwen2_5_vl {args.size} (random weights)",
        "images": args.images,
        "max_new_tokens": args.max_new_tokens,
        "min_new_tokens": args.max_new_tokens,
        "decoding": "greedy",
        "repeats": args.repeats,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    print(
        f"{result['model']}, {args.images} images 112-224 px, {args.max_new_tokens} new tokens each, "
        f"best of {args.repeats}, {result['machine'].get('cpu', '')}, {args.threads} threads"
    )
    print(f"{'config':<28} {'s':>8} {'samples/s':>10} {'tokens/s':>10} {'speedup':>8}")
    for r in rows:
        print(
            f"{r['config']:<28} {r['seconds']:>8.2f} {r['samples_per_s']:>10.2f} {r['tokens_per_s']:>10.1f} "
            f"{r['speedup']:>7.2f}x"
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
