"""Load policy/reference/processor from local folders; coordinate conventions; LoRA; the tiny model."""

from visual_rft.models.processor import QwenVLImageProcessor, register_auto_classes

register_auto_classes()

__all__ = ["QwenVLImageProcessor", "register_auto_classes"]
