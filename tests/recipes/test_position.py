"""recipes/position.py: a cross-fitted ridge probe's error as a loss, and the SFT stage that adds it."""

import json
import math

import pytest
import torch

from visual_rft.config import DataConfig, ModelConfig, OptimConfig, RunConfig, SFTConfig, SFTTrainConfig
from visual_rft.data.jsonl import read_samples
from visual_rft.recipes.binding import BindingConfig, BindingSFTTrainer
from visual_rft.recipes.position import crossfit_error, position_loss, ridge_readout
from visual_rft.world import build


def test_ridge_readout_recovers_a_linear_map_and_its_offset():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 8, generator=g)  # [n, H]
    a, b = torch.randn(8, 3, generator=g), torch.tensor([5.0, -2.0, 0.5])
    y = x @ a + b  # [n, 3]
    new = torch.randn(10, 8, generator=g)
    torch.testing.assert_close(ridge_readout(x, y, new), new @ a + b, atol=0.05, rtol=0.02)


def test_crossfit_error_is_small_for_a_readable_target_and_the_variance_for_noise():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(400, 16, generator=g)  # [n, H]
    fold = torch.arange(400) % 2 == 0
    readable = x[:, :2] * 3.0  # [n, 2] variance 9
    noise = torch.randn(400, 2, generator=g) * 3.0  # [n, 2] variance 9, unrelated to x
    assert crossfit_error(x, readable, fold) < 0.1
    assert 7.0 < crossfit_error(x, noise, fold) < 12.0  # no better than the mean: held out, not fitted


def test_crossfit_error_needs_more_rows_than_targets_in_each_fold():
    x, y = torch.randn(6, 4), torch.randn(6, 4)
    assert crossfit_error(x, y, torch.tensor([True] * 5 + [False])) is None


def test_position_loss_reads_cells_and_boxes_and_its_gradient_reaches_the_tokens():
    """Two queries of 12 tokens whose residuals hold their column and row linearly (and a little noise): the
    cell is read; the box, the same for every token of an object, is read from the tokens that hold it."""
    g = torch.Generator().manual_seed(2)
    tokens, cells, boxes = [], [], []
    for q in range(4):
        col, row = torch.arange(12) % 4, torch.arange(12) // 4  # a 3 x 4 grid
        cell = torch.stack([col, row], 1).float()  # [12, 2]
        box = torch.full((12, 4), math.nan)
        box[:6] = torch.tensor([0.5, 0.2, 2.0 + q, 1.4])  # the object of the first 6 cells
        x = torch.cat(
            [cell, torch.nan_to_num(box, 0.0), torch.randn(12, 4, generator=g) * 0.01], 1
        )  # [12, 10]
        tokens.append(x.requires_grad_())
        cells.append(cell)
        boxes.append(box)
    loss, metrics = position_loss(tokens, cells, boxes)
    assert float(loss) < 0.05 and metrics["position/cell_rmse"] < 0.1 and metrics["position/box_rmse"] < 0.2
    loss.backward()
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in tokens)
    shuffled = [c[torch.randperm(12, generator=g)] for c in cells]  # cells no longer where the tokens say
    worse, _ = position_loss([t.detach() for t in tokens], shuffled, boxes)
    assert float(worse) > 10 * float(loss)


def test_one_query_gives_no_loss():
    assert position_loss([torch.randn(5, 3)], [torch.zeros(5, 2)], [torch.zeros(5, 4)]) == (None, {})


def _position_cfg(tiny_model_dir, tmp_path, steps, name="run"):
    return SFTTrainConfig(
        model=ModelConfig(path=str(tiny_model_dir), freeze_vision=True),
        optim=OptimConfig(lr=3e-3, warmup_steps=0, schedule="constant"),
        sft=SFTConfig(batch_size=8, think="x", aggregation="sequence"),
        data=DataConfig(),
        run=RunConfig(steps=steps, output_dir=str(tmp_path / name), save_every=0, progress=False),
    )


@pytest.mark.parametrize("layer", [0, 2])
def test_a_position_layer_the_model_lacks_is_refused(tiny_model_dir, tmp_path, layer):
    pair = build("grounding", tmp_path / "w", 2, seed=3, categories=["pair"], name="pair")
    binding = BindingConfig(position_weight=1.0, position_layer=layer)  # the 1m model: 2 layers
    with pytest.raises(ValueError, match=rf"binding.position_layer: {layer} is not a layer 1..1"):
        BindingSFTTrainer(_position_cfg(tiny_model_dir, tmp_path, 1), binding, samples=read_samples(pair))


def test_samples_without_a_scene_are_left_out_of_the_position_loss(tiny_model_dir, tmp_path):
    """A classification sample lists no objects: it trains on its answer only, beside grounding samples."""
    cls = read_samples(build("classification", tmp_path / "w", 4, seed=3, name="cls"))
    pair = read_samples(build("grounding", tmp_path / "w", 4, seed=3, categories=["pair"], name="pair"))
    cfg = _position_cfg(tiny_model_dir, tmp_path, 2)
    binding = BindingConfig(position_weight=1.0, position_layer=1)
    BindingSFTTrainer(cfg, binding, samples=[cls[0], *pair[:3], *cls[1:], pair[3]]).fit()
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(math.isfinite(r["position/cell_rmse"]) for r in rows)


@pytest.mark.slow
def test_the_position_loss_writes_each_tokens_cell_into_the_residual_stream(tiny_model_dir, tmp_path):
    """From a fresh language model the cell is not readable entering layer 1 (RoPE carries no absolute
    position into a value); 40 steps of the position loss alone make it so."""
    pair = build("grounding", tmp_path / "w", 16, seed=3, categories=["pair"], name="pair")
    cfg = _position_cfg(tiny_model_dir, tmp_path, 40)
    BindingSFTTrainer(
        cfg, BindingConfig(position_weight=1.0, position_layer=1), samples=read_samples(pair)
    ).fit()
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    first = sum(r["position/cell_rmse"] for r in rows[:3]) / 3
    last = sum(r["position/cell_rmse"] for r in rows[-3:]) / 3
    assert first > 0.8  # no better than the grid's mean (the fold's ridge fit on 4 queries overfits)
    assert last < first / 2
    assert all(
        math.isfinite(r["loss"]) and r["skipped"] == 0 and "binding/selectivity" not in r for r in rows
    )
