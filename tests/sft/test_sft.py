import json
from dataclasses import replace

import pytest
import torch

from visual_rft import rewards
from visual_rft.config import SFTTrainConfig, load_config
from visual_rft.data.answer import answer_text, region_spans
from visual_rft.data.types import Box, GroundingTarget
from visual_rft.models.inputs import encode_prompts
from visual_rft.models.loading import load_model, load_processor
from visual_rft.sft.trainer import SFTTrainer, answer_tokens, check_sft_config


def test_answer_tokens_end_with_the_end_of_turn_and_are_masked(tiny_model_dir):
    tok = load_processor(tiny_model_dir).tokenizer
    end = tok.convert_tokens_to_ids("<|im_end|>")
    ids, mask = answer_tokens(
        ["<answer>red</answer>", "<answer>blue circle</answer>"], tok, end, tok.pad_token_id
    )
    for row, m in zip(ids.tolist(), mask.tolist()):
        n = sum(m)
        assert m == [1] * n + [0] * (len(m) - n) and row[n - 1] == end
    assert tok.decode(ids[0, : int(mask[0].sum()) - 1]) == "<answer>red</answer>"


@pytest.mark.slow
def test_sft_lowers_the_answer_loss_and_teaches_the_format(tiny_model_dir, toy_samples, tmp_path):
    samples = toy_samples[:4]
    cfg = load_config(
        SFTTrainConfig,
        None,
        [
            f"model.path={tiny_model_dir}",
            f"run.output_dir={tmp_path}/sft",
            "run.steps=100",
            "sft.batch_size=4",
            "sft.think=I look at the image.",
            "optim.lr=3e-3",
            "run.tensorboard=false",
            "run.progress=false",
            "run.save_every=0",
        ],
    )
    SFTTrainer(cfg, samples=samples).fit()
    losses = [json.loads(x)["loss"] for x in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] < 0.2 * losses[0], losses
    model_dir = tmp_path / "sft" / "checkpoint-100" / "model"
    model, processor = load_model(model_dir, device="cpu"), load_processor(model_dir)
    inputs, frames = encode_prompts(samples, processor, "resized_pixels")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=60, do_sample=False)
    texts = processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    for s, f, t in zip(samples, frames, texts):
        assert rewards.format_reward(t) == 1.0, t
        assert t == answer_text(s, None if s.task == "classification" else f, "I look at the image."), t


def _sft(tiny_model_dir, tmp_path, **data):
    return load_config(
        SFTTrainConfig,
        None,
        [
            f"model.path={tiny_model_dir}",
            f"run.output_dir={tmp_path / 'run'}",
            "sft.batch_size=2",
            "run.steps=1",
            "run.progress=false",
            "run.tensorboard=false",
            *(f"data.{k}={v}" for k, v in data.items()),
        ],
    )


def test_a_non_finite_loss_skips_the_update_and_says_so(tiny_model_dir, toy_samples, tmp_path, monkeypatch):
    """Fault injection: one log-probability is -inf (the loss is inf) while every gradient stays finite."""
    import visual_rft.sft.trainer as sft_trainer

    real = sft_trainer.completion_logprobs

    def with_an_impossible_token(model, rollout, **kwargs):
        logp = real(model, rollout, **kwargs)  # [b, T]
        return logp + torch.zeros_like(logp).index_fill_(1, torch.tensor([0]), float("-inf")).detach()

    monkeypatch.setattr(sft_trainer, "completion_logprobs", with_an_impossible_token)
    trainer = SFTTrainer(_sft(tiny_model_dir, tmp_path), samples=toy_samples[:2])
    before = [p.detach().clone() for p in trainer.params]
    result = trainer.step(0)
    assert result.metrics["loss"] == float("inf") and result.metrics["skipped"] == 1
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.params))


