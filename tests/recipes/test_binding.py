"""recipes/binding.py: the held share of attention on the asked object, and the SFT stage that adds it."""

import json
import math

import numpy as np
import pytest
import torch
import yaml

from visual_rft.config import DataConfig, ModelConfig, OptimConfig, RunConfig, SFTConfig, SFTTrainConfig
from visual_rft.data.answer import answer_text
from visual_rft.data.jsonl import read_samples
from visual_rft.models.attention import HELD_EAGER
from visual_rft.models.loading import load_processor
from visual_rft.recipes.answer_reads import answer_start, asked_instances, asked_objects, box_ends
from visual_rft.recipes.binding import BindingConfig, BindingSFTTrainer, decisions, selectivity_loss
from visual_rft.world import build


def test_selectivity_loss_against_hand_computed_values():
    attn = torch.tensor(
        [[[[0.4, 0.1, 0.3, 0.2], [0.1, 0.2, 0.5, 0.2]]]]
    )  # [1 layer, 1 head, 2 queries, 4 cells]
    owners = torch.tensor([0, 1, -1, 1])  # object 0 owns cell 0, object 1 cells 1 and 3
    loss, sel, chance = selectivity_loss(attn, owners, targets=torch.tensor([0, 1]))
    s0, s1 = 0.4 / (0.4 + 0.1 + 0.2), (0.2 + 0.2) / (0.1 + 0.2 + 0.2)  # background (cell 2) is left out
    assert loss.item() == pytest.approx(-(math.log(s0) + math.log(s1)) / 2, rel=1e-6)
    assert sel.item() == pytest.approx((s0 + s1) / 2, rel=1e-6)
    assert chance.item() == pytest.approx((1 / 3 + 2 / 3) / 2, rel=1e-6)


def test_a_query_whose_scene_has_no_other_object_or_whose_object_owns_no_cell_does_not_count():
    attn = torch.rand(2, 3, 2, 4, requires_grad=True)  # [l, h, Q, N]
    loss, sel, chance = selectivity_loss(attn, torch.tensor([0, 0, -1, -1]), torch.tensor([0, 1]))
    assert (
        loss.item() == 0 and chance.item() == 0
    )  # query 0: no other object; query 1: its object owns no cell
    loss.backward()  # still part of the graph, with no gradient
    assert torch.equal(attn.grad, torch.zeros_like(attn))


def test_only_the_split_among_objects_is_held_not_the_attention_on_background():
    owners, targets = torch.tensor([0, 1, -1]), torch.tensor([0])
    looks_at_background = torch.tensor([[[[0.08, 0.02, 0.9]]]])
    looks_at_objects = torch.tensor([[[[0.8, 0.2, 0.0]]]])
    a, _, _ = selectivity_loss(looks_at_background, owners, targets)
    b, _, _ = selectivity_loss(looks_at_objects, owners, targets)
    assert a.item() == pytest.approx(b.item())  # both give the asked object 80% of what goes to objects


def test_the_pick_weight_adds_the_first_digits_binding_loss(tiny_model_dir, tmp_path):
    samples = read_samples(build("grounding", tmp_path / "w", 4, seed=3, categories=["pair"], name="pair"))

    def loss_and_metrics(weight, pick_weight):
        cfg = SFTTrainConfig(
            model=ModelConfig(path=str(tiny_model_dir), attn_implementation=HELD_EAGER),
            sft=SFTConfig(batch_size=4, think="x"),
            run=RunConfig(steps=1, output_dir=str(tmp_path / f"r{weight}-{pick_weight}"), progress=False),
        )
        trainer = BindingSFTTrainer(
            cfg, BindingConfig(weight=weight, pick_weight=pick_weight), samples=samples
        )
        rollout, texts = trainer.batch(samples)
        with torch.no_grad():
            trainer.policy_pass(rollout)
            loss = trainer.binding_loss(rollout, samples, texts)
        return loss.item(), trainer.auxiliary_metrics()

    everywhere, m = loss_and_metrics(1.0, 0.0)  # mean over the samples of -log(selectivity) at every digit
    both, m2 = loss_and_metrics(1.0, 1.0)  # ... plus the same at each box's first digit only
    first = both - everywhere
    assert first > 0 and m2 == {**m, "binding/loss": both}
    assert (
        0 < m["binding/first_selectivity"] < 1 and m["binding/first_selectivity"] != m["binding/selectivity"]
    )
    weighted, _ = loss_and_metrics(2.0, 3.0)
    assert weighted == pytest.approx(2 * everywhere + 3 * first, rel=1e-5)
    alone, _ = loss_and_metrics(0.0, 1.0)  # the first digits' loss alone still reads the heads
    assert alone == pytest.approx(first, rel=1e-5)


