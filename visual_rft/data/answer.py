"""The answer format, in one place: how a target is written as an answer, and how an answer is read.

Writing (`answer_text`, `answer_body`): the answer the rewards score highest, used as SFT targets and as
perfect answers in tests; boxes are rendered as integers in the model's convention.

Reading: the rules, shared by every reward and by evaluation:

- **The answer** is the text between the first ``<answer>`` and the first ``</answer>`` after it, across
  lines. A completion without a closed answer tag has no answer (accuracy rewards give it 0). Anything that
  is not a string has no answer either.
- **Detection answers** are a list of objects, each with a box and a confidence, written as JSON or as a
  Python literal (single quotes), on one line or many. Keys are matched without regard to case: the box
  under ``Position``, ``bbox``, ``box`` or ``bbox_2d``; the confidence under ``Confidence`` or ``score``.
  ``No Objects`` (any case, optional final period) and ``[]`` mean an empty list. A single object written
  without the surrounding brackets counts as a list of one. The text is read with ``json.loads`` (after
  turning single quotes into double quotes when it holds no double quote: the fast path for the paper's
  format), then with ``ast.literal_eval``; never with ``eval``.
- **A prediction is invalid, and dropped,** when its box is not four finite numbers with x2 > x1 and
  y2 > y1, when its confidence is not a number in [0, 1], or when it has two box keys or two confidence keys.
  **A missing confidence reads as 1.0**: an answer without confidences (e.g. Qwen2.5-VL's native
  ``[{"bbox_2d": [...], "label": "cat"}]``) is scored exactly as if it wrote ``'Confidence': 1`` on every box,
  by both the IoU and the confidence reward. Other keys (``label``...) are ignored.
- **Identical boxes count once**: predictions are ordered most confident first (ties keep the written
  order) and, of several copies of one box, the first in that order (the most confident) is kept. The result
  does not depend on the order the predictions were written in when their confidences differ.
- **Grounding answers** are one box: ``(x1,y1),(x2,y2)``, ``[x1, y1, x2, y2]``, or a detection list holding
  exactly one object (its confidence, if any, must be valid). Several boxes are not one box: no answer.
- **Classification answers** are normalised by `normalize_class`.

Parsed completions are cached (``functools.lru_cache``), so the IoU and confidence rewards, called one
after the other on the same completion, parse it once.
"""

from __future__ import annotations

import ast
import functools
import json
import re
import warnings
from typing import NamedTuple

from visual_rft.data.boxes import Box4, as_box, is_number
from visual_rft.data.coords import CoordFrame, target_to_model
from visual_rft.data.types import ClassTarget, DetectionTarget, GroundingTarget, Sample, Target

ANSWER_OPEN = "<answer>"
ANSWER_CLOSE = "</answer>"
PROBLEM_SLOT = "{problem}"
"""In a think text (`answer_text`), stands for the sample's question: a think that restates what is asked
puts it a few tokens before the answer (RESULTS.md section 22)."""
REGION_SLOT = "{region}"
"""In a think text (`answer_text`), stands for where a grounding target's box is (`region_words`: "top left" ...
"bottom right"): a think that names the place before the box writes the pick as a word, one of nine, before
the digits read the box (RESULTS.md section 35). For a detection target, the places of its boxes in the answer's
order, joined by `REGION_JOIN` (`NO_REGION` when it has none): each box's pick is then a word written before
the boxes (section 47). A classification target has no box: a think with this slot is an error there."""
REGION_JOIN = ", "
NO_REGION = "nowhere"
VERTICAL_THIRDS = ("top", "middle", "bottom")
HORIZONTAL_THIRDS = ("left", "center", "right")
NO_OBJECTS = "No Objects"
"""The answer of a detection query for a category that is absent."""

BOX_KEYS = frozenset({"position", "bbox", "box", "bbox_2d"})
CONFIDENCE_KEYS = frozenset({"confidence", "score"})

_CACHE_SIZE = 8192
_UNREADABLE = object()  # what `load_literal` returns for text that is neither JSON nor a Python literal


