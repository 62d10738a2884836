"""RunLogger: metrics.jsonl and samples.jsonl rows with their step, TensorBoard events only when enabled."""

import json

import pytest

from visual_rft.train.log import RunLogger


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _events(run_dir):
    return sorted((run_dir / "tensorboard").glob("events.out.tfevents.*"))


def test_metrics_and_samples_rows_carry_the_step(tmp_path, capsys):
    log = RunLogger(tmp_path / "run", total_steps=3, tensorboard=False, progress=False)
    log.log(1, {"loss": 0.123456789, "reward/total": 1, "note": "warm-up"}, postfix={"loss": 0.12})
    log.samples(
        1, [{"completion": "<answer>red</answer>", "reward": 1.0}, {"completion": "x", "reward": 0.0}]
    )
    log.advance()
    log.log(2, {"loss": 0.5})
    log.advance()
    log.close()
    run = tmp_path / "run"
    assert _rows(run / "metrics.jsonl") == [
        {"step": 1, "loss": 0.123457, "reward/total": 1, "note": "warm-up"},  # floats rounded to 6 places
        {"step": 2, "loss": 0.5},
    ]
    assert _rows(run / "samples.jsonl") == [
        {"step": 1, "completion": "<answer>red</answer>", "reward": 1.0},
        {"step": 1, "completion": "x", "reward": 0.0},
    ]
    assert not (run / "tensorboard").exists()
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""  # progress bar off: nothing printed


def test_tensorboard_events_hold_the_numeric_metrics(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = RunLogger(tmp_path, total_steps=2, tensorboard=True, progress=False)
    log.log(1, {"loss": 0.25, "grad_norm": 2, "note": "text is not a scalar"})
    log.log(2, {"loss": 0.125, "grad_norm": 1})
    log.close()
    (events,) = _events(tmp_path)
    acc = EventAccumulator(str(events.parent))
    acc.Reload()
    assert sorted(acc.Tags()["scalars"]) == ["grad_norm", "loss"]
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [(1, 0.25), (2, 0.125)]
    assert [(e.step, e.value) for e in acc.Scalars("grad_norm")] == [(1, 2.0), (2, 1.0)]


def test_resume_drops_rows_after_the_start_step(tmp_path):
    log = RunLogger(tmp_path, total_steps=4, tensorboard=False, progress=False)
    for step in (1, 2, 3):
        log.log(step, {"loss": float(step)})
        log.samples(step, [{"completion": f"c{step}"}])
    log.close()
    # killed after step 3; the last checkpoint was step 2
    log = RunLogger(tmp_path, total_steps=4, start_step=2, tensorboard=False, progress=False)
    assert [r["step"] for r in _rows(tmp_path / "metrics.jsonl")] == [1, 2]
    assert [r["completion"] for r in _rows(tmp_path / "samples.jsonl")] == ["c1", "c2"]
    log.log(3, {"loss": 30.0})
    log.close()
    assert [(r["step"], r["loss"]) for r in _rows(tmp_path / "metrics.jsonl")] == [
        (1, 1.0),
        (2, 2.0),
        (3, 30.0),
    ]


@pytest.mark.parametrize("progress", [True, False])
def test_progress_bar_counts_from_the_start_step(tmp_path, progress):
    log = RunLogger(tmp_path, total_steps=5, start_step=2, tensorboard=False, progress=progress)
    assert log.bar.disable is (not progress)
    log.advance()
    if progress:
        assert log.bar.n == 3 and log.bar.total == 5
    log.close()
