import json

import torch

from visual_rft import rewards
from visual_rft.config import SFTTrainConfig, load_config
from visual_rft.data.answer import answer_text
from visual_rft.models.inputs import encode_prompts
from visual_rft.models.loading import load_model, load_processor
from visual_rft.sft.trainer import SFTTrainer, answer_tokens


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


def test_sft_lowers_the_answer_loss_and_teaches_the_format(tiny_model_dir, toy_samples, tmp_path):
    samples = toy_samples[:4]
    cfg = load_config(
        SFTTrainConfig,
        None,
        [
            f"model.path={tiny_model_dir}",
            f"run.output_dir={tmp_path}/sft",
            "run.steps=40",
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
    model_dir = tmp_path / "sft" / "checkpoint-40" / "model"
    model, processor = load_model(model_dir, device="cpu"), load_processor(model_dir)
    inputs, frames = encode_prompts(samples, processor, "resized_pixels")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=60, do_sample=False)
    texts = processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    for s, f, t in zip(samples, frames, texts):
        assert rewards.format_reward(t) == 1.0, t
        assert t == answer_text(s, None if s.task == "classification" else f, "I look at the image."), t
