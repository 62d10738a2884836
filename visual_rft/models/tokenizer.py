"""A small byte-level BPE tokenizer trained locally, with Qwen's special tokens and chat template.

Nothing is downloaded: the tokenizer is trained with `tokenizers` on a corpus made from the
project's own prompt templates and answer formats. Digits are split one by one (as Qwen2 does), so
coordinates are learnable; `<think>`, `</think>`, `<answer>`, `</answer>` are single tokens.
"""

from __future__ import annotations

import itertools
import random

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from visual_rft.data.coords import CoordFrame
from visual_rft.data.prompts import DETECTION_PROBLEM, build_prompt
from visual_rft.data.types import Box, ClassTarget, DetectionTarget, GroundingTarget, Sample

# Qwen2's special tokens, in Qwen2's order (ids follow the BPE vocabulary).
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
# Tags of the think/answer format: ordinary (non-special) added tokens, so decoding keeps them.
FORMAT_TOKENS = ["<think>", "</think>", "<answer>", "</answer>"]

# Qwen2's pre-tokenizer pattern: \p{N} alone means one digit per token.
QWEN2_PATTERN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

# Qwen2-VL's chat template (the one its processor ships).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_WORDS = (
    "red green blue yellow orange purple pink brown black white gray grey cyan magenta dark light pale "
    "bright circle square triangle rectangle star hexagon pentagon diamond ellipse cross ring heart digit "
    "zero one two three four five six seven eight nine small large big tiny largest smallest left right "
    "above below top bottom middle center next near far between the a an of in on to is are and or with "
    "object objects image picture category class name shape color colour number count which what where "
    "detect find locate identify box boxes bounding confidence position answer think thinking reasoning "
    "there no none all every each this that it its most least corners sides side first second third "
    "plant flower bird car dog cat aircraft person species type kind model breed region instruction "
    "please output final format follows strictly follow provide return give decimal places integer pixels "
    "between tags process so I see looks like appears seems because therefore"
).split()


def _corpus(seed: int = 0, n: int = 4000) -> list[str]:
    """Text that looks like what the model will read and write: prompts, think/answer, coordinates."""
    rng = random.Random(seed)
    texts = []
    frame = CoordFrame("norm1000", (224, 224))
    for task, target in (
        ("classification", ClassTarget("x")),
        ("detection", DetectionTarget()),
        ("grounding", GroundingTarget(Box(0, 0, 1, 1))),
    ):
        for words in itertools.islice(itertools.permutations(_WORDS[:30], 3), 50):
            problem = f"Find the {' '.join(words)} in the image."
            texts.append(build_prompt(Sample("c", ["x"], task, problem, target), frame))
    # A detection question quotes its category, so its first word comes without the space before it ("'red"
    # splits into "'" and "red"), as a class name does after <answer>. Without these the tokenizer never
    # saw such a word and spelt it in pieces ("re", "d"): a colour the language model knew as " red" in
    # every other question was, in detection's, letters it had to learn again (RESULTS.md section 19).
    for i, word in enumerate(_WORDS):
        for other in (_WORDS[(i + 1) % len(_WORDS)], _WORDS[(i + 7) % len(_WORDS)]):
            problem = DETECTION_PROBLEM.format(category=f"{word} {other}")
            texts.append(build_prompt(Sample("d", ["x"], "detection", problem, DetectionTarget()), frame))
    for _ in range(n):
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 12)))
        nums = [rng.randint(0, 1000) for _ in range(4)]
        conf = f"{rng.random():.2f}"
        texts.append(
            f"<think>{words}.</think><answer>[{{'Position': {nums}, 'Confidence': {conf}}}]</answer>"
        )
        texts.append(f"<think>{words}</think> <answer>({nums[0]},{nums[1]}),({nums[2]},{nums[3]})</answer>")
        texts.append(f"<think>{words}</think><answer>{rng.choice(_WORDS)} {rng.choice(_WORDS)}</answer>")
    texts.append("No Objects. {'Position': [1, 2, 3, 4], 'Confidence': 0.95} \"bbox_2d\": [10, 20]")
    return texts


def train_tokenizer(vocab_size: int = 2048, seed: int = 0) -> PreTrainedTokenizerFast:
    """Train the byte-level BPE tokenizer and wrap it as a transformers fast tokenizer."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(seed), trainer=trainer)
    tok.add_tokens(FORMAT_TOKENS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        model_max_length=32768,
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
    )
    return fast
