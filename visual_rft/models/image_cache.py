"""A frozen vision tower's output, kept per image after its first encoding (`model.cache_images`).

When nothing of the vision side trains (`model.freeze_vision`, or a LoRA run, whose adapters sit in the
language model only), an image's tokens are the same at every step, so a run that sees each image many
times (the pre-training recipe's locate and align stages: 3,000-8,000 images, 24,000-48,000 sequences)
encodes each one once. The cache holds, per image file, the tower's merged tokens (and Qwen3-VL's deepstack
features), detached, on the model's device: n_tokens x hidden x 4 bytes an image (64 x 192 x 4 = 48 KB
for the world's 224-px images and the 5m model; a 7B model's 1,024 tokens of 3,584 are 14 MB, so a large
real dataset may not fit: the option is off by default).
"""

from __future__ import annotations

import torch

from visual_rft.models.forward import ImageFeatures, core_model, encode_images

__all__ = ["ImageCache", "check_cacheable"]


def check_cacheable(model) -> None:
    """Refuse `model.cache_images` when any parameter of the vision side trains: its tokens would change."""
    training = [n for n, p in core_model(model).model.visual.named_parameters() if p.requires_grad]
    if training:
        raise ValueError(
            "model.cache_images=true needs a frozen vision tower (model.freeze_vision=true or a LoRA run), "
            f"but {len(training)} of its parameters train (first: {training[0]})"
        )


class ImageCache:
    """Image file -> its vision features, computed on first use without gradient."""

    def __init__(self):
        self.store: dict[str, ImageFeatures] = {}
        """Per image path: its merged tokens [n_i, H] and deepstack features K x [n_i, H]."""
        self.hits = 0
        """Images served from the store (for the log and the tests)."""

    def features(
        self, model, paths: list[str], pixel_values: torch.Tensor, image_grid_thw: torch.Tensor
    ) -> ImageFeatures:
        """The features of `paths` in order, as `encode_images(model, pixel_values, image_grid_thw)` would
        give them: the images not seen before are encoded in one call (their rows of `pixel_values`)."""
        patches = image_grid_thw.prod(dim=1).tolist()  # [I] patch rows of each image
        merge = core_model(model).config.vision_config.spatial_merge_size ** 2
        missing = [i for i, p in enumerate(paths) if p not in self.store]
        if missing:
            rows = torch.split(pixel_values, patches)  # I x [P_i, C*t*p*p]
            with torch.no_grad():
                out = encode_images(
                    model, torch.cat([rows[i] for i in missing]), image_grid_thw[missing]
                )  # tokens [n, H], deepstack K x [n, H]
            sizes = [patches[i] // merge for i in missing]  # merged tokens of each new image
            tokens = out.tokens.split(sizes)  # new x [n_i, H]
            deep = [f.split(sizes) for f in out.deepstack]  # K x new x [n_i, H]
            for j, i in enumerate(missing):
                self.store[paths[i]] = ImageFeatures(tokens[j], [f[j] for f in deep])
        self.hits += len(paths) - len(missing)
        parts = [self.store[p] for p in paths]
        depth = len(parts[0].deepstack)
        return ImageFeatures(
            torch.cat([f.tokens for f in parts]),  # [n, H]
            [torch.cat([f.deepstack[k] for f in parts]) for k in range(depth)],  # K x [n, H]
        )