def test_bad_training_data_fails_before_the_model_loads(tiny_model_dir, toy_samples, tmp_path, monkeypatch):
    """Every bad record is named (file:line: field) and no model is loaded for a run that cannot train."""
    import visual_rft.train.base as base
    from visual_rft.data.jsonl import DataError, write_samples

    samples = list(toy_samples[:3])
    samples[0].images = [str(tmp_path / "missing.png")]
    samples[2].images = [str(tmp_path / "also-missing.png")]
    data = tmp_path / "train.jsonl"
    write_samples(data, samples)
    loads = []
    monkeypatch.setattr(base, "load_model", lambda *a, **k: loads.append(a))
    with pytest.raises(DataError) as err:
        SFTTrainer(_sft(tiny_model_dir, tmp_path, train=data))
    message = str(err.value)
    assert "2 bad record(s)" in message
    assert f"{data}:1: field 'images[0]': image not found" in message
    assert f"{data}:3: field 'images[0]'" in message
    assert loads == []
    with pytest.raises(DataError, match=r"sample 0 \(c0\): field 'images\[0\]'"):  # samples given directly
        SFTTrainer(_sft(tiny_model_dir, tmp_path), samples=samples)
    assert loads == []


def test_a_missing_model_folder_is_named_before_the_data_is_read(toy_samples, tmp_path, monkeypatch):
    import visual_rft.train.base as base

    reads = []
    monkeypatch.setattr(base, "load_training_samples", lambda *a: reads.append(a))
    with pytest.raises(FileNotFoundError, match=r"model.path: .*no-model: not a local model folder"):
        SFTTrainer(_sft(tmp_path / "no-model", tmp_path), samples=toy_samples)
    assert reads == []


@pytest.mark.parametrize("micro", [0, 1])
def test_sequence_aggregation_gives_each_answer_the_same_weight(tiny_model_dir, toy_samples, tmp_path, micro):
    """A short class name and a long detection answer count alike: mean over answers of each one's mean NLL."""
    from visual_rft.models.forward import completion_logprobs

    batch = [toy_samples[0], toy_samples[3]]  # classification, detection: answers of very different lengths
    cfg = _sft(tiny_model_dir, tmp_path)
    cfg.sft.aggregation, cfg.sft.micro_batch_size, cfg.optim.lr, cfg.data.shuffle = (
        "sequence",
        micro,
        0.0,
        False,
    )
    trainer = SFTTrainer(cfg, samples=batch)
    rollout, _ = trainer.batch(batch)
    with torch.no_grad():
        logp = completion_logprobs(trainer.model, rollout)  # [2, T]
    mask = rollout.completion_mask
    lengths = mask.sum(1)
    assert lengths[1] > 3 * lengths[0]
    per_answer = -(logp * mask).sum(1) / lengths  # [2]
    assert trainer.step(0).metrics["loss"] == pytest.approx(float(per_answer.mean()), rel=1e-5)
    cfg.sft.aggregation = "token"
    by_token = float(-(logp * mask).sum() / lengths.sum())
    assert SFTTrainer(cfg, samples=batch).step(0).metrics["loss"] == pytest.approx(by_token, rel=1e-5)


def test_grounding_and_detection_samples_get_their_own_think(
    tiny_model_dir, toy_samples, tmp_path, monkeypatch
):
    """`sft.grounding_think` and `sft.detection_think` (with `{region}`) write those answers' think; the others
    keep `sft.think`. `{region}` in `sft.think` fails before the model loads: a class name has no box to place."""
    import visual_rft.train.base as base

    c, d = toy_samples[0], toy_samples[3]  # classification, detection
    g = replace(
        c, id="g", task="grounding", problem="Find the circle.", target=GroundingTarget(Box(70, 2, 110, 30))
    )
    cfg = _sft(tiny_model_dir, tmp_path)
    thinks = dict(think="I look.", grounding_think="It is at the {region}.", detection_think="At: {region}.")
    cfg = replace(cfg, sft=replace(cfg.sft, **thinks))
    _, texts = SFTTrainer(cfg, samples=[c, g, d]).batch([c, g, d])
    assert texts[0] == "<think>I look.</think><answer>red</answer>"
    assert texts[1].startswith("<think>It is at the top right.</think><answer>(")
    assert texts[2].startswith("<think>At: ") and len(region_spans(texts[2])) == len(d.target.boxes) > 0
    loads = []
    monkeypatch.setattr(base, "load_model", lambda *a, **k: loads.append(a))
    with pytest.raises(
        ValueError, match=r"sft.think: \{region\} .* sft.grounding_think or sft.detection_think"
    ):
        SFTTrainer(replace(cfg, sft=replace(cfg.sft, think="{region}")), samples=[c, g])
    assert loads == []


