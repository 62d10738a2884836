"""visual_rft/checks.py: the helpers of the config checks."""

import pytest

from visual_rft.checks import check_at_least, check_rate, check_share, config_section
from visual_rft.config import SFTTrainConfig, load_config
from visual_rft.train.base import check_train_config


def test_shares_and_lower_bounds_name_the_field_and_refuse_nan():
    check_share(0.0, "x")
    check_share(1.0, "x")
    with pytest.raises(ValueError, match=r"a.b: 1.5 is not a share in \[0, 1\]"):
        check_share(1.5, "a.b")
    with pytest.raises(ValueError, match=r"a.b: nan is not a share"):
        check_share(float("nan"), "a.b")
    check_at_least({"a": 1, "b": 2}, 1)
    with pytest.raises(ValueError, match=r"b must be >= 1, got 0"):
        check_at_least({"a": 1, "b": 0}, 1)
    with pytest.raises(ValueError, match=r"a must be >= 0, got nan"):
        check_at_least({"a": float("nan")}, 0)


def test_a_section_prefixes_the_errors_raised_inside_it():
    with pytest.raises(ValueError, match=r"^joint: optim.lr must be a number >= 0"):
        with config_section("joint"):
            check_train_config(load_config(SFTTrainConfig, None, ["optim.lr=-1"]))
    with config_section("joint"):  # nothing raised: nothing changed
        check_train_config(SFTTrainConfig())


def test_check_rate_allows_0_and_refuses_negative_or_non_finite_rates():
    check_rate(0.0, "optim.lr")
    check_rate(1e-3, "optim.lr")
    for bad in (-1e-5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"optim.lr must be a number >= 0"):
            check_rate(bad, "optim.lr")
