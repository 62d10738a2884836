import pytest

from visual_rft.config import ConfigError, SFTTrainConfig, TrainConfig, load_config, save_config
from visual_rft.recipes.pretrain import PretrainConfig


def test_yaml_and_dotted_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "model:\n  path: /m\n  lora: {enabled: true, r: 4}\ngrpo:\n  group_size: 4\n  rewards: {iou: 1, format: 0.5}\n"
    )
    cfg = load_config(
        TrainConfig, path, ["grpo.beta=0", "optim.lr=3e-4", "run.steps=7", "grpo.rewards.iou=2"]
    )
    assert cfg.model.path == "/m" and cfg.model.lora.enabled and cfg.model.lora.r == 4
    assert cfg.grpo.group_size == 4 and cfg.grpo.beta == 0.0 and isinstance(cfg.grpo.beta, float)
    assert cfg.optim.lr == 3e-4  # YAML 1.1 reads "3e-4" as a string; floats accept it
    assert cfg.run.steps == 7 and cfg.grpo.rewards == {"iou": 2.0, "format": 0.5}
    save_config(cfg, tmp_path / "back.yaml")
    assert load_config(TrainConfig, tmp_path / "back.yaml") == cfg


def test_unknown_key_names_the_key_and_suggests(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("grpo:\n  grup_size: 4\n")
    with pytest.raises(
        ConfigError, match=r"c.yaml: unknown key 'grpo.grup_size'; did you mean 'grpo.group_size'"
    ):
        load_config(TrainConfig, path)


@pytest.mark.parametrize(
    "override,message",
    [
        ("grpo.group_size=four", "'grpo.group_size' must be int"),
        ("run.steps=1.5", "'run.steps' must be int"),
        ("model.lora=3", "'model.lora' must be a mapping"),
        ("grpo", "must look like key.sub=value"),
        ("sft.think=x", "unknown key 'sft'"),
    ],
)
def test_bad_values_are_clear_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(TrainConfig, None, [override])


def test_sft_config_has_its_own_defaults():
    cfg = load_config(SFTTrainConfig, None, ["sft.think=looking"])
    assert cfg.sft.think == "looking" and cfg.optim.lr == 1e-4


def test_every_field_has_a_docstring():
    import ast
    import inspect

    import visual_rft.config as mod

    tree = ast.parse(inspect.getsource(mod))
    for node in tree.body:
        if (
            isinstance(node, ast.ClassDef)
            and node.name.endswith("Config")
            and node.name not in ("TrainConfig", "SFTTrainConfig")
        ):
            body = node.body
            for i, stmt in enumerate(body):
                if isinstance(stmt, ast.AnnAssign):
                    nxt = body[i + 1] if i + 1 < len(body) else None
                    assert isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant), (
                        f"{node.name}.{stmt.target.id} has no docstring"
                    )


def test_a_nested_section_keeps_its_recipes_defaults():
    """Overriding one key of a section whose default is not the class default keeps the other keys."""
    from dataclasses import dataclass, field

    from visual_rft.config import OptimConfig, RunConfig

    @dataclass
    class Recipe:
        sft: SFTTrainConfig = field(
            default_factory=lambda: SFTTrainConfig(optim=OptimConfig(lr=2e-4), run=RunConfig(steps=60))
        )

    cfg = load_config(Recipe, None, ["sft.run.seed=3"])
    assert cfg.sft.run.seed == 3 and cfg.sft.run.steps == 60 and cfg.sft.optim.lr == 2e-4
    cfg = load_config(Recipe, None, ["sft.sft.think=a: b # c"])  # ": " and "#" stay text
    assert cfg.sft.sft.think == "a: b # c"


def test_a_literal_field_takes_only_its_choices():
    cfg = load_config(PretrainConfig, None, ["vision.world.digit_tone=grey"])
    assert cfg.vision.world.digit_tone == "grey"
    with pytest.raises(
        ConfigError, match=r"'vision.world.digit_tone' must be one of \['light', 'dark', 'grey'\], got 'gray'"
    ):
        load_config(PretrainConfig, None, ["vision.world.digit_tone=gray"])