def extract_answer(text: object) -> str | None:
    """The text inside the first ``<answer>...</answer>`` pair (across lines), or None when there is none."""
    if not isinstance(text, str):
        return None
    start = text.find(ANSWER_OPEN)
    if start < 0:
        return None
    start += len(ANSWER_OPEN)
    end = text.find(ANSWER_CLOSE, start)
    if end < 0:
        return None
    return text[start:end]


def solution_text(solution: str) -> str:
    """The answer of a solution string: inside its answer tags when it has them, else the whole string."""
    answer = extract_answer(solution)
    return solution if answer is None else answer


def load_literal(text: str) -> object:
    """Read a JSON value or a Python literal; `_UNREADABLE` when the text is neither. Never raises."""
    text = text.strip()
    try:
        if '"' not in text:
            return json.loads(text.replace("'", '"'))
        return json.loads(text)
    except Exception:  # JSONDecodeError, RecursionError on absurd nesting, ...
        pass
    try:  # line breaks become spaces, so that "(1,2),\n(3,4)" reads like "(1,2), (3,4)"
        with warnings.catch_warnings():  # model text like "1st" makes the compiler warn; it's just unreadable
            warnings.simplefilter("ignore", SyntaxWarning)
            return ast.literal_eval(text.replace("\r", " ").replace("\n", " "))
    except Exception:  # SyntaxError, ValueError, MemoryError, RecursionError, ...
        return _UNREADABLE


# ----------------------------------------------------------------------------------------------------------
# Writing


def _int(v: float) -> int:
    return int(round(v))


def answer_body(target: Target) -> str:
    """The text inside <answer></answer> for a target ALREADY in the model's convention."""
    if isinstance(target, ClassTarget):
        return target.label
    if isinstance(target, DetectionTarget):
        if not target.boxes:
            return NO_OBJECTS
        items = [
            f"{{'Position': [{_int(b.x1)}, {_int(b.y1)}, {_int(b.x2)}, {_int(b.y2)}], 'Confidence': 1}}"
            for b in target.boxes
        ]
        return "[" + ", ".join(items) + "]"
    if isinstance(target, GroundingTarget):
        b = target.box
        return f"({_int(b.x1)},{_int(b.y1)}),({_int(b.x2)},{_int(b.y2)})"
    raise TypeError(f"not a target: {target!r}")


_WRITTEN_BOX = re.compile(r"\[\d+, \d+, \d+, \d+\]|\(\d+,\d+\),\(\d+,\d+\)")


def box_spans(text: str) -> list[tuple[int, int]]:
    """The character span (start, end) of each box in a text `answer_body` wrote, in the order written:
    `[x1, y1, x2, y2]` of a detection answer, `(x1,y1),(x2,y2)` of a grounding one."""
    return [m.span() for m in _WRITTEN_BOX.finditer(text)]


_WRITTEN_REGION = re.compile(rf"\b({'|'.join(VERTICAL_THIRDS)}) ({'|'.join(HORIZONTAL_THIRDS)})\b")


def region_spans(text: str) -> list[tuple[int, int]]:
    """The character span (start, end) of each place `region_words` wrote in a text's think part (before
    <answer>), in the order written."""
    think = text.split(ANSWER_OPEN, 1)[0]
    return [m.span() for m in _WRITTEN_REGION.finditer(think)]


def answer_text(sample: Sample, frame: CoordFrame | None, think: str | None = None) -> str:
    """The full answer the rewards score highest: optional <think> part, then <answer>...</answer>.
    `PROBLEM_SLOT` in `think` is replaced by the sample's question, `REGION_SLOT` by where its box is."""
    target = sample.target if frame is None else target_to_model(sample.target, frame)
    body = f"<answer>{answer_body(target)}</answer>"
    if think is None:
        return body
    think = think.replace(PROBLEM_SLOT, sample.problem.strip())
    if REGION_SLOT in think:
        think = think.replace(REGION_SLOT, sample_region(sample, frame))
    return f"<think>{think}</think>{body}"


