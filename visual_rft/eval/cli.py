"""`vrft eval`: evaluate model folders on a JSONL test set, or re-score a run's saved completions.

    vrft eval base=models/tiny sft=runs/sft/final rft=runs/rft/final --data test.jsonl --out runs/eval
    vrft eval --rescore runs/eval

Heavy imports (torch, transformers) happen only when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_eval(args) -> int:
    from visual_rft.eval.report import METRICS_MD
    from visual_rft.eval.runner import EvalOptions, evaluate_models, rescore

    if args.rescore is not None:
        if args.models or args.data is not None:
            raise ValueError("--rescore takes a run folder only: no model folders, no --data")
        rescore(args.rescore, args.out)
        out = args.out or args.rescore
    else:
        if not args.models:
            raise ValueError("give at least one model folder (or --rescore RUN_DIR)")
        if args.data is None or args.out is None:
            raise ValueError("evaluating models needs --data TEST.jsonl and --out DIR")
        options = EvalOptions(
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            min_new_tokens=args.min_new_tokens,
            temperature=args.temperature,
            top_p=args.top_p,
            seed=args.seed,
            dtype=args.dtype,
            device=args.device,
            categories=args.categories,
            sort=not args.no_sort,
            progress=not args.no_progress,
            limit=args.limit,
        )
        evaluate_models(args.models, args.data, args.out, options)
        out = args.out
    sys.stdout.write((Path(out) / METRICS_MD).read_text(encoding="utf-8"))
    print(f"wrote {Path(out) / 'metrics.json'} and {Path(out) / METRICS_MD}")
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add the `eval` subcommand to the `vrft` command's subparsers."""
    p = subparsers.add_parser(
        "eval",
        help="evaluate model folders on a JSONL test set (or re-score a run)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "models",
        nargs="*",
        metavar="MODEL_DIR",
        help="local model folders, each as PATH or NAME=PATH (the table's column name; default: folder name)",
    )
    p.add_argument("--data", type=Path, help="test set (visual-rft JSONL)")
    p.add_argument("--out", type=Path, help="output folder (with --rescore: default the run folder)")
    p.add_argument(
        "--rescore",
        type=Path,
        metavar="RUN_DIR",
        help="score the saved completions of a run again, without a model",
    )
    p.add_argument("--batch-size", type=int, default=8, help="prompts generated together (default 8)")
    p.add_argument("--max-new-tokens", type=int, default=256, help="most tokens per answer (default 256)")
    p.add_argument("--min-new-tokens", type=int, default=0, help="fewest tokens per answer (default 0)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default); > 0 samples")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus mass when sampling")
    p.add_argument("--seed", type=int, default=0, help="random seed when sampling")
    p.add_argument("--dtype", default="auto", help="auto, fp32, bf16, fp16 (auto: bf16 on GPU, else fp32)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument(
        "--categories",
        default="file",
        metavar="file|present|all|MAP.json",
        help="detection queries per image: the file's own (default), only categories present, every "
        "category of the file, or those an existence map {image: [category, ...]} lists",
    )
    p.add_argument("--limit", type=int, help="evaluate only the first N samples")
    p.add_argument("--no-sort", action="store_true", help="keep file order (no length-sorted batches)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_eval)
    return p
