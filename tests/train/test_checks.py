"""train/checks.py: the settings every trainer shares, refused by name before anything loads."""

import pytest

from visual_rft.config import SFTTrainConfig, TrainConfig, load_config
from visual_rft.train.checks import check_at_least, check_share, check_train_config, config_section


@pytest.mark.parametrize("cls", [TrainConfig, SFTTrainConfig])
def test_the_defaults_pass(cls):
    check_train_config(cls())


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "run.precision=bf16",
            r"run.precision must be auto or one of fp32, bf16-mixed, fp16-mixed, got 'bf16'",
        ),
        ("dist.strategy=zero3", r"dist.strategy must be one of"),
        ("model.dtype=bf16", r"model.dtype=bf16: a full fine-tune keeps its trained weights in fp32"),
        ("model.dtype=bf61", r"model.dtype: unknown dtype 'bf61'"),
        (
            "optim.schedule=cosin",
            r"optim.schedule must be one of \['constant', 'cosine', 'linear'\], got 'cosin'",
        ),
        ("optim.lr=-1e-5", r"optim.lr must be a number >= 0, got -1e-05"),
        ("optim.lr=.nan", r"optim.lr must be a number >= 0, got nan"),
        ("optim.vision_lr=-1e-5", r"optim.vision_lr must be >= 0"),
        ("optim.betas=[0.9]", r"optim.betas must be two numbers in \[0, 1\), got \[0.9\]"),
        ("optim.betas=[0.9, 1.0]", r"optim.betas must be two numbers"),
        ("optim.warmup_steps=-5", r"optim.warmup_steps must be >= 0, got -5"),
        ("run.steps=-1", r"run.steps must be >= 0, got -1"),
        ("data.max_samples=-1", r"data.max_samples must be >= 0, got -1"),
        ("model.logprob_chunk_size=-2", r"model.logprob_chunk_size must be >= 0, got -2"),
    ],
)
@pytest.mark.parametrize("cls", [TrainConfig, SFTTrainConfig])
def test_a_bad_shared_setting_names_its_field(cls, override, message):
    with pytest.raises(ValueError, match=message):
        check_train_config(load_config(cls, None, [override]))


def test_a_lora_run_may_load_its_frozen_base_in_bf16():
    check_train_config(load_config(TrainConfig, None, ["model.dtype=bf16", "model.lora.enabled=true"]))


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