def sample_region(sample: Sample, frame: CoordFrame | None) -> str:
    """`region_words` of a grounding sample's box, or of a detection sample's boxes in order (`REGION_SLOT`), in
    its image (the frame's size, else the sample's)."""
    target = sample.target
    if not isinstance(target, (GroundingTarget, DetectionTarget)):
        raise ValueError(
            f"sample {sample.id}: a think with {REGION_SLOT} needs a grounding or detection target (boxes), "
            f"not {type(target).__name__}"
        )
    size = frame.size if frame is not None else (sample.width, sample.height)
    if size[0] is None or size[1] is None:
        raise ValueError(
            f"sample {sample.id}: a think with {REGION_SLOT} needs the image size (width, height)"
        )
    if isinstance(target, GroundingTarget):
        return region_words(target.box.xyxy, size)
    return REGION_JOIN.join(region_words(b.xyxy, size) for b in target.boxes) or NO_REGION


def region_words(box: Box4, size: tuple[float, float]) -> str:
    """Where a box's centre is in an image of `size` (width, height), by thirds down and across: "top left",
    "middle center", ..., "bottom right" (a centre on a boundary goes to the later third)."""
    x1, y1, x2, y2 = box
    across = min(2, int(3 * (x1 + x2) / 2 / size[0]))
    down = min(2, int(3 * (y1 + y2) / 2 / size[1]))
    return f"{VERTICAL_THIRDS[down]} {HORIZONTAL_THIRDS[across]}"


# ----------------------------------------------------------------------------------------------------------
# Detection


class Prediction(NamedTuple):
    box: Box4
    confidence: float


class DetectionAnswer(NamedTuple):
    """A detection answer as the rewards see it.

    ``readable``: an answer was found and read as a list of objects (or as an empty answer).
    ``predictions``: the valid predictions, duplicates removed, most confident first.
    ``written``: how many objects the answer wrote, valid or not (0 for an empty answer).
    """

    readable: bool
    predictions: tuple[Prediction, ...] = ()
    written: int = 0

    @property
    def empty(self) -> bool:
        """The answer says there is nothing to detect ('No Objects' or [])."""
        return self.readable and self.written == 0


UNREADABLE_DETECTION = DetectionAnswer(readable=False)


def is_no_objects(answer: str) -> bool:
    """'No Objects' in any case, with surrounding white space and an optional final period."""
    return answer.strip().rstrip(".").strip().lower() == "no objects"


def read_object(item: object) -> Prediction | None:
    """One detection object (a dict) as a valid `Prediction`, or None when it is invalid."""
    if not isinstance(item, dict):
        return None
    if len(item) == 2 and "Position" in item and "Confidence" in item:  # the paper's format, read fast
        box, confidence, n_box, n_confidence = item["Position"], item["Confidence"], 1, 1
    else:
        box, confidence, n_box, n_confidence = _find_keys(item)
    if n_box != 1 or n_confidence > 1:
        return None
    box = as_box(box)
    if box is None:
        return None
    if n_confidence == 0:
        return Prediction(box, 1.0)
    if not is_number(confidence) or not 0 <= confidence <= 1:  # also rejects NaN and huge integers
        return None
    return Prediction(box, float(confidence))


def _find_keys(item: dict) -> tuple[object, object, int, int]:
    """(box, confidence, number of box keys, number of confidence keys), keys matched without regard to case."""
    box = confidence = None
    n_box = n_confidence = 0
    for key, value in item.items():
        if not isinstance(key, str):
            continue
        key = key.lower()
        if key in BOX_KEYS:
            box, n_box = value, n_box + 1
        elif key in CONFIDENCE_KEYS:
            confidence, n_confidence = value, n_confidence + 1
    return box, confidence, n_box, n_confidence


