"""bench/paired_curves.py: windowed means of runs that saw the same batches, and a refusal when they did not."""

import json
import sys

import pytest


def write_log(path, losses, tokens, selectivity=None):
    path.mkdir(parents=True)
    rows = []
    for i, (loss, n) in enumerate(zip(losses, tokens), 1):
        row = {"step": i, "loss": loss, "answer_tokens": n}
        if selectivity is not None:
            row["binding/first_selectivity"] = selectivity[i - 1]
        rows.append(json.dumps(row))
    rows.insert(2, json.dumps({"step": 2, "eval/accuracy": 0.5}))  # an evaluation row: not a training step
    (path / "metrics.jsonl").write_text("\n".join(rows) + "\n")


def test_windows_average_each_run_over_the_steps_all_logged(load_bench, tmp_path):
    bench = load_bench("paired_curves")
    write_log(
        tmp_path / "a", [4.0, 2.0, 1.0, 3.0, 9.0], [10, 11, 12, 13, 14], [0.2, float("nan"), 0.6, 0.8, 1.0]
    )
    write_log(tmp_path / "b", [2.0, 2.0, 0.5, 0.5], [10, 11, 12, 13], [0.4, 0.4, 0.9, 0.7])

    curves = bench.paired_curves(
        [tmp_path / "a", tmp_path / "b"], window=2, keys=["loss", "binding/first_selectivity"]
    )

    a, b = curves[str(tmp_path / "a")], curves[str(tmp_path / "b")]
    assert [w["steps"] for w in a] == [[1, 2], [3, 4]]  # b logged 4 steps: a's fifth is not compared
    assert [w["loss"] for w in a] == [3.0, 2.0]
    assert [w["binding/first_selectivity"] for w in a] == [0.2, 0.7]  # the NaN is skipped, not averaged
    assert [w["loss"] for w in b] == [2.0, 0.5]
    assert [w["binding/first_selectivity"] for w in b] == [0.4, 0.8]


def test_steps_limits_the_comparison_and_a_metric_never_logged_is_none(load_bench, tmp_path):
    bench = load_bench("paired_curves")
    write_log(tmp_path / "a", [1.0, 3.0, 5.0], [7, 8, 9])
    curves = bench.paired_curves([tmp_path / "a"], window=5, steps=2, keys=["loss", "binding/loss"])
    assert curves[str(tmp_path / "a")] == [{"steps": [1, 2], "loss": 2.0, "binding/loss": None}]


def test_runs_on_other_batches_are_refused_by_step(load_bench, tmp_path):
    bench = load_bench("paired_curves")
    write_log(tmp_path / "a", [1.0, 1.0, 1.0], [10, 11, 12])
    write_log(tmp_path / "b", [1.0, 1.0, 1.0], [10, 11, 99])
    with pytest.raises(ValueError, match="step 3 saw another batch"):
        bench.paired_curves([tmp_path / "a", tmp_path / "b"], window=2)
    with pytest.raises(ValueError, match="no metrics.jsonl"):
        bench.paired_curves([tmp_path / "a", tmp_path / "missing"], window=2)


def test_main_prints_the_table_and_writes_the_json(load_bench, tmp_path, monkeypatch, capsys):
    bench = load_bench("paired_curves")
    write_log(tmp_path / "a", [2.0, 4.0], [5, 6])
    write_log(tmp_path / "b", [1.0, 1.0], [5, 6])
    out = tmp_path / "o" / "curves.json"
    argv = ["paired_curves.py", str(tmp_path / "a"), str(tmp_path / "b"), "--window", "2", "--keys", "loss"]
    monkeypatch.setattr(sys, "argv", [*argv, "--out", str(out)])
    bench.main()
    printed = capsys.readouterr().out
    assert f"| 1-2 | {tmp_path / 'a'} | 3.000 |" in printed
    assert f"| 1-2 | {tmp_path / 'b'} | 1.000 |" in printed
    assert json.loads(out.read_text())[str(tmp_path / "b")] == [{"steps": [1, 2], "loss": 1.0}]


def test_a_resumed_run_counts_each_step_once_as_logged_last(load_bench, tmp_path):
    bench = load_bench("paired_curves")
    write_log(tmp_path / "a", [1.0, 2.0, 3.0], [5, 6, 7])
    with open(tmp_path / "a" / "metrics.jsonl", "a") as f:  # steps 2, 3 logged again (a log joined by hand)
        f.write(json.dumps({"step": 2, "loss": 4.0, "answer_tokens": 6}) + "\n")
        f.write(json.dumps({"step": 3, "loss": 6.0, "answer_tokens": 7}) + "\n")
    curves = bench.paired_curves([tmp_path / "a"], window=3, keys=["loss"])
    assert curves[str(tmp_path / "a")] == [{"steps": [1, 3], "loss": round(11 / 3, 4)}]
