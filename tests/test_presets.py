from pathlib import Path

import pytest

from visual_rft import rewards
from visual_rft.config import SFTTrainConfig, TrainConfig, load_config

PRESETS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.name)
def test_every_preset_loads_and_names_known_rewards(path):
    cls = SFTTrainConfig if path.name.startswith("sft") else TrainConfig
    cfg = load_config(cls, path)
    for name in getattr(getattr(cfg, "grpo", None), "rewards", {}) or {}:
        assert name in rewards.names()


def test_there_are_presets():
    assert len(PRESETS) >= 4
