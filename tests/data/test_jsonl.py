import json

import pytest
from PIL import Image

from visual_rft.cli import main
from visual_rft.data.jsonl import DataError, check_file, read_samples, write_samples
from visual_rft.data.types import Box, ClassTarget, DetectionTarget, GroundingTarget, Sample


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "img").mkdir()
    Image.new("RGB", (100, 80), "white").save(tmp_path / "img" / "a.png")
    (tmp_path / "img" / "broken.png").write_bytes(b"not a png")
    return tmp_path


def _samples(folder):
    img = str(folder / "img" / "a.png")
    return [
        Sample(
            "c1", [img], "classification", "What flower?", ClassTarget("rose"), 100, 80, {"split": "train"}
        ),
        Sample(
            "d1",
            [img],
            "detection",
            "Detect dogs.",
            DetectionTarget((Box(1, 2, 30, 40, "dog"), Box(50, 10, 99.5, 79, "dog")), "dog"),
            100,
            80,
        ),
        Sample("d2", [img], "detection", "Detect cats.", DetectionTarget((), "cat"), 100, 80),
        Sample("g1", [img], "grounding", "The left one.", GroundingTarget(Box(0, 0, 10, 10)), 100, 80),
    ]


def test_round_trip_with_relative_paths(folder):
    path = folder / "train.jsonl"
    samples = _samples(folder)
    assert write_samples(path, samples) == 4
    first = json.loads(path.read_text().splitlines()[0])
    assert first["images"] == ["img/a.png"]  # written relative to the JSONL file
    back = read_samples(path)
    assert back == samples
    # the folder can move: paths resolve from the file's new place
    moved = folder.parent / "moved"
    folder.rename(moved)
    assert read_samples(moved / "train.jsonl")[0].image == str(moved / "img" / "a.png")


def _write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


GOOD = {
    "id": "x",
    "task": "detection",
    "image": "img/a.png",
    "problem": "Detect dogs.",
    "target": {"category": "dog", "boxes": [[1, 2, 30, 40]]},
}


def _bad(**change):
    rec = json.loads(json.dumps(GOOD))
    for k, v in change.items():
        if v is None:
            rec.pop(k)
        else:
            rec[k] = v
    return json.dumps(rec)


@pytest.mark.parametrize(
    "line,field,message",
    [
        ('{"id": "x", "task": ', None, "malformed JSON"),
        (_bad(task="segmentation"), "task", "unknown task"),
        (_bad(problem=None), "problem", "missing"),
        (_bad(target={"category": "dog", "boxes": [[30, 2, 10, 40]]}), "target.boxes[0]", "x2 > x1"),
        (_bad(target={"category": "dog", "boxes": [[1, 2, 3]]}), "target.boxes[0]", "x1, y1, x2, y2"),
        (
            _bad(target={"category": "dog", "boxes": [[1, 2, 30, 4000]]}, width=100, height=80),
            "target.boxes[0]",
            "outside the 100x80 image",
        ),
        (_bad(task="grounding", target={"box": [1, 2, "a", 4]}), "target.box", "must be numbers"),
        (_bad(task="classification", target={"label": ""}), "target.label", "non-empty"),
        (_bad(image=None), "images", "need 'images'"),
    ],
)
def test_errors_name_file_line_and_field(folder, line, field, message):
    path = _write_lines(folder / "bad.jsonl", [json.dumps(GOOD), "", line])
    with pytest.raises(DataError) as info:
        read_samples(path)
    err = info.value
    assert err.path == path and err.line == 3 and err.field == field
    assert message in str(err) and str(path) in str(err) and ":3:" in str(err)


def test_check_file_reports_every_bad_record(folder):
    lines = [
        json.dumps(GOOD),
        _bad(image="img/missing.png"),
        _bad(image="img/broken.png"),
        _bad(target={"category": "dog", "boxes": [[1, 2, 300, 40]]}),  # outside the real 100x80 image
        "{oops",
        json.dumps(GOOD),  # duplicate id
    ]
    n, errors = check_file(_write_lines(folder / "data.jsonl", lines))
    assert n == 6
    assert [(e.line, e.field) for e in errors] == [
        (2, "images[0]"),
        (3, "images[0]"),
        (4, "target.boxes[0]"),
        (5, None),
        (6, "id"),
    ]
    assert "image not found" in str(errors[0]) and "unreadable" in str(errors[1])
    assert "outside the 100x80 image" in str(errors[2]) and "duplicate id" in str(errors[4])


def test_a_line_that_is_not_utf8_is_reported_with_its_line_and_the_rest_checked(folder):
    path = folder / "latin1.jsonl"
    good = json.dumps(GOOD)
    path.write_bytes(
        good.encode() + b"\n" + good.replace("Detect dogs.", "Detect caf\xe9s.").encode("latin-1") + b"\n"
    )
    n, errors = check_file(path)
    assert n == 2 and [(e.line, e.field) for e in errors] == [(2, None)]
    assert f"{path}:2: not UTF-8: byte b'\\xe9' at offset" in str(errors[0])
    with pytest.raises(DataError, match=r"latin1.jsonl:2: not UTF-8"):
        read_samples(path)


def test_vrft_data_check_exit_codes(folder, capsys):
    good = _write_lines(folder / "good.jsonl", [json.dumps(GOOD)])
    bad = _write_lines(folder / "bad.jsonl", [_bad(image="img/missing.png"), _bad(task="x")])
    assert main(["data", "check", str(good)]) == 0
    assert main(["data", "check", str(good), str(bad)]) == 1
    captured = capsys.readouterr()
    assert f"{bad}:1: field 'images[0]'" in captured.err and f"{bad}:2: field 'task'" in captured.err
    assert "2 bad" in captured.out
