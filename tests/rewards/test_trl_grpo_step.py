"""Our rewards inside TRL's GRPOTrainer (trl 1.16): one real training step on the tiny model.

The adapter (`visual_rft.rewards.trl_rewards`) is handed to `trl.GRPOTrainer` as `reward_funcs`, with our
samples as TRL's dataset (`bench/trl_setup.py`: conversational prompt with an image, `image`, `solution`).
TRL samples, decodes, calls our rewards with its own keyword arguments, logs them and takes an optimizer
step. We check what TRL logged against our rewards called directly on the completions TRL logged.
"""

import math

import pytest
import torch

pytest.importorskip("trl")
pytest.importorskip("datasets")

from trl import GRPOTrainer  # noqa: E402

from visual_rft import rewards  # noqa: E402
from visual_rft.data.answer import answer_text  # noqa: E402
from visual_rft.models.inputs import frames_for, open_images  # noqa: E402
from visual_rft.models.loading import load_model, load_processor  # noqa: E402
from visual_rft.rewards.trl import completion_text  # noqa: E402

G = 4


@pytest.fixture(scope="module")
def trl_setup(load_bench):
    return load_bench("trl_setup")


def train_one_step(trl_setup, model_dir, samples, task, out_dir, rollout_func=None):
    processor = load_processor(model_dir)
    model = load_model(model_dir, device="cpu")
    funcs, weights = rewards.trl_rewards(rewards.task_defaults(task))
    args = trl_setup.grpo_config(
        out_dir,
        prompts=len(samples),
        group_size=G,
        max_completion_length=12,
        beta=0.04,
        reward_weights=weights,
        learning_rate=1e-3,
    )
    dataset = trl_setup.trl_dataset(samples, processor, "resized_pixels")
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=funcs,
        args=args,
        train_dataset=dataset,
        processing_class=processor,
        rollout_func=rollout_func,
    )
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train()
    moved = any(not torch.equal(before[n], p) for n, p in model.named_parameters())
    return trainer, [f.__name__ for f in funcs], dataset["solution"], moved


def check_logs(trainer, names, solutions):
    """TRL's log has each of our rewards under its name, in range, equal to our reward on TRL's completions."""
    (log,) = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert math.isfinite(log["loss"]) and trainer.state.global_step == 1
    completions = list(trainer._logs["completion"])  # rows ordered prompt-major (shuffle_dataset=False)
    assert len(completions) == G * len(solutions)
    per_row = {}
    for name in names:
        assert 0.0 <= log[f"rewards/{name}/mean"] <= 1.0
        logged = list(trainer._logs["rewards"][name])
        ours = [
            float(rewards.get(name)(completion_text(c), solutions[i // G])) for i, c in enumerate(completions)
        ]
        assert logged == pytest.approx(ours, abs=1e-6)
        assert log[f"rewards/{name}/mean"] == pytest.approx(sum(ours) / len(ours), abs=1e-6)
        per_row[name] = ours
    for name in names:
        if rewards.answer_kind(name) is not None:  # our adapter reports parse failures through log_metric
            assert 0.0 <= log[f"rewards/{name}/parse_fail"] <= 1.0
    return completions, per_row


def test_sampled_step_logs_our_rewards(trl_setup, tiny_model_dir, toy_samples, tmp_path):
    samples = [s for s in toy_samples if s.task == "classification"][:2]
    trainer, names, solutions, moved = train_one_step(
        trl_setup, tiny_model_dir, samples, "classification", tmp_path
    )
    assert names == ["cls", "format"]
    check_logs(trainer, names, solutions)


def test_fixed_answers_get_our_exact_rewards(trl_setup, tiny_model_dir, toy_samples, tmp_path):
    """Detection through TRL with known completions (TRL's rollout_func hook): perfect, boxless, wrong, no tags."""
    samples = [s for s in toy_samples if s.task == "detection"][:2]
    processor = load_processor(tiny_model_dir)
    tok = processor.tokenizer
    frames = frames_for([open_images(s) for s in samples], "resized_pixels", processor)
    texts = []
    for s, f in zip(samples, frames):
        perfect = answer_text(s, f, think="one circle")
        texts += [
            perfect,
            "<think>none</think><answer>No Objects</answer>",
            "<think>x</think><answer>[{'Position': [0, 0, 3, 3], 'Confidence': 0.5}]</answer>",
            "a circle",
        ]
    end = tok.convert_tokens_to_ids("<|im_end|>")
    ids = [tok(t, add_special_tokens=False)["input_ids"] + [end] for t in texts]
    trainer, names, solutions, moved = train_one_step(
        trl_setup, tiny_model_dir, samples, "detection", tmp_path, rollout_func=trl_setup.fixed_rollout(ids)
    )
    assert names == ["iou", "confidence", "format"]
    completions, values = check_logs(trainer, names, solutions)
    assert [completion_text(c) for c in completions] == texts  # TRL decoded exactly our answers
    assert values["iou"][0] == values["iou"][G] == 1.0  # the perfect answers
    assert values["format"] == [1.0, 1.0, 1.0, 0.0] * 2
    assert values["iou"][3] == values["confidence"][3] == 0.0  # no tags: nothing to score
    assert moved  # rewards differ within each group: the step moved the weights
