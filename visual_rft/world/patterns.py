"""Fill patterns: where an object's second tone goes (the shapes' `vocab.FILLS`, the digits' `vocab.DIGIT_FILLS`).

A pattern is fixed to the image grid, so it is the same wherever the object stands, and it repeats within every
14-px patch, so the object's class can be read from any patch of it (RESULTS.md sections 10 and 22).
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

Tone = Literal["light", "dark", "grey"]
"""The second tones a pattern can take (`second_tone`; `WorldConfig.digit_tone` takes the same)."""


def second_tone(rgb: tuple[int, int, int], tone: Tone) -> tuple[int, int, int]:
    """The colour of a fill pattern's second tone on an object of colour `rgb`: "dark" is 70% of its brightness
    (the shapes'), "light" half-way to white, as the light shade is (the digits' by default), "grey" a mid grey
    whatever the colour (RESULTS.md section 24: the tower's colour share is the same with it)."""
    if tone == "dark":
        return tuple(int(v * 0.7) for v in rgb)
    if tone == "light":
        return tuple(int(v + (255 - v) * 0.5) for v in rgb)
    if tone == "grey":
        return (128, 128, 128)
    raise ValueError(f"second_tone: unknown tone {tone!r}, expected one of {get_args(Tone)}")


def fill_pattern(fill: str, box: tuple[int, int, int, int]) -> np.ndarray:
    """[h, w] where a fill pattern takes its second tone inside `box`, in image coordinates (so the pattern
    is the same wherever the object stands: stripes and checks of 3 px, 2-px dots every 6 px; the digits' too:
    diagonal stripes of 3 px falling and rising, a 1-px grid every 4 px, rings 3 px apart around each 12-px
    block's centre, bars of 1 px every 3 along rows)."""
    x1, y1, x2, y2 = box
    ys, xs = np.mgrid[y1:y2, x1:x2]  # [h, w] each
    if fill == "falling":
        return ((xs + ys) // 3) % 2 == 1
    if fill == "rising":
        return ((xs - ys) // 3) % 2 == 1
    if fill == "grid":
        return (xs % 4 == 0) | (ys % 4 == 0)
    if fill == "rings":
        return (np.maximum(np.abs(xs % 12 - 6), np.abs(ys % 12 - 6)) // 3) % 2 == 1
    if fill == "bars":
        return ys % 3 == 0
    if fill == "rows":
        return (ys // 3) % 2 == 1
    if fill == "columns":
        return (xs // 3) % 2 == 1
    if fill == "checks":
        return (xs // 3 + ys // 3) % 2 == 1
    if fill == "dots":
        return (xs % 6 < 2) & (ys % 6 < 2)
    if fill == "solid":
        return np.zeros(ys.shape, bool)
    raise ValueError(f"fill_pattern: unknown fill {fill!r}")
