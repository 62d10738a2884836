from pathlib import Path

import pytest

from visual_rft.config import SFTTrainConfig, TrainConfig, load_config
from visual_rft.rl.trainer import check_grpo_config
from visual_rft.sft.trainer import check_sft_config

PRESETS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.name)
def test_every_preset_loads_and_passes_its_trainers_checks(path):
    if path.name.startswith("sft"):
        check_sft_config(load_config(SFTTrainConfig, path))
    else:
        check_grpo_config(load_config(TrainConfig, path))  # its rewards among them


def test_there_are_presets():
    assert len(PRESETS) >= 4
