"""The `vrft` command. Each subcommand is a thin shell around a library function."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from visual_rft.data.builders.cli import register as register_build
from visual_rft.eval.cli import old_flag_hint
from visual_rft.eval.cli import register as register_eval


def _cmd_model_tiny(args) -> int:
    from visual_rft.models.tiny import build_tiny, count_parameters

    t0 = time.perf_counter()
    model, processor = build_tiny(args.family, args.size, args.seed)
    model.save_pretrained(args.out)
    processor.save_pretrained(args.out)
    counts = count_parameters(model)
    print(
        f"wrote {args.family} tiny model ({args.size}) to {args.out} in {time.perf_counter() - t0:.1f}s: "
        f"{counts['total']:,} parameters ({counts['vision']:,} vision, {counts['language']:,} language)"
    )
    return 0


def _cmd_model_merge(args) -> int:
    from visual_rft.models.loading import merge_adapter

    t0 = time.perf_counter()
    out = merge_adapter(args.adapter, args.out, dtype=args.dtype)
    print(f"merged {args.adapter} into its base: {out} ({args.dtype}, {time.perf_counter() - t0:.1f}s)")
    return 0


def _cmd_data_check(args) -> int:
    from visual_rft.data.jsonl import check_file

    bad = 0
    for path in args.files:
        n, errors = check_file(path, images=not args.no_images)
        for e in errors:
            print(e, file=sys.stderr)
        bad += len(errors)
        print(f"{path}: {n} records, {len(errors)} bad")
    return 1 if bad else 0


def _cmd_data_import(args) -> int:
    from visual_rft.data.convert_hf import import_visual_rft

    path = import_visual_rft(
        args.src, args.out, task=args.task, grounding_coords=args.grounding_coords, limit=args.limit
    )
    print(f"wrote {path}")
    return 0


def _config_args(args) -> tuple[Path | None, list[str]]:
    """`vrft train [CONFIG.yaml] [key=value ...]`: the config file is optional."""
    config, overrides = args.config, list(args.overrides)
    if config is not None and "=" in str(config) and not config.exists():
        return None, [str(config), *overrides]
    return config, overrides


def _cmd_train(args) -> int:
    from visual_rft.config import TrainConfig, load_config
    from visual_rft.rl.trainer import train

    cfg = load_config(TrainConfig, *_config_args(args))
    print(f"run folder: {train(cfg, resume=args.resume)}")
    return 0


def _cmd_sft(args) -> int:
    from visual_rft.config import SFTTrainConfig, load_config
    from visual_rft.sft.trainer import train_sft

    cfg = load_config(SFTTrainConfig, *_config_args(args))
    print(f"run folder: {train_sft(cfg, resume=args.resume)}")
    return 0


def _cmd_world_build(args) -> int:
    from visual_rft.world import build_suite

    paths = build_suite(args.out, seed=args.seed, n_pretrain=args.n_pretrain, n_test=args.n_test)
    print(f"wrote {len(paths)} JSONL files to {args.out} (list in {args.out}/world.json)")
    return 0


def _cmd_world_pretrain(args) -> int:
    from visual_rft.config import load_config
    from visual_rft.recipes.pretrain import PretrainConfig, run_pretrain

    print(f"base model: {run_pretrain(load_config(PretrainConfig, None, args.overrides))}")
    return 0


def _cmd_world_fewshot(args) -> int:
    from visual_rft.config import load_config
    from visual_rft.recipes.fewshot import FewShotConfig, run_fewshot

    cfg = load_config(FewShotConfig, None, args.overrides)
    run_fewshot(cfg)
    print((Path(cfg.out_dir) / "eval" / "metrics.md").read_text())
    return 0


def _cmd_world_bench(args) -> int:
    from visual_rft.config import load_config
    from visual_rft.recipes.bench import BenchConfig, run_bench

    command = " ".join(["vrft world bench", *args.overrides])
    print(f"tables: {run_bench(load_config(BenchConfig, None, args.overrides), command)}")
    return 0


def _cmd_demo(args) -> int:
    from visual_rft.demo import run_demo

    return run_demo(out_dir=args.out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vrft", description=__doc__)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")

    model = sub.add_parser("model", help="build models").add_subparsers(dest="model_command", required=True)
    tiny = model.add_parser("tiny", help="write a tiny Qwen-VL model folder (no download)")
    tiny.add_argument("out", type=Path, help="output folder")
    tiny.add_argument("--size", default="5m", choices=["1m", "5m", "20m"])
    tiny.add_argument("--family", default="qwen2_5_vl", choices=["qwen2_5_vl", "qwen2_vl", "qwen3_vl"])
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(func=_cmd_model_tiny)
    merge = model.add_parser(
        "merge", help="merge a LoRA adapter (a LoRA run's checkpoint-N/model) into an ordinary model folder"
    )
    merge.add_argument("adapter", type=Path, help="adapter folder (adapter_config.json)")
    merge.add_argument("out", type=Path, help="output folder: config.json, weights, processor files")
    merge.add_argument(
        "--dtype", default="fp32", choices=["fp32", "bf16", "fp16"], help="weights of the merged model"
    )
    merge.set_defaults(func=_cmd_model_merge)

    data = sub.add_parser("data", help="datasets").add_subparsers(dest="data_command", required=True)
    check = data.add_parser("check", help="report every bad record of JSONL files; exit 1 if any")
    check.add_argument("files", nargs="+", type=Path)
    check.add_argument("--no-images", action="store_true", help="do not open the images")
    check.set_defaults(func=_cmd_data_check)
    imp = data.add_parser(
        "import-visual-rft", help="convert a released Visual-RFT Hugging Face dataset to JSONL"
    )
    imp.add_argument("src", type=Path, help="save_to_disk folder, .parquet file or folder of .parquet files")
    imp.add_argument("out", type=Path, help="output folder (data.jsonl + images/)")
    imp.add_argument(
        "--task",
        choices=["classification", "detection", "grounding"],
        default=None,
        help="force the task (default: inferred from each solution)",
    )
    imp.add_argument(
        "--grounding-coords",
        choices=["norm1000", "pixels"],
        default="norm1000",
        help="the convention of grounding solutions",
    )
    imp.add_argument("--limit", type=int, default=0, help="import only the first N rows")
    imp.set_defaults(func=_cmd_data_import)
    register_build(data)

    for name, func, what in (
        ("train", _cmd_train, "GRPO reinforcement fine-tuning"),
        ("sft", _cmd_sft, "supervised fine-tuning baseline"),
    ):
        p = sub.add_parser(name, help=what)
        p.add_argument("config", type=Path, nargs="?", help="YAML config (see configs/)")
        p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. grpo.group_size=4 run.steps=10")
        p.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
        p.set_defaults(func=func)

    register_eval(sub)

    world = sub.add_parser("world", help="the synthetic world").add_subparsers(
        dest="world_command", required=True
    )
    wb = world.add_parser("build", help="write the world's task files (pre-training, few-shot pools, tests)")
    wb.add_argument("out", type=Path)
    wb.add_argument("--seed", type=int, default=0)
    wb.add_argument("--n-pretrain", type=int, default=2000, help="pre-training samples per base task")
    wb.add_argument("--n-test", type=int, default=200, help="test samples per task")
    wb.set_defaults(func=_cmd_world_build)
    for name, func, what in (
        (
            "pretrain",
            _cmd_world_pretrain,
            "pre-train the base model on the base tasks (key=value: see PretrainConfig)",
        ),
        ("fewshot", _cmd_world_fewshot, "base vs SFT vs RFT at k shots (key=value: see FewShotConfig)"),
        (
            "bench",
            _cmd_world_bench,
            "the paper's tables: every task, shot count and seed, into RESULTS.md (key=value: see BenchConfig)",
        ),
    ):
        p = world.add_parser(name, help=what)
        p.add_argument("overrides", nargs="*", help="e.g. task=detection shots=2 out_dir=runs/x")
        p.set_defaults(func=func)

    demo = sub.add_parser("demo", help="run the demo on the embedded default")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # we never fetch from a hub
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "eval":  # models and key=value may also follow --data/--out
        args.items += [x for x in extra if not x.startswith("-")]
        extra = [x for x in extra if x.startswith("-")]
        if extra:
            parser.error(f"eval: {old_flag_hint(extra)}")
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.version:
        from visual_rft import __version__

        print(__version__)
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (FileNotFoundError, FileExistsError, ValueError) as e:  # includes ConfigError and DataError
        print(f"vrft: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
