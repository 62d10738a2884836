import pytest
from hypothesis import given
from hypothesis import strategies as st

from visual_rft.data.coords import CoordFrame, from_model, target_to_model, to_model
from visual_rft.data.types import Box, ClassTarget, DetectionTarget, GroundingTarget


def test_norm1000_by_hand():
    frame = CoordFrame("norm1000", (200, 100))
    assert to_model(Box(10, 20, 50, 60), frame).xyxy == (50, 200, 250, 600)
    assert from_model(Box(50, 200, 250, 600), frame).xyxy == (10, 20, 50, 60)


def test_resized_pixels_by_hand():
    frame = CoordFrame("resized_pixels", (640, 480), resized=(644, 476))
    b = to_model(Box(100, 100, 320, 240), frame)
    assert b.xyxy == (round(100 * 644 / 640), round(100 * 476 / 480), round(320 * 644 / 640), 238)


@pytest.mark.parametrize("convention,resized", [("norm1000", None), ("resized_pixels", (308, 224))])
@given(x1=st.floats(0, 300), y1=st.floats(0, 200), w=st.floats(1, 100), h=st.floats(1, 100))
def test_round_trip(convention, resized, x1, y1, w, h):
    frame = CoordFrame(convention, (400, 300), resized)
    box = Box(x1, y1, x1 + w, y1 + h, "cat")
    back = from_model(to_model(box, frame, integer=False), frame)
    assert back.category == "cat"
    for a, b in zip(back.xyxy, box.xyxy):
        assert a == pytest.approx(b, abs=1e-9)
    # rounding to integers, as models answer, costs at most half a model unit
    sx, sy = frame.scale
    back_int = from_model(to_model(box, frame), frame)
    for a, b, s in zip(back_int.xyxy, box.xyxy, (sx, sy, sx, sy)):
        assert abs(a - b) <= 0.5 / s + 1e-9


def test_targets_convert_every_box():
    frame = CoordFrame("norm1000", (100, 100))
    det = target_to_model(DetectionTarget((Box(1, 2, 3, 4), Box(5, 6, 7, 8)), "x"), frame)
    assert [b.xyxy for b in det.boxes] == [(10, 20, 30, 40), (50, 60, 70, 80)] and det.category == "x"
    assert target_to_model(GroundingTarget(Box(1, 2, 3, 4)), frame).box.xyxy == (10, 20, 30, 40)
    assert target_to_model(ClassTarget("rose"), frame) == ClassTarget("rose")


def test_bad_frames():
    with pytest.raises(ValueError, match="unknown coordinate convention"):
        CoordFrame("pixels", (10, 10))
    with pytest.raises(ValueError, match="resized"):
        CoordFrame("resized_pixels", (10, 10))
