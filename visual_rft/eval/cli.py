"""`vrft eval`: evaluate model folders on a JSONL test set, or re-score a run's saved completions.

    vrft eval base=models/tiny sft=runs/sft/final rft=runs/rft/final --data test.jsonl --out runs/eval
    vrft eval models/tiny --data test.jsonl --out runs/eval batch_size=16 max_new_tokens=128
    vrft eval --rescore runs/eval
    vrft eval rft=runs/lisa/checkpoint-500/model --data data/lisa/val.jsonl --out runs/lisa_eval --sam models/sam-vit-h

Models are PATH or NAME=PATH (NAME: the table's column; default the folder's name). Options are
`key=value` overrides of `EvalOptions` (visual_rft/config.py), as every other command takes them,
optionally on top of a YAML file given with --config.

Like every command shell (visual_rft/cli.py), it imports torch and transformers only when the command runs,
so that `vrft --help` answers at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import sys
from pathlib import Path

from visual_rft.config import ConfigError, EvalOptions, load_config
from visual_rft.eval.report import METRICS_JSON, METRICS_MD

OPTION_NAMES = tuple(f.name for f in dataclasses.fields(EvalOptions))


def split_items(items: list[str]) -> tuple[list[str], list[str]]:
    """(model specs, option overrides): `key=value` is an option when `key` names one of EvalOptions'
    fields and no file of that name exists; everything else is a model folder (PATH or NAME=PATH)."""
    models, overrides = [], []
    for item in items:
        key, sep, path = item.partition("=")
        key = key.strip()
        if sep and key in OPTION_NAMES and not os.path.exists(item):
            overrides.append(item)
            continue
        close = difflib.get_close_matches(key, OPTION_NAMES, n=1) if sep else []
        if close and not os.path.exists(path) and not os.path.exists(item):
            raise ConfigError(
                f"unknown option '{key}'; did you mean '{close[0]}'? (options: {', '.join(OPTION_NAMES)})"
            )
        models.append(item)
    return models, overrides


def old_flag_hint(extra: list[str]) -> str:
    """The message for flags of the earlier `vrft eval` (--batch-size 4 is now batch_size=4)."""
    hints = []
    for flag in (a for a in extra if a.startswith("--")):
        name = flag[2:].split("=")[0].replace("-", "_")
        name = {"no_progress": "progress", "no_sort": "sort"}.get(name, name)
        if name in OPTION_NAMES:
            value = "false" if flag.startswith("--no-") else "VALUE"
            hints.append(f"{flag} is now {name}={value}")
    known = ", ".join(OPTION_NAMES)
    return ("; ".join(hints) + "; " if hints else "") + f"unrecognised {' '.join(extra)} (options: {known})"


def _cmd_eval(args) -> int:
    from visual_rft.eval.runner import evaluate_models, rescore  # torch and transformers: only when it runs

    models, overrides = split_items(args.items)
    if args.rescore is not None:
        if models or overrides or args.data is not None or args.config is not None:
            raise ValueError("--rescore takes a run folder only: no model folders, no options, no --data")
        rescore(args.rescore, args.out, sam=args.sam)
        out = args.out or args.rescore
    else:
        if not models:
            raise ValueError("give at least one model folder (or --rescore RUN_DIR)")
        if args.data is None or args.out is None:
            raise ValueError("evaluating models needs --data TEST.jsonl and --out DIR")
        options = load_config(EvalOptions, args.config, overrides)
        evaluate_models(models, args.data, args.out, options, sam=args.sam)
        out = args.out
    sys.stdout.write((Path(out) / METRICS_MD).read_text(encoding="utf-8"))
    print(f"wrote {Path(out) / METRICS_JSON} and {Path(out) / METRICS_MD}")
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add the `eval` subcommand to the `vrft` command's subparsers."""
    defaults = EvalOptions()
    p = subparsers.add_parser(
        "eval",
        help="evaluate model folders on a JSONL test set (or re-score a run)",
        description=__doc__,
        epilog="options (key=value): "
        + ", ".join(f"{n}={getattr(defaults, n)}" for n in OPTION_NAMES)
        + " (categories: file, present, all or MAP.json; see visual_rft/eval/queries.py)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "items", nargs="*", metavar="MODEL_DIR|key=value", help="[NAME=]PATH of each model; options"
    )
    p.add_argument("--data", type=Path, help="test set (visual-rft JSONL)")
    p.add_argument("--out", type=Path, help="output folder (with --rescore: default the run folder)")
    p.add_argument("--config", type=Path, help="YAML file of EvalOptions (key=value overrides apply on top)")
    p.add_argument(
        "--rescore", type=Path, metavar="RUN_DIR", help="score the saved completions of a run again, no model"
    )
    p.add_argument(
        "--sam",
        type=Path,
        metavar="SAM_DIR",
        help="a local transformers SamModel folder: grounding's mask gIoU / cIoU from masks predicted from the boxes",
    )
    p.set_defaults(func=_cmd_eval)
    return p
