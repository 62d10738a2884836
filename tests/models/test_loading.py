import shutil

import pytest
import torch

from visual_rft.data.coords import CoordFrame
from visual_rft.models.loading import (
    base_folder,
    coord_convention,
    coord_frame,
    is_adapter,
    is_model_folder,
    load_model,
    load_processor,
    merge_adapter,
    model_family,
    resized_size,
    resolve_attention,
    resolve_dtype,
)


def test_family_comes_from_config_not_folder_name(tiny_model_dir, tmp_path):
    misleading = tmp_path / "Qwen2-VL-2B-Instruct"  # the name says Qwen2-VL; the config says Qwen2.5-VL
    shutil.copytree(tiny_model_dir, misleading)
    assert model_family(misleading) == "qwen2_5_vl"
    assert coord_convention(model_family(misleading)) == "resized_pixels"


def test_qwen2_vl_answers_in_thousandths(tiny_qwen2_dir):
    assert coord_convention(model_family(tiny_qwen2_dir)) == "norm1000"


def test_unknown_family_is_a_clear_error():
    with pytest.raises(ValueError, match="llava"):
        coord_convention("llava")


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a local model folder"):
        load_model(tmp_path / "nothing")


def test_load_model_defaults_to_fp32_on_cpu(tiny_model_dir):
    model = load_model(tiny_model_dir, device="cpu")
    assert model.dtype == torch.float32 and not model.training
    assert resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_dtype("fp8", torch.device("cpu"))


def test_resized_size_matches_the_processor(tiny_model_dir):
    from PIL import Image

    processor = load_processor(tiny_model_dir)
    for w, h in [(112, 112), (200, 130), (640, 480), (30, 400)]:
        grid = processor.image_processor(Image.new("RGB", (w, h)), return_tensors="pt")["image_grid_thw"][0]
        patch = processor.image_processor.patch_size
        assert resized_size(processor, w, h) == (int(grid[2]) * patch, int(grid[1]) * patch)
    frame = coord_frame("resized_pixels", processor, 640, 480)
    assert isinstance(frame, CoordFrame) and frame.resized == resized_size(processor, 640, 480)
    assert coord_frame("norm1000", processor, 640, 480).resized is None


def test_max_pixels_caps_the_image_area_the_tower_sees(tiny_model_dir):
    from PIL import Image

    image = Image.new("RGB", (640, 480))
    own = load_processor(tiny_model_dir)
    capped = load_processor(tiny_model_dir, max_pixels=224 * 168)
    patch = capped.image_processor.patch_size
    grid = capped.image_processor(image, return_tensors="pt")["image_grid_thw"][0]  # [t, h, w] in patches
    w, h = int(grid[2]) * patch, int(grid[1]) * patch
    assert w * h <= 224 * 168 < own.image_processor.size["longest_edge"]  # the folder's own limit is larger
    assert resized_size(capped, 640, 480) == (w, h)  # coordinates follow the same resize
    assert resized_size(own, 640, 480) != (w, h)
    with pytest.raises(ValueError, match="below the processor's min_pixels"):
        load_processor(tiny_model_dir, max_pixels=100)


def test_an_adapter_folder_names_its_base_and_loads_merged(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model

    base = load_model(tiny_model_dir, device="cpu")
    peft_model = get_peft_model(base, LoraConfig(r=2, target_modules=r".*language_model.*\.q_proj"))
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    assert is_adapter(adapter) and is_model_folder(adapter) and not is_adapter(tiny_model_dir)
    assert base_folder(adapter) == tiny_model_dir.resolve()  # saved absolute: the run may move
    assert model_family(adapter) == "qwen2_5_vl"
    assert load_processor(adapter).tokenizer.pad_token_id is not None  # no processor files: the base's
    assert not hasattr(load_model(adapter, device="cpu"), "peft_config")  # merged: a plain model
    with pytest.raises(ValueError, match="not a LoRA adapter"):
        merge_adapter(tiny_model_dir, tmp_path / "out")
    files = {folder: sorted(p.name for p in folder.iterdir()) for folder in (adapter, tiny_model_dir)}
    for folder in files:  # merged into the adapter's own folder or its base's: refused, nothing written
        with pytest.raises(FileExistsError, match="already holds a model"):
            merge_adapter(adapter, folder)
    assert {folder: sorted(p.name for p in folder.iterdir()) for folder in files} == files
    config = (adapter / "adapter_config.json").read_text()
    (adapter / "adapter_config.json").write_text(config.replace(str(tiny_model_dir.resolve()), "/nowhere"))
    with pytest.raises(FileNotFoundError, match="base_model_name_or_path"):
        load_model(adapter, device="cpu")
    assert not is_model_folder(tmp_path)


def test_a_loaded_model_asks_for_no_hub_kernels(tiny_model_dir):
    # transformers turns Hub kernels on by default where the kernels package is installed; on a GPU the first
    # model.train() then fetches kernels-community/liger-kernels and fails offline (seen on an H200 here)
    model = load_model(tiny_model_dir, device="cpu")
    model.train()
    assert model.use_kernels is False


def test_attention_auto_is_sdpa_on_a_cpu():
    assert resolve_attention("auto", torch.device("cpu")) == "sdpa"
    assert resolve_attention("eager", torch.device("cpu")) == "eager"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_attention_auto_on_a_gpu_takes_flash_attention_when_installed(tiny_model_dir):
    import importlib.util

    cuda = torch.device("cuda")
    flash = importlib.util.find_spec("flash_attn") is not None
    assert resolve_attention("auto", cuda) == ("flash_attention_2" if flash else "sdpa")
    model = load_model(tiny_model_dir, device="cuda")  # dtype auto: bf16 where the GPU has it
    assert model.config._attn_implementation == resolve_attention("auto", cuda)


def test_qwen3_vl_answers_in_0_1000_and_loads(tiny_qwen3_dir, tmp_path):
    misleading = tmp_path / "Qwen2.5-VL-3B-Instruct"  # the name says Qwen2.5-VL; the config says Qwen3-VL
    shutil.copytree(tiny_qwen3_dir, misleading)
    assert model_family(misleading) == "qwen3_vl" and coord_convention("qwen3_vl") == "norm1000"
    model = load_model(misleading, device="cpu")
    assert type(model).__name__ == "Qwen3VLForConditionalGeneration" and not model.training
