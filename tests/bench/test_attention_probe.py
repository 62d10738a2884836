"""bench/attention_probe.py: where each head looks, over the image, while the model writes a box."""

import json

import numpy as np
import pytest
import torch

from visual_rft.data.answer import answer_text
from visual_rft.data.jsonl import read_samples
from visual_rft.models.forward import Rollout, completion_logprobs, count_images, prompt_positions
from visual_rft.models.inputs import encode_prompts, frames_for, open_images
from visual_rft.models.loading import load_model, load_processor
from visual_rft.models.text_distance import write_text_distance
from visual_rft.models.tiny import write_tiny
from visual_rft.recipes.base_model import THINK
from visual_rft.sft.trainer import answer_tokens
from visual_rft.world import build


def test_head_shares_split_the_image_attention_by_what_each_cell_shows(load_bench):
    on_image = torch.tensor([[[[0.5, 0.25, 0.25, 0.0], [0.0, 0.0, 0.5, 0.5]]]])  # [1 layer, 1 head, 2, 4]
    owners = np.array([0, 1, -1, -1])
    s = load_bench("attention_probe").head_shares(on_image, owners, target=0)
    assert np.allclose(s["target"], [[0.25]])  # (0.5 + 0) / 2 positions
    assert np.allclose(s["objects"], [[0.375]])  # (0.75 + 0) / 2
    assert np.allclose(s["chance"], [[0.25]])  # 1 of 4 cells
    assert np.allclose(s["objects_chance"], [[0.5]])  # 2 of 4 cells
    assert np.allclose(s["selectivity"], [[0.25 / 0.375]])
    assert np.allclose(s["selectivity_chance"], [[0.5]])  # 1 of 2 object cells


