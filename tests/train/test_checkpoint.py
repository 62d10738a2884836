"""Checkpoints: atomic checkpoint-N folders, numeric order, keep_last, exact optimizer/scheduler/RNG state."""

import json
import random

import numpy as np
import pytest
import torch

from visual_rft.train.checkpoint import (
    latest_checkpoint,
    list_checkpoints,
    load_trainer_state,
    save_checkpoint,
)


class Saver:
    """Stands in for a model / processor: save_pretrained(path) writes one file into `path`."""

    def __init__(self, name, fail=False):
        self.name, self.fail = name, fail

    def save_pretrained(self, path):
        if self.fail:
            raise RuntimeError("disk full")
        path.mkdir(parents=True, exist_ok=True)
        (path / f"{self.name}.txt").write_text(self.name)


def _training(lr=0.1):
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    return net, opt, sched


def _step(net, opt, sched):
    opt.zero_grad()
    net(torch.ones(4, 3)).pow(2).sum().backward()
    opt.step()
    sched.step()


def _save(run, step, keep_last=2, **kw):
    _, opt, sched = _training()
    return save_checkpoint(
        run, step, Saver("model"), Saver("processor"), opt, sched, keep_last=keep_last, **kw
    )


def test_save_writes_a_complete_folder(tmp_path):
    net, opt, sched = _training()
    _step(net, opt, sched)
    path = save_checkpoint(tmp_path, 7, Saver("model"), Saver("processor"), opt, sched, extra={"epoch": 1})
    assert path == tmp_path / "checkpoint-7"
    assert sorted(p.name for p in path.iterdir()) == ["model", "state.json", "trainer_state.pt"]
    assert sorted(p.name for p in (path / "model").iterdir()) == ["model.txt", "processor.txt"]
    assert json.loads((path / "state.json").read_text()) == {"step": 7, "epoch": 1}
    state = torch.load(path / "trainer_state.pt", weights_only=False)
    assert set(state) == {"optimizer", "scheduler", "precision", "rng"}
    assert {"python", "numpy", "torch"} <= set(state["rng"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-7"]  # no .tmp left


def test_failed_save_leaves_no_checkpoint_and_keeps_the_previous(tmp_path):
    _save(tmp_path, 1)
    _, opt, sched = _training()
    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(tmp_path, 2, Saver("model"), Saver("processor", fail=True), opt, sched)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-1"]
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint-1"


def test_order_is_numeric_and_tmp_and_other_names_are_never_listed(tmp_path):
    for n in (10, 9, 2, 100):
        (tmp_path / f"checkpoint-{n}").mkdir()
    (tmp_path / "checkpoint-11.tmp").mkdir()  # a save killed half-way
    (tmp_path / "checkpoint-x").mkdir()
    (tmp_path / "checkpoint-12.bak").mkdir()
    (tmp_path / "metrics.jsonl").write_text("")
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "checkpoint-2",
        "checkpoint-9",
        "checkpoint-10",
        "checkpoint-100",
    ]
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint-100"


def test_latest_of_a_run_without_checkpoints_is_none(tmp_path):
    assert list_checkpoints(tmp_path) == []
    assert latest_checkpoint(tmp_path) is None
    (tmp_path / "checkpoint-5.tmp").mkdir()
    assert latest_checkpoint(tmp_path) is None
    assert latest_checkpoint(tmp_path / "missing") is None


def test_keep_last_removes_the_oldest_by_number(tmp_path):
    for step in (5, 9, 10):
        _save(tmp_path, step, keep_last=2)
    # numeric order: 9 and 10 are the last two (a string sort would have dropped 10)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-9", "checkpoint-10"]
    _save(tmp_path, 11, keep_last=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-11"]


def test_keep_last_zero_keeps_everything(tmp_path):
    for step in (1, 2, 3):
        _save(tmp_path, step, keep_last=0)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-1", "checkpoint-2", "checkpoint-3"]


def test_saving_the_same_step_again_replaces_it(tmp_path):
    _save(tmp_path, 4, extra={"run": "first"})
    _save(tmp_path, 4, extra={"run": "second"})
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-4"]
    assert json.loads((tmp_path / "checkpoint-4" / "state.json").read_text())["run"] == "second"


def test_load_restores_optimizer_scheduler_and_rng(tmp_path):
    net, opt, sched = _training()
    for _ in range(3):
        _step(net, opt, sched)
    torch.manual_seed(123)
    random.seed(123)
    np.random.seed(123)
    ckpt = save_checkpoint(tmp_path, 3, Saver("model"), Saver("processor"), opt, sched)
    expected = (torch.rand(4), random.random(), np.random.rand())
    lr_after_save = opt.param_groups[0]["lr"]
    assert lr_after_save == pytest.approx(0.1 / 4)  # LambdaLR at step 3: 0.1 / (1 + 3)
    weights = [p.detach().clone() for p in net.parameters()]
    _step(net, opt, sched)
    continued = [p.detach().clone() for p in net.parameters()]

    # a fresh process: same weights, new optimizer and scheduler, other RNG states
    fresh, opt2, sched2 = _training()
    with torch.no_grad():
        for p, w in zip(fresh.parameters(), weights):
            p.copy_(w)
    torch.manual_seed(999)
    random.seed(999)
    np.random.seed(999)
    state = load_trainer_state(ckpt, opt2, sched2)
    assert state == {"step": 3}
    assert torch.equal(torch.rand(4), expected[0])
    assert random.random() == expected[1]
    assert np.random.rand() == expected[2]
    assert sched2.last_epoch == 3 and opt2.param_groups[0]["lr"] == pytest.approx(lr_after_save)
    assert opt2.state_dict()["state"][0]["step"] == 3  # AdamW's moment estimates came back too
    _step(fresh, opt2, sched2)
    for a, b in zip(fresh.parameters(), continued):
        torch.testing.assert_close(a.detach(), b, rtol=0, atol=0)