def test_the_binding_loss_holds_only_the_kinds_it_is_given(tiny_model_dir, tmp_path):
    """binding.kinds: a sample of another kind adds nothing (its answer still trains on the NLL), so the losses of
    a batch's kinds, held apart, add up to the loss over every kind."""
    samples = read_samples(
        build("grounding", tmp_path / "w", 6, seed=3, categories=["pair", "name"], name="mix")
    )
    assert {s.meta["kind"] for s in samples} == {"pair", "name"}

    def loss_and_share(kinds):
        cfg = SFTTrainConfig(
            model=ModelConfig(path=str(tiny_model_dir), attn_implementation=HELD_EAGER),
            sft=SFTConfig(batch_size=6, think="x"),
            run=RunConfig(steps=1, output_dir=str(tmp_path / ("r" + "-".join(kinds))), progress=False),
        )
        trainer = BindingSFTTrainer(cfg, BindingConfig(weight=1.0, kinds=kinds), samples=samples)
        rollout, texts = trainer.batch(samples)
        with torch.no_grad():
            trainer.policy_pass(rollout)
            loss = trainer.binding_loss(rollout, samples, texts)
        return (None if loss is None else loss.item()), trainer.auxiliary_metrics()["binding/share"]

    every, share = loss_and_share([])
    pair, pair_share = loss_and_share(["pair"])
    name, name_share = loss_and_share(["name"])
    assert pair > 0 and name > 0 and every == pytest.approx(pair + name, rel=1e-5)
    assert 0 < pair_share < share and pair_share + name_share == pytest.approx(share)
    assert loss_and_share(["extreme"]) == (None, 0.0)