def test_attention_is_read_at_each_digit_of_the_reference_box(load_bench, tiny_model_dir, tmp_path):
    bench = load_bench("attention_probe")
    sample = read_samples(build("grounding", tmp_path, 1, seed=2, categories=["pair"], name="pair"))[0]
    model = load_model(tiny_model_dir, device="cpu", dtype="fp32", attn_implementation="eager")
    processor = load_processor(tiny_model_dir)
    on_image, owners = bench.query_attention(model, processor, sample, "resized_pixels")
    frame = frames_for([open_images(sample)], "resized_pixels", processor)[0]
    digits = sum(c.isdigit() for c in answer_text(sample, frame, THINK).split("<answer>")[1])
    cells = (sample.width // 28) * (sample.height // 28)
    layers, heads = model.config.text_config.num_hidden_layers, model.config.text_config.num_attention_heads
    assert on_image.shape == (layers, heads, digits, cells)
    assert torch.allclose(on_image.sum(-1), torch.ones(layers, heads, digits))
    assert owners.shape == (cells,) and set(owners.tolist()) <= {-1, 0, 1} and {0, 1} <= set(owners.tolist())


@pytest.mark.parametrize("distance", [None, 70])
def test_a_teacher_forced_pass_reads_the_answer_where_training_places_it(load_bench, tmp_path, distance):
    bench = load_bench("attention_probe")
    folder = write_tiny(tmp_path / "m", "qwen2_5_vl", "1m", seed=0)
    write_text_distance(folder, distance)
    model, processor = load_model(folder, device="cpu", dtype="fp32"), load_processor(folder)
    sample = read_samples(build("grounding", tmp_path, 1, seed=2, categories=["pair"], name="pair"))[0]
    inputs, _ = bench.teacher_forced(model, processor, sample, "resized_pixels")
    # training's pass (sft/trainer.py): the prompt encoded alone, the reference answer as its completion
    enc, frames = encode_prompts([sample], processor, "resized_pixels")
    end, pad = processor.tokenizer.convert_tokens_to_ids("<|im_end|>"), processor.tokenizer.pad_token_id
    ids, mask = answer_tokens(
        [answer_text(sample, frames[0], THINK)], processor.tokenizer, end, pad
    )  # [1, T]
    rollout = Rollout(
        prompt_ids=enc["input_ids"],
        prompt_mask=enc["attention_mask"],
        prompt_positions=prompt_positions(model, enc),
        pixel_values=enc["pixel_values"],
        image_grid_thw=enc["image_grid_thw"],
        completion_ids=ids,
        completion_mask=mask,
        group_size=1,
        images_per_prompt=count_images(model, enc["input_ids"]),
    )
    S, T = inputs["input_ids"].shape[1], ids.shape[1]
    assert torch.equal(inputs["input_ids"][0, S - T :], ids[0])
    with torch.no_grad():
        expected = completion_logprobs(model, rollout)[0]  # [T]
        logits = model(**inputs).logits[0, S - T - 1 : S - 1]  # [T, V] the positions predicting the answer
        left = {k: v for k, v in inputs.items() if k != "position_ids"}
        unplaced = model(**left).logits[0, S - T - 1 : S - 1]  # [T, V] the model placing the whole sequence
    forced = torch.log_softmax(logits, -1).gather(-1, ids[0, :, None])[:, 0]  # [T]
    torch.testing.assert_close(forced, expected, rtol=1e-4, atol=1e-4)
    # the whole sequence placed as one prompt: the same for the natural layout, elsewhere with a distance
    assert torch.allclose(unplaced, logits, atol=1e-4) == (distance is None)


def test_hits_are_binned_by_the_held_heads_selectivity(load_bench):
    bench = load_bench("attention_probe")
    rows = [(0.3, 0.6), (0.9, 0.2), (0.9, 0.7), (0.97, 0.8), (1.0, 0.4)]  # (selectivity, IoU)
    bins = bench.hits_by_selectivity(rows)
    assert [b["selectivity"] for b in bins] == [[0.0, 0.5], [0.8, 0.95], [0.95, 1.0]]  # no query in 0.5-0.8
    assert [b["n"] for b in bins] == [1, 2, 2]
    assert [b["acc@0.5"] for b in bins] == [1.0, 0.5, 0.5]
    assert bins[1]["mean_iou"] == 0.45
    firsts = [0.2, 0.4, 0.6, 0.9, 0.3]
    groups = ["a", "b", "a", "b", "b"]
    picks = [
        bench.QueryPick(s, (f, 0.5, 0.5, 0.5) + (0.9,) * k, i, g)
        for k, ((s, i), f, g) in enumerate(zip(rows, firsts, groups))
    ]
    summary = bench.hits_summary(picks)
    assert summary["n"] == 5 and summary["bins"] == bins
    assert summary["mean_selectivity"] == 0.814  # (0.3 + 0.9 + 0.9 + 0.97 + 1.0) / 5
    assert summary["mean_first_selectivity"] == 0.48  # (0.2 + 0.4 + 0.6 + 0.9 + 0.3) / 5
    assert summary["acc@0.5"] == 0.6  # IoU 0.6, 0.7, 0.8 of 5
    assert summary["selectivity_by_digit"] == [
        0.48,
        0.5,
        0.5,
        0.5,
        0.9,
        0.9,
    ]  # 5th, 6th digit: the last 4, 3 rows
    assert [b["n"] for b in summary["bins_first"]] == [3, 1, 1]  # 0.2, 0.4, 0.3 | 0.6 | 0.9
    assert [b["acc@0.5"] for b in summary["bins_first"]] == pytest.approx(
        [1 / 3, 1.0, 1.0]
    )  # IoU 0.6, 0.2, 0.4 | 0.7 | 0.8
    assert summary["by_confusers"] == {
        "a": {"n": 2, "first_selectivity": 0.4, "acc@0.5": 1.0},  # IoU 0.6, 0.7
        "b": {"n": 3, "first_selectivity": 0.533, "acc@0.5": 0.333},  # IoU 0.2, 0.8, 0.4
    }


def test_two_probes_of_the_same_queries_are_compared_query_by_query(load_bench):
    bench = load_bench("attention_probe")

    def probe(firsts):
        return bench.hits_summary(
            [bench.QueryPick(0.5, (f, 0.5), 0.0, "g", f"q{i}") for i, f in enumerate(firsts)]
        )

    a = probe([0.2, 0.4, 0.6, 0.5, 0.1, 0.3, 0.3, 0.3])
    b = probe([0.3, 0.6, 0.5, 0.9, 0.2, 0.4, 0.4, 0.3])  # sharper on 6, blunter on 1, level on 1
    assert a["first_by_query"]["q3"] == 0.5
    c = bench.compare_picks(a, b)
    assert c["n"] == 8 and c["a"] == 0.338 and c["b"] == 0.45  # 2.7 / 8, 3.6 / 8
    assert c["mean_difference"] == pytest.approx(0.1125, abs=1e-3)
    assert (c["sharper_a"], c["sharper_b"]) == (1, 6)
    assert c["p"] == pytest.approx(2 * 8 / 2**7)  # (1 + 7) / 128 per tail
    with pytest.raises(ValueError, match="same queries"):
        bench.compare_picks(a, probe([0.2, 0.4]))
    part = bench.compare_picks(a, b, {"q0", "q2", "q3"})  # a 0.2, 0.6, 0.5; b 0.3, 0.5, 0.9
    assert part["n"] == 3 and part["a"] == 0.433 and part["b"] == 0.567
    assert (part["sharper_a"], part["sharper_b"]) == (1, 2) and part["p"] == 1.0  # 2 * (1 + 3) / 8


def test_compare_splits_the_picks_by_the_evaluated_files_query_kinds(
    load_bench, tmp_path, monkeypatch, capsys
):
    bench = load_bench("attention_probe")
    kinds = ["name", "extreme", "name", "name"]
    rows = [
        {
            "id": f"q{i}",
            "task": "grounding",
            "images": ["x.png"],
            "problem": "Find it.",
            "target": {"box": [0, 0, 4, 4]},
            "meta": {"kind": k},
        }
        for i, k in enumerate(kinds)
    ]
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for name, firsts in (("a", [0.2, 0.5, 0.4, 0.1]), ("b", [0.3, 0.4, 0.6, 0.2])):
        picks = [bench.QueryPick(0.5, (f, 0.5), 0.0, "g", f"q{i}") for i, f in enumerate(firsts)]
        (tmp_path / f"{name}.json").write_text(json.dumps({name: bench.hits_summary(picks)}))
    argv = ["attention_probe.py", "--compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]
    monkeypatch.setattr("sys.argv", [*argv, "--data", str(tmp_path / "test.jsonl")])
    bench.main()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3  # every query, then each kind
    assert "over 4 queries" in lines[0] and "sharper in the first 1, in the second 3" in lines[0]
    assert lines[1].startswith("a against b (extreme)") and "0.5 / 0.4 over 1 queries" in lines[1]
    assert lines[2].startswith("a against b (name)") and "0.233 / 0.367 over 3 queries" in lines[2]


def test_confusers_say_what_the_other_objects_share_with_the_asked_one(load_bench):
    confusers = load_bench("attention_probe").confusers
    red_square = {"kind": "shape", "colour": "red", "shape": "square"}
    red_star = {"kind": "shape", "colour": "red", "shape": "star"}
    blue_square = {"kind": "shape", "colour": "blue", "shape": "square"}
    seven, three = (
        {"kind": "digit", "colour": "red", "digit": 7},
        {"kind": "digit", "colour": "blue", "digit": 3},
    )
    assert confusers([red_square, blue_square, red_star], 0) == "shape, same shape"
    assert confusers([red_square, red_star, seven], 0) == "shape, same colour only"
    assert confusers([blue_square, red_star, seven], 0) == "shape, nothing shared"
    assert confusers([seven, three], 0) == "digit, other digits"
    assert confusers([seven, red_square, blue_square], 0) == "digit, no other digit"


def test_hits_need_the_one_model_that_wrote_them(load_bench, tmp_path, monkeypatch, capsys):
    bench = load_bench("attention_probe")
    argv = ["attention_probe.py", "--models", "a", "b", "--out", str(tmp_path / "o"), "--hits", "c.jsonl"]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit):
        bench.main()
    assert "give one --models" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
