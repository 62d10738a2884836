"""train_tokenizer: Qwen2's special tokens in order, one token per digit, the Qwen2-VL chat template."""

import pytest

from visual_rft.data.prompts import DETECTION_PROBLEM
from visual_rft.models.tokenizer import FORMAT_TOKENS, SPECIAL_TOKENS, train_tokenizer
from visual_rft.world.vocab import CLASSIFICATION_BASE, CLASSIFICATION_FEWSHOT, DETECTION_ALL

IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(seed=0)


def _tokens(tok, text):
    return tok.convert_ids_to_tokens(tok(text, add_special_tokens=False)["input_ids"])


def test_special_tokens_take_the_first_ids_in_qwen2_order(tok):
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(range(len(SPECIAL_TOKENS)))
    # the format tags are appended after the BPE vocabulary
    assert [tok.convert_tokens_to_ids(t) for t in FORMAT_TOKENS] == list(range(len(tok) - 4, len(tok)))


@pytest.mark.parametrize("token", SPECIAL_TOKENS + FORMAT_TOKENS)
def test_every_special_and_format_token_is_one_token_inside_text(tok, token):
    assert _tokens(tok, f"a{token}b") == ["a", token, "b"]


def test_special_tokens_are_dropped_by_skip_special_tokens_but_format_tags_are_kept(tok):
    ids = tok(f"{IMAGE}<think>x</think><|im_end|>", add_special_tokens=False)["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == "<think>x</think>"


def test_every_number_up_to_1000_is_one_token_per_digit(tok):
    for n in range(1001):
        assert _tokens(tok, str(n)) == list(str(n)), n


def test_digits_split_inside_words_and_decimals(tok):
    assert _tokens(tok, "x1024") == ["x", "1", "0", "2", "4"]
    assert _tokens(tok, "0.95") == ["0", ".", "9", "5"]


def test_byte_level_round_trip(tok):
    text = "café ✓ 日本 <answer>[12, 3]</answer>\n\ttabs  and spaces"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text


def test_padding_and_end_tokens(tok):
    assert tok.padding_side == "left"
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>" and tok.bos_token is None
    assert (
        tok("hello", add_special_tokens=True)["input_ids"]
        == tok("hello", add_special_tokens=False)["input_ids"]
    )
    batch = tok(["a", "a b c"], padding=True, add_special_tokens=False)
    assert batch["attention_mask"][0][0] == 0 and batch["input_ids"][0][0] == tok.pad_token_id


def test_same_seed_same_vocabulary(tok):
    assert train_tokenizer(seed=0).get_vocab() == tok.get_vocab()


def test_chat_template_renders_the_image_placeholder(tok):
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour?"}]}]
    assert tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        f"<|im_start|>user\n{IMAGE}What colour?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_chat_template_with_a_system_turn_two_images_and_an_answer(tok):
    msgs = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Which?"}],
        },
        {"role": "assistant", "content": "<answer>red</answer>"},
    ]
    assert tok.apply_chat_template(msgs, tokenize=False) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        f"<|im_start|>user\n{IMAGE}{IMAGE}Which?<|im_end|>\n"
        "<|im_start|>assistant\n<answer>red</answer><|im_end|>\n"
    )
    numbered = tok.apply_chat_template(msgs, tokenize=False, add_vision_id=True)
    assert f"Picture 1: {IMAGE}Picture 2: {IMAGE}Which?" in numbered


def test_rendered_prompt_has_one_vision_start_per_image(tok):
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Count."}]}]
    ids = tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True, return_dict=False)
    assert ids.count(tok.convert_tokens_to_ids("<|vision_start|>")) == 1
    assert ids.count(tok.convert_tokens_to_ids("<|image_pad|>")) == 1  # the processor expands it later


NAMES = CLASSIFICATION_BASE + CLASSIFICATION_FEWSHOT + DETECTION_ALL
WORLD_WORDS = sorted({word for name in NAMES for word in name.split()} | {"digit"})  # "digit 7"


@pytest.mark.parametrize("word", WORLD_WORDS)
def test_a_world_word_is_one_token_with_or_without_the_space_before_it(tok, word):
    # a detection question quotes its category ("'red star'"), an answer starts right after <answer>:
    # there the word has no space before it, and must not be spelt in pieces the model never learned
    assert len(_tokens(tok, f" {word}")) == 1
    question = _tokens(tok, DETECTION_PROBLEM.format(category=f"{word} star"))
    assert question[question.index("Ġ'") + 1] == word
    assert _tokens(tok, f"<answer>{word} star</answer>")[1] == word