def test_short_prompt_steps_ask_the_question_alone_and_teach_the_same_answer(
    tiny_model_dir, toy_samples, tmp_path, monkeypatch
):
    """`sft.short_prompts` of the steps, spread evenly, encode the questions without the instructions: shorter
    prompts, the same answer tokens; the log says which steps were short. A share outside [0, 1] fails before
    the model loads."""
    import visual_rft.train.base as base

    batch = [toy_samples[0], toy_samples[3]]  # classification, detection
    cfg = _sft(tiny_model_dir, tmp_path)
    cfg = replace(cfg, sft=replace(cfg.sft, short_prompts=0.8), data=replace(cfg.data, shuffle=False))
    trainer = SFTTrainer(cfg, samples=batch)
    shorts = [trainer.short_step(i) for i in range(100)]
    assert sum(shorts) == 80 and shorts[:10] == [False, True, True, True, True] * 2
    tok = trainer.processor.tokenizer
    full, full_texts = trainer.batch(batch)
    short, short_texts = trainer.batch(batch, short=True)
    assert short_texts == full_texts and torch.equal(short.completion_ids, full.completion_ids)
    n_full, n_short = full.prompt_mask.sum(1), short.prompt_mask.sum(1)  # [2]
    assert (n_short < n_full - 20).all()
    text = tok.decode(short.prompt_ids[1, -int(n_short[1]) :])
    assert batch[1].problem in text and "Confidence" not in text and "<think>" not in text
    assert "Confidence" in tok.decode(full.prompt_ids[1])
    assert [trainer.step(i).metrics["short_prompts"] for i in range(2)] == [0, 1]
    every = SFTTrainer(replace(cfg, sft=replace(cfg.sft, short_prompts=1.0)), samples=batch)
    assert all(every.short_step(i) for i in range(50))
    loads = []
    monkeypatch.setattr(base, "load_model", lambda *a, **k: loads.append(a))
    with pytest.raises(ValueError, match=r"sft.short_prompts: 1.5 is not a share"):
        SFTTrainer(replace(cfg, sft=replace(cfg.sft, short_prompts=1.5)), samples=batch)
    assert loads == []


def test_short_steps_can_keep_the_full_prompts_positions(tiny_model_dir, toy_samples, tmp_path):
    """With `sft.short_keeps_positions` a short prompt is the full one with the instructions' tokens cut out and
    every other token, the answer's too, at the RoPE position it has in the full prompt."""
    batch = [toy_samples[0], toy_samples[3]]  # classification, detection: instructions of different lengths
    cfg = _sft(tiny_model_dir, tmp_path)
    cfg = replace(cfg, sft=replace(cfg.sft, short_prompts=1.0, short_keeps_positions=True))
    trainer = SFTTrainer(cfg, samples=batch)
    full, _ = trainer.batch(batch)
    short, _ = trainer.batch(batch, short=True)
    assert torch.equal(short.next_position, full.next_position)
    tail = len(trainer.processor.tokenizer("<|im_end|>\n<|im_start|>assistant\n")["input_ids"])
    cut = []
    for b in range(2):
        n_full, n_short = int(full.prompt_mask[b].sum()), int(short.prompt_mask[b].sum())
        ids, pos = full.prompt_ids[b, -n_full:], full.prompt_positions[:, b, -n_full:]  # [n], [3, n]
        kept = [i for i in range(n_full) if i < n_short - tail or i >= n_full - tail]
        assert torch.equal(ids[kept], short.prompt_ids[b, -n_short:])
        assert torch.equal(pos[:, kept], short.prompt_positions[:, b, -n_short:])
        cut.append(n_full - n_short)
    assert cut[0] != cut[1] and min(cut) > 20
    plain = SFTTrainer(replace(cfg, sft=replace(cfg.sft, short_keeps_positions=False)), samples=batch)
    moved = plain.batch(batch, short=True)[0]
    assert (full.next_position - moved.next_position).tolist() == cut  # without it the answer moves up


