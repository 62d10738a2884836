"""bench/base_sizes.py: staged-base runs launched together, a shared stage 1, a deadline that stops them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "base_sizes.py"


def run(*args, timeout=600):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_a_reduced_run_trains_its_stage_1_then_ends_with_scores_and_hits(tmp_path):
    out = tmp_path / "sizes"
    done = run("--out", out, "--reduced", "--only", "5m", "--deadline", 500, "--workers", 1)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((out / "base_sizes.json").read_text())["runs"]["5m"]
    assert report["state"] == "done" and report["seconds"] > 0
    assert report["overrides"] == ["size=5m"]
    assert {"classification.accuracy", "detection.AP50", "grounding.acc@0.5"} <= set(report["result"])
    assert report["result"]["overrides"][:2] == ["size=5m", "locate.run.precision=fp32"]
    kinds = [line for line in report["hits"] if "completions.jsonl" in line]
    assert [k.split("/eval/")[1].split("/")[0] for k in kinds] == ["single", "pair", "name"]
    # the run started from the size's stage 1, trained once beside it
    assert (out / "stage1-5m" / "vision" / "done.json").exists()
    assert (out / "5m" / "vision" / "done.json").read_text() == (
        out / "stage1-5m" / "vision" / "done.json"
    ).read_text()


def test_the_deadline_stops_what_runs_and_says_so(tmp_path):
    out = tmp_path / "sizes"
    done = run("--out", out, "--reduced", "--only", "5m", "20m", "--deadline", 0, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = json.loads((out / "base_sizes.json").read_text())["runs"]
    # stage 1 was still running at the deadline: no run started, and no process is left behind
    assert {name: r["state"] for name, r in runs.items()} == {"5m": "not started", "20m": "not started"}
    assert all(r["result"] is None for r in runs.values())
    assert not (out / "5m").exists()
    assert subprocess.run(["pgrep", "-f", str(out)], capture_output=True).returncode == 1


def test_a_stage_1_folder_that_did_not_finish_is_refused_before_any_work(tmp_path):
    half = tmp_path / "vision"
    half.mkdir()
    done = run("--out", tmp_path / "sizes", "--vision", f"5m={half}", timeout=60)
    assert done.returncode == 2 and "no done.json" in done.stderr
    assert not (tmp_path / "sizes").exists()
