"""Load a policy, a reference and a processor from a local Hugging Face folder.

A folder is an ordinary Hugging Face model folder (config.json) or a peft LoRA adapter (adapter_config.json,
as a LoRA run's checkpoint-N/model is): an adapter loads on top of its base model (the folder named by
`base_model_name_or_path`) and is merged, so everything that takes a model folder takes an adapter too;
`merge_adapter` writes the merged model as an ordinary folder. The model family comes from the config's
`model_type` (never from the folder's name) and decides the coordinate convention the model answers in.
`coord_frame` gives the `visual_rft.data.coords.CoordFrame` for one image, using the processor's own resize
rule, so prompts, rewards and metrics agree with what the model saw.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

from visual_rft.data.coords import CoordFrame
from visual_rft.models.processor import register_auto_classes
from visual_rft.models.text_distance import hold_text_distance

CONVENTION_BY_FAMILY = {
    "qwen2_vl": "norm1000",  # Qwen2-VL: integers 0-1000 of the original image
    "qwen2_5_vl": "resized_pixels",  # Qwen2.5-VL: pixels of the resized image
    "qwen3_vl": "norm1000",  # Qwen3-VL: relative 0-1000 again
}
"""The coordinate convention of each known family (its config's model_type)."""


def resolve_device(device: str | None = None) -> torch.device:
    """ "auto"/None -> cuda when available, else cpu."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """ "auto"/None -> bf16 on a GPU that supports it, fp32 otherwise (bf16 is 10-20x slower on CPU)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    names = {
        "fp32": torch.float32,
        "float32": torch.float32,
        "bf16": torch.bfloat16,
        "bfloat16": torch.bfloat16,
        "fp16": torch.float16,
        "float16": torch.float16,
    }
    if dtype not in names:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {sorted(names)} or 'auto'")
    return names[dtype]


def resolve_attention(name: str | None, device: torch.device) -> str:
    """ "auto"/None -> flash_attention_2 on a CUDA device where the flash-attn package is installed, sdpa
    otherwise (PyTorch's fused attention, on every device); other names pass through to transformers."""
    if name in (None, "auto"):
        flash = device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None
        return "flash_attention_2" if flash else "sdpa"
    return name


def check_model_folder(path: str | os.PathLike) -> Path:
    """The folder with the model's config.json: `path` itself, or the base model of a LoRA adapter."""
    path = Path(path)
    if is_adapter(path):
        return base_folder(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{path}: not a local model folder (no config.json, no adapter_config.json). visual-rft loads "
            "models from local folders only; build a tiny one with `vrft model tiny DIR` or download a "
            "model yourself."
        )
    return path


def is_model_folder(path: str | os.PathLike) -> bool:
    """Whether `path` is a model folder `load_model` takes: config.json, or a LoRA adapter."""
    return (Path(path) / "config.json").is_file() or is_adapter(path)


def is_adapter(path: str | os.PathLike) -> bool:
    """Whether `path` is a peft adapter folder (adapter_config.json and no config.json of its own)."""
    path = Path(path)
    return (path / "adapter_config.json").is_file() and not (path / "config.json").is_file()


def base_folder(adapter: str | os.PathLike) -> Path:
    """The base model folder a LoRA adapter was trained on (its adapter_config.json says which)."""
    config = json.loads((Path(adapter) / "adapter_config.json").read_text())
    base = config.get("base_model_name_or_path")
    if not base or not (Path(base) / "config.json").is_file():
        raise FileNotFoundError(
            f"{adapter}: a LoRA adapter whose base model folder {base!r} (base_model_name_or_path in "
            "adapter_config.json) is not a local model folder; put the base there or edit that field"
        )
    return Path(base)


def model_family(path_or_config) -> str:
    """The family ('qwen2_vl', 'qwen2_5_vl', ...) from the config's model_type."""
    config = path_or_config
    if isinstance(path_or_config, (str, os.PathLike)):
        config = AutoConfig.from_pretrained(check_model_folder(path_or_config))
    return config.model_type


def coord_convention(family: str) -> str:
    """The coordinate convention a family answers in (see `visual_rft.data.coords`)."""
    if family not in CONVENTION_BY_FAMILY:
        raise ValueError(
            f"no coordinate convention known for model_type {family!r}; supported: {sorted(CONVENTION_BY_FAMILY)}"
        )
    return CONVENTION_BY_FAMILY[family]


def resized_size(processor, width: int, height: int) -> tuple[int, int]:
    """(width, height) of an image after the processor's smart resize."""
    ip = processor.image_processor
    min_pixels = getattr(ip, "min_pixels", None) or ip.size["shortest_edge"]
    max_pixels = getattr(ip, "max_pixels", None) or ip.size["longest_edge"]
    h, w = smart_resize(
        height, width, factor=ip.patch_size * ip.merge_size, min_pixels=min_pixels, max_pixels=max_pixels
    )
    return w, h


def coord_frame(convention: str, processor, width: int, height: int) -> CoordFrame:
    """The coordinate frame of one image for a model of the given convention."""
    resized = resized_size(processor, width, height) if convention == "resized_pixels" else None
    return CoordFrame(convention, (width, height), resized)


def load_processor(path: str | os.PathLike, max_pixels: int = 0):
    """The processor of a local folder (tokenizer padded on the left, for generation); an adapter folder's
    own processor files when it has them (a checkpoint does), else its base model's. `max_pixels` > 0:
    the largest image area the image processor resizes to, instead of the folder's own."""
    register_auto_classes()
    path = Path(path)
    own = is_adapter(path) and (path / "tokenizer_config.json").is_file()
    processor = AutoProcessor.from_pretrained(path if own else check_model_folder(path))
    processor.tokenizer.padding_side = "left"
    if max_pixels:
        ip = processor.image_processor
        smallest = getattr(ip, "min_pixels", None) or ip.size["shortest_edge"]
        if max_pixels < smallest:
            raise ValueError(f"max_pixels={max_pixels} is below the processor's min_pixels={smallest}")
        if getattr(ip, "max_pixels", None):  # processors that keep the old attribute beside `size`
            ip.max_pixels = max_pixels
        ip.size["longest_edge"] = max_pixels  # a dict or a SizeDict: both take item assignment
    return processor


def load_model(
    path: str | os.PathLike,
    *,
    dtype: str | torch.dtype | None = "auto",
    device: str | None = "auto",
    attn_implementation: str | None = "auto",
):
    """A model from a local folder, on `device`, in `dtype`, in eval mode. A LoRA adapter folder loads on
    its base and is merged into it (a plain transformers model comes back). A config's `text_distance` is
    installed (`models.text_distance`)."""
    dev = resolve_device(device)
    # an absolute name_or_path: the adapters saved from this model name their base wherever the run goes
    folder = check_model_folder(path).resolve()
    model = AutoModelForImageTextToText.from_pretrained(
        folder,
        dtype=resolve_dtype(dtype, dev),
        attn_implementation=resolve_attention(attn_implementation, dev),
        # no Hub kernels: transformers would fetch them (kernels-community/...) at the first model.train() on
        # a GPU, and fail offline; nothing this library runs is downloaded
        use_kernels=False,
    )
    if is_adapter(path):
        model = PeftModel.from_pretrained(model, str(path)).merge_and_unload()
    hold_text_distance(model)
    return model.to(dev).eval()


def merge_adapter(adapter: str | os.PathLike, out_dir: str | os.PathLike, dtype: str = "fp32") -> Path:
    """Merge a LoRA adapter into its base and save an ordinary Hugging Face folder (model, processor)."""
    if not is_adapter(adapter):
        raise ValueError(f"{adapter}: not a LoRA adapter folder (no adapter_config.json)")
    out = Path(out_dir)
    if is_model_folder(out):  # the adapter's own folder, its base's, or any other model: never written over
        raise FileExistsError(
            f"{out}: already holds a model (config.json or adapter_config.json); merge into a new folder"
        )
    model = load_model(adapter, dtype=dtype, device="cpu")
    model.save_pretrained(out)
    load_processor(adapter).save_pretrained(out)
    return out