def test_position_jitter_moves_each_samples_text_after_the_image_by_its_own_draw(
    tiny_model_dir, toy_samples, tmp_path
):
    """`sft.position_jitter`: per sample and step, the prompt after the image and the answer move 0..N
    positions further on (the image and its end marker stay); a sample's draw is a function of the step and its
    index in the global batch, whatever the micro-batches, and `step` trains on it."""
    batch = [toy_samples[0], toy_samples[3]]
    cfg = _sft(tiny_model_dir, tmp_path)
    cfg = replace(cfg, sft=replace(cfg.sft, batch_size=2, position_jitter=40))
    trainer = SFTTrainer(cfg, samples=batch)
    draws = trainer.jitter(7, 0, 2)
    assert all(0 <= d <= 40 for d in draws) and len({tuple(trainer.jitter(s, 0, 2)) for s in range(20)}) > 1
    assert [*trainer.jitter(7, 0, 1), *trainer.jitter(7, 1, 1)] == draws  # micro-batches of one: the same
    assert (
        SFTTrainer(replace(cfg, sft=replace(cfg.sft, position_jitter=0)), samples=batch).jitter(7, 0, 2)
        is None
    )
    plain, _ = trainer.batch(batch)
    moved, _ = trainer.batch(batch, jitter=draws)
    assert (moved.next_position - plain.next_position).tolist() == draws  # the answer moves with it
    tok = trainer.processor.tokenizer
    kept = (plain.prompt_ids == tok.convert_tokens_to_ids("<|image_pad|>")) | (
        plain.prompt_ids == tok.convert_tokens_to_ids("<|vision_end|>")
    )  # [B, L]
    for b in range(2):
        assert torch.equal(moved.prompt_positions[:, b, kept[b]], plain.prompt_positions[:, b, kept[b]])
        assert (moved.prompt_positions[:, b, -1] - plain.prompt_positions[:, b, -1] == draws[b]).all()
    assert torch.equal(moved.completion_ids, plain.completion_ids)
    seen = []
    real_batch = trainer.batch
    trainer.batch = lambda part, short=False, jitter=None: (
        seen.append(jitter) or real_batch(part, short, jitter)
    )
    trainer.step(7)
    assert seen == [draws]


@pytest.mark.parametrize(
    "override, message",
    [
        ("sft.batch_size=0", r"sft.batch_size must be >= 1, got 0"),
        ("sft.position_jitter=-1", r"sft.position_jitter must be >= 0, got -1"),
        ("sft.micro_batch_size=-4", r"sft.micro_batch_size must be >= 0, got -4"),
        ("sft.aggregation=mean", r"sft.aggregation must be token or sequence"),
        ("optim.schedule=cosin", r"optim.schedule must be one of"),  # the shared sections too
    ],
)
def test_a_bad_sft_setting_is_refused_by_name_before_anything_loads(override, message):
    check_sft_config(SFTTrainConfig())
    with pytest.raises(ValueError, match=message):
        check_sft_config(load_config(SFTTrainConfig, None, [override]))
