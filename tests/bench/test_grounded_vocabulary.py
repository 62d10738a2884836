"""bench/grounded_vocabulary.py: the attribute words' embeddings moved toward the tower's tokens of what they name."""

import pytest
import torch
from safetensors.torch import load_file

from visual_rft.data.jsonl import read_samples
from visual_rft.models.loading import load_model, load_processor
from visual_rft.models.tiny import write_tiny
from visual_rft.world import build_suite


@pytest.fixture(scope="module")
def world_and_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("vocab")
    paths = build_suite(root / "world", seed=0, n_pretrain=8, n_test=0, shots=(1,))
    model = write_tiny(root / "init", "qwen2_5_vl", "1m", seed=0)
    return read_samples(paths["grd_base_train"]), model


@pytest.fixture
def vocab(load_bench):
    return load_bench("grounded_vocabulary")


def test_the_words_of_an_object_are_its_colour_and_shape_or_its_colour_digit_and_value(vocab):
    attribute_words = vocab.attribute_words
    assert attribute_words({"kind": "shape", "colour": "red", "shape": "star"}) == ["red", "star"]
    assert attribute_words({"kind": "digit", "colour": "blue", "digit": 7}) == ["blue", "digit", "7"]


def test_grounding_moves_only_the_attribute_words_rows_each_by_the_gain_toward_its_prototype(
    vocab, world_and_model, tmp_path
):
    samples, init = world_and_model
    out = vocab.ground_vocabulary(init, tmp_path / "words", samples, gain=2.0)
    before, after = load_file(init / "model.safetensors"), load_file(out / "model.safetensors")
    key = next(k for k in before if k.endswith("embed_tokens.weight"))
    assert [k for k in before if not torch.equal(before[k], after[k])] == [key]  # nothing else moves
    delta = after[key] - before[key]  # [V, H]
    moved = set(delta.norm(dim=1).nonzero().squeeze(1).tolist())
    model, processor = load_model(init, device="cpu"), load_processor(init)
    prototypes = vocab.word_prototypes(model, processor, samples)
    expected = {t: w for w in prototypes for t in vocab.word_tokens(processor.tokenizer, w)}  # token id: word
    assert moved == set(expected)
    assert {"red", "star", "digit"} <= set(expected.values())  # the world's words are single tokens
    scale = 2.0 * before[key].norm(dim=1).mean()
    for token, word in expected.items():
        unit = prototypes[word] / prototypes[word].norm()
        assert torch.allclose(delta[token], scale * unit, atol=1e-5), word
    assert (out / "tokenizer.json").exists()
    load_model(out, device="cpu")  # a plain Qwen2.5-VL folder


def test_a_word_is_moved_in_each_spelling_kept_whole_and_a_split_one_not_at_all(vocab, world_and_model):
    tokenizer = load_processor(world_and_model[1]).tokenizer
    ids = vocab.word_tokens(tokenizer, "purple")
    assert len(ids) == 2  # "purple" after "<answer>", " purple" inside a question
    assert {tokenizer.decode([i]) for i in ids} == {"purple", " purple"}
    assert vocab.word_tokens(tokenizer, "zzqxj") == []  # no single token spells it


def test_no_samples_is_refused_before_the_model_loads(vocab, tmp_path):
    with pytest.raises(ValueError, match="no samples"):
        vocab.ground_vocabulary(tmp_path / "missing", tmp_path / "words", [], gain=1.0)
