"""`vrft eval`: options as key=value, the documented form, re-scoring a run from the command line."""

from __future__ import annotations

import argparse
import json

import pytest

from visual_rft.eval import cli as eval_cli
from visual_rft.eval.completions import COMPLETIONS, write_completions


def test_cli_rescore(tiny_model_dir, samples, tmp_path, capsys, perfect):
    run = tmp_path / "run"
    write_completions(run / "rft" / COMPLETIONS, perfect(samples, tiny_model_dir))
    parser = argparse.ArgumentParser(prog="vrft")
    eval_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eval", "--rescore", str(run)])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "| metric | rft |" in printed and "| classification.accuracy | 100.0 |" in printed
    assert json.loads((run / "metrics.json").read_text())["rft"]["detection"]["mAP"] == pytest.approx(1.0)
    assert (run / "rft" / "metrics.json").is_file()

    with pytest.raises(ValueError, match="--data"):
        args.func(parser.parse_args(["eval", str(tiny_model_dir)]))
