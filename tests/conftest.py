"""Shared fixtures: everything offline, built on the fly in temporary folders."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle threads sleep: much faster on a shared, busy CPU

import pytest  # noqa: E402
import torch  # noqa: E402

from visual_rft.world import COLOURS, ObjectSpec  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def world_object(kind, shape, colour, x, digit=None):
    """A placed 20 x 20 world object at (x, 10), mid shade, for scenes written by hand."""
    return ObjectSpec(
        kind,
        shape,
        colour,
        "mid",
        COLOURS[colour],
        30,
        0.0,
        digit,
        0 if digit else None,
        x=x,
        y=10,
        w=20,
        h=20,
    )


@pytest.fixture
def make_object():
    """`world_object`: a placed world object, for scenes written by hand."""
    return world_object


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A 1M-parameter Qwen2.5-VL folder written by the project's own factory."""
    from visual_rft.models.tiny import write_tiny

    return write_tiny(tmp_path_factory.mktemp("tiny") / "qwen2_5_vl-1m", "qwen2_5_vl", "1m", seed=0)


@pytest.fixture(scope="session")
def tiny_qwen2_dir(tmp_path_factory):
    """A 1M-parameter Qwen2-VL folder (the 0-1000 coordinate family)."""
    from visual_rft.models.tiny import write_tiny

    return write_tiny(tmp_path_factory.mktemp("tiny2") / "qwen2_vl-1m", "qwen2_vl", "1m", seed=0)


@pytest.fixture(scope="session")
def tiny_qwen3_dir(tmp_path_factory):
    """A 1M-parameter Qwen3-VL folder (0-1000 coordinates, deepstack vision features)."""
    from visual_rft.models.tiny import write_tiny

    return write_tiny(tmp_path_factory.mktemp("tiny3") / "qwen3_vl-1m", "qwen3_vl", "1m", seed=0)


FAMILY_DIRS = {"qwen2_5_vl": "tiny_model_dir", "qwen2_vl": "tiny_qwen2_dir", "qwen3_vl": "tiny_qwen3_dir"}
"""The session fixture holding each family's tiny folder."""


@pytest.fixture(params=sorted(FAMILY_DIRS))
def tiny_family_dir(request):
    """The tiny folder of each model family in turn (a test that takes it runs once per family)."""
    return request.getfixturevalue(FAMILY_DIRS[request.param])


def draw_toy_samples(folder, n=8, size=112, seed=0, detection_every=4):
    """Two-colour circle images: classification ("red"/"blue") and, every `detection_every`-th (0: never),
    detection of the circle."""
    import random
    from pathlib import Path

    from PIL import Image, ImageDraw

    from visual_rft.data.types import Box, ClassTarget, DetectionTarget, Sample

    folder = Path(folder)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    samples = []
    for i in range(n):
        colour = ("red", "blue")[i % 2]
        x = rng.randint(0, size // 3)
        w = size // 2
        im = Image.new("RGB", (size, size), "white")
        ImageDraw.Draw(im).ellipse((x, x, x + w - 1, x + w - 1), fill=colour)
        path = str(folder / "img" / f"{i}.png")
        im.save(path)
        if detection_every and i % detection_every == detection_every - 1:
            samples.append(
                Sample(
                    f"d{i}",
                    [path],
                    "detection",
                    "Detect all objects belonging to the category 'circle' in the image.",
                    DetectionTarget((Box(x, x, x + w, x + w, "circle"),), "circle"),
                    size,
                    size,
                )
            )
        else:
            samples.append(
                Sample(
                    f"c{i}",
                    [path],
                    "classification",
                    "What colour is the circle?",
                    ClassTarget(colour),
                    size,
                    size,
                )
            )
    return samples


@pytest.fixture
def toy_samples(tmp_path):
    return draw_toy_samples(tmp_path / "toy")


@pytest.fixture
def draw_samples():
    """The drawing function itself, for tests that need other counts, sizes or tasks."""
    return draw_toy_samples


@pytest.fixture(scope="session")
def load_bench():
    """Import a script of bench/ by name (bench/ is not a package): load_bench("trl_setup")."""
    import importlib.util
    from pathlib import Path

    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def policy_inputs():
    """(model_dir, samples) -> (model, processor, processor inputs, end-of-turn ids, pad id), on CPU."""
    from visual_rft.models.inputs import encode_prompts
    from visual_rft.models.loading import load_model, load_processor

    def load(model_dir, samples):
        model, processor = load_model(model_dir, device="cpu"), load_processor(model_dir)
        inputs, _ = encode_prompts(samples, processor, "resized_pixels")
        tok = processor.tokenizer
        return model, processor, inputs, [tok.convert_tokens_to_ids("<|im_end|>")], tok.pad_token_id

    return load


@pytest.fixture
def mixed_size_samples(toy_samples, tmp_path):
    """Two samples whose images differ in size (so prompts differ in length and need left padding)."""
    from PIL import Image

    big = tmp_path / "big.png"
    Image.open(toy_samples[1].image).resize((112, 84)).save(big)
    s1 = toy_samples[1]
    return [toy_samples[0], type(s1)(s1.id, [str(big)], s1.task, s1.problem + " Look closely.", s1.target)]


@pytest.fixture
def letters_reward(tmp_path, monkeypatch):
    """A user reward (module:function) with spread even for an untrained model's text: advantages are not
    all zero. Written to tmp_path/toy_rewards.py, importable in this process; returns its name."""
    (tmp_path / "toy_rewards.py").write_text(
        "def letters(completion, solution):\n    return sum(c.isalpha() for c in completion) / 100\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return "toy_rewards:letters"