def read_objects(value: object) -> DetectionAnswer:
    """A loaded detection answer (list of dicts, or one dict) as a `DetectionAnswer`."""
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, (list, tuple)):
        return UNREADABLE_DETECTION
    valid = [p for p in map(read_object, value) if p is not None]
    valid.sort(key=lambda p: p.confidence, reverse=True)  # stable: ties keep the written order
    seen: set[Box4] = set()
    unique = []
    for p in valid:
        if p.box not in seen:
            seen.add(p.box)
            unique.append(p)
    return DetectionAnswer(readable=True, predictions=tuple(unique), written=len(value))


def parse_detection(answer: str) -> DetectionAnswer:
    """Parse the text of a detection answer (already taken out of its tags)."""
    if is_no_objects(answer):
        return DetectionAnswer(readable=True)
    value = load_literal(answer)
    if value is _UNREADABLE:
        return UNREADABLE_DETECTION
    return read_objects(value)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _detection_answer(completion: str) -> DetectionAnswer:
    answer = extract_answer(completion)
    return UNREADABLE_DETECTION if answer is None else parse_detection(answer)


def detection_answer(completion: object) -> DetectionAnswer:
    """The detection answer of a completion (cached)."""
    if not isinstance(completion, str):
        return UNREADABLE_DETECTION
    return _detection_answer(completion)


# ----------------------------------------------------------------------------------------------------------
# Grounding


def read_box(value: object) -> Box4 | None:
    """A loaded grounding answer as one valid box, or None.

    Accepted: [x1, y1, x2, y2]; ((x1, y1), (x2, y2)); a detection object; a list holding one of these.
    """
    while isinstance(value, (list, tuple)) and len(value) == 1:  # a list of one box or object
        value = value[0]
    if isinstance(value, dict):
        prediction = read_object(value)
        return None if prediction is None else prediction.box
    if not isinstance(value, (list, tuple)):
        return None
    if len(value) == 4:
        return as_box(value)
    if len(value) == 2 and all(isinstance(v, (list, tuple)) and len(v) == 2 for v in value):
        return as_box((*value[0], *value[1]))
    return None


def parse_box(answer: str) -> Box4 | None:
    """Parse the text of a grounding answer (already taken out of its tags)."""
    value = load_literal(answer)
    return None if value is _UNREADABLE else read_box(value)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _grounding_answer(completion: str) -> Box4 | None:
    answer = extract_answer(completion)
    return None if answer is None else parse_box(answer)


def grounding_answer(completion: object) -> Box4 | None:
    """The one box a completion answers, or None (cached)."""
    if not isinstance(completion, str):
        return None
    return _grounding_answer(completion)


# ----------------------------------------------------------------------------------------------------------
# Classification

_SEPARATORS = re.compile(r"[\s_\-]+")
_QUOTES = "'\"`"


def normalize_class(text: str) -> str:
    """A class name in canonical form, for exact comparison.

    Case is folded; surrounding white space and quotes and a final period are removed; every run of white
    space, underscores and hyphens becomes one space. ``'  "Bird_of-Paradise."  '`` -> ``"bird of paradise"``.
    """
    text = text.strip().rstrip(".").strip().strip(_QUOTES).strip().rstrip(".")
    return _SEPARATORS.sub(" ", text).strip().casefold()


def class_answer(completion: object) -> str | None:
    """The normalised class name a completion answers, or None when it has no answer (empty counts as none)."""
    answer = extract_answer(completion)
    if answer is None:
        return None
    return normalize_class(answer) or None


def readable(completion: object, kind: str) -> bool:
    """Whether a reward of this answer ``kind`` ("detection", "grounding", "classification") can read one."""
    if kind == "detection":
        return detection_answer(completion).readable
    if kind == "grounding":
        return grounding_answer(completion) is not None
    if kind == "classification":
        return class_answer(completion) is not None
    raise ValueError(f"unknown answer kind {kind!r}")


def clear_caches() -> None:
    """Forget every parsed completion (for benchmarks that must measure cold parsing)."""
    _detection_answer.cache_clear()
    _grounding_answer.cache_clear()
