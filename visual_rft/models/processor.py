"""An image-only Qwen-VL processor, registered with transformers' Auto classes.

The stock `Qwen2_5_VLProcessor` insists on a video processor, and transformers' video processors need
torchvision. This subclass keeps the same text/image behaviour (same image tokens, same chat template,
the PIL image processor) and drops the video part, so `AutoProcessor.from_pretrained(dir)` works on a
machine without torchvision once `visual_rft.models` is imported.
"""

from __future__ import annotations

from transformers import AutoProcessor, PretrainedConfig
from transformers.models.qwen2_5_vl.processing_qwen2_5_vl import Qwen2_5_VLProcessor
from transformers.processing_utils import ProcessorMixin


class QwenVLImageProcessor(Qwen2_5_VLProcessor):
    """`Qwen2_5_VLProcessor` without the video processor: images and text only."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
        self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    def __call__(self, images=None, text=None, videos=None, **kwargs):
        if videos is not None:
            raise ValueError("QwenVLImageProcessor handles images only; use the stock processor for videos")
        return super().__call__(images=images, text=text, **kwargs)


class _ProcessorRegistration(PretrainedConfig):
    """Registration key only: lets AutoProcessor find `QwenVLImageProcessor` by its saved class name."""

    model_type = "visual_rft_image_processor_registration"


def register_auto_classes() -> None:
    """Make `AutoProcessor.from_pretrained` resolve 'QwenVLImageProcessor' (idempotent)."""
    AutoProcessor.register(_ProcessorRegistration, QwenVLImageProcessor, exist_ok=True)