def _binding_run(tiny_model_dir, tmp_path, weight, steps=30):
    pair = build("grounding", tmp_path / "w", 16, seed=3, categories=["pair"], name="pair")
    cfg = SFTTrainConfig(
        model=ModelConfig(path=str(tiny_model_dir), attn_implementation=HELD_EAGER, freeze_vision=True),
        optim=OptimConfig(lr=3e-3, warmup_steps=0, schedule="constant"),
        sft=SFTConfig(batch_size=8, think="x", aggregation="sequence"),
        data=DataConfig(),
        run=RunConfig(steps=steps, output_dir=str(tmp_path / f"run{weight}"), save_every=0, progress=False),
    )
    BindingSFTTrainer(cfg, BindingConfig(weight=weight), samples=read_samples(pair)).fit()
    return [json.loads(r) for r in (tmp_path / f"run{weight}" / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_the_binding_loss_moves_the_held_heads_onto_the_asked_object(tiny_model_dir, tmp_path):
    rows = _binding_run(tiny_model_dir, tmp_path, weight=1.0)
    first = sum(r["binding/selectivity"] for r in rows[:5]) / 5
    last = sum(r["binding/selectivity"] for r in rows[-5:]) / 5
    chance = sum(r["binding/chance"] for r in rows) / len(rows)
    assert abs(first - chance) < 0.1  # a fresh model splits its attention among the objects
    assert last > chance + 0.25 and last > first + 0.2
    assert all(math.isfinite(r["loss"]) and r["skipped"] == 0 for r in rows)
    assert yaml.safe_load((tmp_path / "run1.0" / "binding.yaml").read_text())["weight"] == 1.0


def test_binding_needs_eager_attention_and_says_so_before_loading(tmp_path):
    cfg = SFTTrainConfig(model=ModelConfig(path=str(tmp_path / "nowhere"), attn_implementation="sdpa"))
    with pytest.raises(ValueError, match=f"attn_implementation={HELD_EAGER} .* or eager"):
        BindingSFTTrainer(cfg, BindingConfig(weight=1.0), samples=[])
    with pytest.raises(ValueError, match="continue_weight > 0"):  # any of the losses that read the weights
        BindingSFTTrainer(cfg, BindingConfig(continue_weight=1.0), samples=[])


@pytest.mark.parametrize("field, value", [("layers", [-1, 4]), ("heads", [0, 4])])
def test_layers_and_heads_the_model_lacks_are_refused(tiny_model_dir, tmp_path, field, value):
    cfg = SFTTrainConfig(
        model=ModelConfig(path=str(tiny_model_dir), attn_implementation="eager"),
        run=RunConfig(output_dir=str(tmp_path / "run")),
    )
    pair = build("grounding", tmp_path / "w", 2, seed=3, categories=["pair"], name="pair")
    binding = BindingConfig(weight=1.0, **{field: value})  # the 1m model: 2 layers of 4 heads
    with pytest.raises(ValueError, match=rf"binding.{field}: \[4\]"):
        BindingSFTTrainer(cfg, binding, samples=read_samples(pair))


def _presence_pass(tiny_model_dir, tmp_path, samples, binding):
    cfg = SFTTrainConfig(
        model=ModelConfig(path=str(tiny_model_dir), attn_implementation=HELD_EAGER),
        sft=SFTConfig(batch_size=len(samples), think="x"),
        run=RunConfig(steps=1, output_dir=str(tmp_path / "r"), progress=False),
    )
    trainer = BindingSFTTrainer(cfg, binding, samples=samples)
    rollout, texts = trainer.batch(samples)
    with torch.no_grad():
        trainer.policy_pass(rollout)
        return trainer, rollout, texts


def test_the_presence_loss_is_the_held_share_on_the_category_where_the_answer_starts(
    tiny_model_dir, tmp_path
):
    """By hand from the recorded weights: at the position predicting the answer's first token, the held heads'
    share of object attention on the asked category's instances (one owner), -log, averaged over the present
    questions among other objects, times the weight, as a mean over the batch."""
    samples = read_samples(build("detection", tmp_path / "w", 8, seed=4))
    trainer, rollout, texts = _presence_pass(
        tiny_model_dir, tmp_path, samples, BindingConfig(presence_weight=2.0)
    )
    assert trainer.binding_loss(rollout, samples, texts) is None  # the digits' loss is off
    with torch.no_grad():
        loss = trainer.decision_loss(rollout, samples, texts)
    L, tok, expected, counted = rollout.prompt_ids.shape[1], trainer.processor.tokenizer, [], 0
    for r, (sample, text) in enumerate(zip(samples, texts)):
        instances = asked_instances(sample)
        image, owners, _ = trainer.cells(rollout, r, sample)
        on = np.isin(owners, instances)  # [N] the category's cells
        if not on.any() or not ((owners >= 0) & ~on).any():
            continue  # absent, or nothing else to look at
        q = L + answer_start(text, tok) - 1
        a = torch.stack(
            [trainer.recorder.weights[i][r][:, q, image] for i in trainer.recorder.layers]
        )  # [l, h, N]
        share = a[..., torch.from_numpy(on)].sum(-1) / a[..., torch.from_numpy(owners >= 0)].sum(-1)  # [l, h]
        expected.append(-torch.log(share).mean().item())
        counted += 1
    assert 0 < counted < len(samples)  # some questions are absent or alone with their category
    assert loss.item() == pytest.approx(2.0 * sum(expected) / len(samples), rel=1e-5)
    metrics = trainer.auxiliary_metrics()
    assert metrics["presence/share"] == counted / len(samples) and 0 < metrics["presence/chance"] < 1


def test_presence_questions_whose_category_is_absent_train_on_the_nll_alone(tiny_model_dir, tmp_path):
    samples = [s for s in read_samples(build("detection", tmp_path / "w", 12, seed=4)) if not s.target.boxes]
    assert samples
    trainer, rollout, texts = _presence_pass(
        tiny_model_dir, tmp_path, samples, BindingConfig(presence_weight=1.0)
    )
    assert trainer.decision_loss(rollout, samples, texts) is None
    assert trainer.auxiliary_metrics()["presence/share"] == 0
    off, rollout, texts = _presence_pass(tiny_model_dir, tmp_path, samples, BindingConfig(weight=1.0))
    assert off.decision_loss(rollout, samples, texts) is None  # presence_weight 0: off


def test_the_decisions_are_the_answers_start_and_each_boxs_close_with_what_is_left_to_write(
    tiny_model_dir, tmp_path
):
    tok = load_processor(tiny_model_dir).tokenizer
    samples = read_samples(build("detection", tmp_path / "w", 16, seed=4))
    three = next(s for s in samples if len(s.target.boxes) == 3)
    text = answer_text(three, frame=None, think="x")
    written, start, ends = asked_objects(three), answer_start(text, tok), box_ends(text, tok)
    both = decisions(three, text, tok, BindingConfig(presence_weight=2.0, continue_weight=3.0))
    assert (
        both
        == [
            ("presence", 2.0, start, asked_instances(three)),
            ("continue", 3.0, ends[0], written[1:]),  # after the first box: the two not written yet
            ("continue", 3.0, ends[1], written[2:]),  # after the second: the last one, then nothing
        ]
    )
    assert decisions(three, text, tok, BindingConfig(weight=1.0)) == []  # both weights 0: off
    absent = next(s for s in samples if not s.target.boxes)
    assert (
        decisions(
            absent, answer_text(absent, frame=None, think="x"), tok, BindingConfig(1, continue_weight=1)
        )
        == []
    )


def test_the_continue_loss_is_the_held_share_on_the_instances_left_where_each_box_closes(
    tiny_model_dir, tmp_path
):
    """By hand from the recorded weights: at the position predicting each box's closing token but the last, the
    held heads' share of object attention on the asked instances not written yet (one owner), -log, summed over
    those positions, times the weight, over the batch's samples."""
    samples = read_samples(build("detection", tmp_path / "w", 12, seed=4))
    trainer, rollout, texts = _presence_pass(
        tiny_model_dir, tmp_path, samples, BindingConfig(continue_weight=3.0)
    )
    with torch.no_grad():
        loss = trainer.decision_loss(rollout, samples, texts)
    L, tok, expected = rollout.prompt_ids.shape[1], trainer.processor.tokenizer, []
    for r, (sample, text) in enumerate(zip(samples, texts)):
        written = asked_objects(sample)
        image, owners, _ = trainer.cells(rollout, r, sample)
        for j, t in enumerate(box_ends(text, tok)):
            left = np.isin(owners, written[j + 1 :])  # [N] the cells of the instances still to write
            if not left.any() or not ((owners >= 0) & ~left).any():
                continue
            a = torch.stack(
                [trainer.recorder.weights[i][r][:, L + t - 1, image] for i in trainer.recorder.layers]
            )  # [l, h, N]
            share = a[..., torch.from_numpy(left)].sum(-1) / a[..., torch.from_numpy(owners >= 0)].sum(
                -1
            )  # [l, h]
            expected.append(-torch.log(share).mean().item())
    assert expected  # some answers list several instances
    assert loss.item() == pytest.approx(3.0 * sum(expected) / len(samples), rel=1e-5)
    metrics = trainer.auxiliary_metrics()
    assert metrics["continue/share"] == len(expected) / len(samples) and "presence/share" not in metrics
