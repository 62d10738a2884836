"""bench/class_reading.py: where a classification answer reads each word of the class name."""

import numpy as np
import pytest

from visual_rft.models.loading import load_processor
from visual_rft.world import WorldConfig


def test_words_of_name_the_roles_of_two_and_three_word_classes(load_bench):
    words_of = load_bench("class_reading").words_of
    assert words_of("red star") == {"colour": "red", "shape": "star"}
    assert words_of("dark blue cross") == {"shade": "dark", "colour": "blue", "shape": "cross"}


def test_word_positions_find_each_words_first_token(load_bench, tiny_model_dir):
    bench = load_bench("class_reading")
    tok = load_processor(tiny_model_dir).tokenizer
    ids = tok.encode("<think>x</think><answer>light purple square</answer>")
    start = ids.index(tok.convert_tokens_to_ids("<answer>"))
    found = bench.word_positions(tok, ids, start, "light purple square")
    assert list(found) == ["shade", "colour", "shape"]
    for role, word in [("shade", "light"), ("colour", "purple"), ("shape", "square")]:
        assert tok.decode(ids[found[role] :]).strip().startswith(word)
        assert word not in tok.decode(ids[start + 1 : found[role]])
    with pytest.raises(ValueError, match="does not spell"):
        bench.word_positions(tok, ids, start, "light purple circle")


def test_option_ids_are_each_options_first_token_after_the_words_before(load_bench, tiny_model_dir):
    bench = load_bench("class_reading")
    tok = load_processor(tiny_model_dir).tokenizer
    options = ("red", "green", "blue", "yellow", "purple")
    ids = bench.option_ids(tok, "dark", options)
    for word, i in zip(options, ids):
        assert tok.encode("dark " + word)[len(tok.encode("dark"))] == i
    assert len(set(ids)) == 5
    with pytest.raises(ValueError, match="share a first token"):
        bench.option_ids(tok, "dark", ("red", "red"))


def test_held_out_images_list_their_one_object_of_the_named_class(load_bench, tmp_path):
    samples = load_bench("class_reading").held_out(tmp_path, 6, seed=2, world=WorldConfig())
    assert len({s.target.label for s in samples}) == 6
    for s in samples:
        (obj,) = s.meta["objects"]
        assert s.target.label.endswith(f"{obj['colour']} {obj['shape']}")
        x1, y1, x2, y2 = obj["box"]
        assert 0 <= x1 < x2 <= s.width and 0 <= y1 < y2 <= s.height


def test_readings_line_up_with_each_word_on_the_tiny_model(load_bench, tiny_model_dir, tmp_path):
    bench = load_bench("class_reading")
    samples = bench.held_out(tmp_path, 3, seed=2, world=WorldConfig())
    rows = bench.readings(tiny_model_dir, samples, think="x")
    expected = [
        (i, role, word)
        for i, s in enumerate(samples)
        for role, word in bench.words_of(s.target.label).items()
    ]
    assert [(r["query"], r["role"], r["label"]) for r in rows] == expected
    for r in rows:
        assert r["chosen"] in bench.OPTIONS[r["role"]]
        assert r["x"].ndim == 2 and r["attn"].shape[-1] == 2
        on_object, on_image = r["attn"][..., 0], r["attn"][..., 1]
        assert (on_object > 0).all() and (on_object < on_image).all() and (on_image <= 1 + 1e-5).all()


def test_summarise_scores_the_models_pick_on_the_held_images_only(load_bench):
    summarise = load_bench("class_reading").summarise
    rng = np.random.default_rng(0)
    rows = []
    for q in range(40):
        label = ("red", "blue")[q % 2]
        x = rng.normal(size=(2, 4))
        x[1, q % 2] += 5.0  # layer 1 carries the colour
        chosen = label if q >= 30 or q % 3 else "green"  # wrong on some training images only
        attn = np.full((1, 2, 2), 0.5)
        attn[..., 0] = 0.25
        rows.append({"x": x, "attn": attn, "label": label, "chosen": chosen, "role": "colour", "query": q})
    out = summarise(rows, n_train=30)
    assert list(out) == ["colour"]
    assert out["colour"]["chosen"] == 1.0
    assert out["colour"]["probe layer 1"]["acc"] == 1.0 and out["colour"]["probe layer 0"]["acc"] < 0.9
    assert out["colour"]["object attention"] == [[0.25, 0.25]]
    assert out["colour"]["image attention"] == [[0.5, 0.5]]


def test_explained_share_by_hand(load_bench):
    share = load_bench("class_reading").explained_share
    x = np.array([[1.0, 0.0], [3.0, 0.0], [-1.0, 0.0], [-3.0, 0.0]])  # mean 0, total sum of squares 20
    # grouped {1, 3} and {-1, -3}: class means +-2, between 4 x 4 = 16 of 20
    assert share(x, np.array(["a", "a", "b", "b"])) == pytest.approx(0.8)
    assert share(x, np.array(["a", "b", "a", "b"])) == pytest.approx(0.0)  # both class means are 0
    assert share(x, np.array(["a", "b", "c", "d"])) == pytest.approx(1.0)


def test_variance_shares_on_the_tiny_model(load_bench, tiny_model_dir, tmp_path):
    bench = load_bench("class_reading")
    samples = bench.held_out(tmp_path, 12, seed=2, world=WorldConfig())  # red, green, blue; all of mid shade
    shares = bench.variance_shares(tiny_model_dir, samples)
    assert list(shares) == ["shade", "colour", "shape"]
    assert shares["shade"] == 0.0  # one value explains nothing
    assert 0.0 < shares["colour"] < 1.0 and 0.0 < shares["shape"] < 1.0
