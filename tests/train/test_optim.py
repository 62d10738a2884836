"""AdamW, warm-up with constant / linear / cosine decay, gradient clipping: against hand-computed numbers."""

import math

import pytest
import torch

from visual_rft.config import OptimConfig
from visual_rft.train.optim import build_optimizer, build_scheduler, clip_and_check, learning_rates


def _lrs(schedule, warmup, total, lr=0.1):
    """The learning rate used at optimizer steps 0..total."""
    param = torch.nn.Parameter(torch.zeros(2))
    cfg = OptimConfig(lr=lr, warmup_steps=warmup, schedule=schedule)
    opt = build_optimizer([param], cfg)
    sched = build_scheduler(opt, cfg, total_steps=total)
    out = []
    for _ in range(total + 1):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_optimizer_is_adamw_with_the_config():
    param = torch.nn.Parameter(torch.zeros(3))
    opt = build_optimizer(iter([param]), OptimConfig(lr=3e-4, weight_decay=0.01, betas=[0.8, 0.95]))
    assert isinstance(opt, torch.optim.AdamW)
    group = opt.param_groups[0]
    assert group["lr"] == 3e-4 and group["weight_decay"] == 0.01 and group["betas"] == (0.8, 0.95)
    assert group["params"] == [param]


def test_no_trainable_parameters_is_an_error():
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer([], OptimConfig())


def test_unknown_schedule_is_an_error():
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(1))], OptimConfig())
    with pytest.raises(ValueError, match="optim.schedule.*'step'"):
        build_scheduler(opt, OptimConfig(schedule="step"), total_steps=10)


def test_constant_warms_up_then_stays():
    assert _lrs("constant", warmup=2, total=6) == pytest.approx([0.0, 0.05, 0.1, 0.1, 0.1, 0.1, 0.1])


def test_constant_without_warmup_is_the_peak_throughout():
    assert _lrs("constant", warmup=0, total=3) == pytest.approx([0.1] * 4)


def test_linear_warms_up_then_decays_to_zero():
    # warm-up: 0.1 * s / 2; decay: 0.1 * (6 - s) / (6 - 2)
    assert _lrs("linear", warmup=2, total=6) == pytest.approx([0.0, 0.05, 0.1, 0.075, 0.05, 0.025, 0.0])


def test_cosine_warms_up_then_decays_to_zero():
    # decay: 0.1 * (1 + cos(pi * (s - 2) / 4)) / 2
    half = math.sqrt(2) / 2
    expected = [0.0, 0.05, 0.1, 0.05 * (1 + half), 0.05, 0.05 * (1 - half), 0.0]
    got = _lrs("cosine", warmup=2, total=6)
    assert got == pytest.approx(expected, abs=1e-12)
    assert max(got) == pytest.approx(0.1) and got.index(max(got)) == 2  # the peak exactly after warm-up


def test_cosine_without_warmup_starts_at_the_peak():
    assert _lrs("cosine", warmup=0, total=2, lr=1.0) == pytest.approx([1.0, 0.5, 0.0], abs=1e-12)


def _with_grads(*grads):
    params = []
    for g in grads:
        p = torch.nn.Parameter(torch.zeros(len(g)))
        p.grad = torch.tensor(g, dtype=torch.float32)
        params.append(p)
    return params


def test_clip_scales_the_global_norm_down_to_max_norm():
    params = _with_grads([3.0, 0.0], [0.0, 4.0])  # global norm sqrt(9 + 16) = 5
    params.append(torch.nn.Parameter(torch.ones(2)))  # no gradient: ignored
    norm, finite = clip_and_check(params, max_norm=1.0)
    assert norm == pytest.approx(5.0) and finite
    torch.testing.assert_close(params[0].grad, torch.tensor([0.6, 0.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(params[1].grad, torch.tensor([0.0, 0.8]), atol=1e-6, rtol=0)
    assert params[2].grad is None


def test_norm_below_max_norm_is_left_alone():
    params = _with_grads([0.3, 0.4])
    norm, finite = clip_and_check(params, max_norm=1.0)
    assert norm == pytest.approx(0.5) and finite
    torch.testing.assert_close(params[0].grad, torch.tensor([0.3, 0.4]))


def test_max_norm_zero_means_no_clipping():
    params = _with_grads([30.0, 40.0])
    norm, finite = clip_and_check(params, max_norm=0.0)
    assert norm == pytest.approx(50.0) and finite
    torch.testing.assert_close(params[0].grad, torch.tensor([30.0, 40.0]))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_gradient_is_reported(bad):
    norm, finite = clip_and_check(_with_grads([1.0, 2.0], [bad, 0.0]), max_norm=1.0)
    assert not finite and not math.isfinite(norm)


def test_no_gradients_at_all():
    assert clip_and_check([torch.nn.Parameter(torch.zeros(2))], max_norm=1.0) == (0.0, True)


def test_vision_parameters_get_their_own_rate_through_the_whole_schedule():
    text, vision = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    cfg = OptimConfig(lr=0.1, vision_lr=0.01, warmup_steps=2, schedule="linear")
    opt = build_optimizer([text, vision], cfg, vision_params=[vision])
    sched = build_scheduler(opt, cfg, total_steps=4)
    assert [g["params"] for g in opt.param_groups] == [[text], [vision]]
    seen = []
    for _ in range(4):
        seen.append(learning_rates(opt, sched))
        opt.step()
        sched.step()
    assert [r["lr"] for r in seen] == pytest.approx([0.0, 0.05, 0.1, 0.05])
    assert [r["lr/vision"] for r in seen] == pytest.approx([0.0, 0.005, 0.01, 0.005])


def test_without_vision_lr_one_group_holds_everything():
    text, vision = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt = build_optimizer([text, vision], OptimConfig(lr=0.1), vision_params=[vision])
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["params"] == [text, vision]


def test_a_frozen_tower_leaves_no_empty_vision_group(tiny_model_dir):
    """With the tower frozen (stage 2 of pre-training) the vision group is dropped, not left empty."""
    from visual_rft.config import ModelConfig
    from visual_rft.models.loading import load_model
    from visual_rft.models.lora import prepare_for_training, trainable_parameters, vision_modules

    for freeze, groups in ((True, ["language"]), (False, ["language", "vision"])):
        model = prepare_for_training(
            load_model(tiny_model_dir, device="cpu"), ModelConfig(freeze_vision=freeze)
        )
        cfg = OptimConfig(lr=1e-3, vision_lr=1e-4)
        opt = build_optimizer(trainable_parameters(model), cfg, vision_modules(model).parameters())
        assert [g["name"] for g in opt.param_groups] == groups
        if not freeze:
            assert len(opt.param_groups[1]["params"]) == len(list(vision_modules(model).parameters()))
