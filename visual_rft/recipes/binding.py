"""Recipe piece: teach the language model to look at the object it is asked about (binding).

RESULTS.md section 13: in scenes of several objects the language model's heads find the objects but split
their attention among them whatever the question asks, so a box read from them lands near objects and on
none. This stage objective holds that split, read from the world's exact boxes: at every position that
predicts a digit of box j of the reference answer, of the attention that the chosen heads give to objects'
cells, the share on box j's object should be all of it:

    selectivity = sum of attention on the asked object's cells / sum of attention on any object's cells
    binding loss = mean over (held layer, held head, digit position) of -log(selectivity)

The position that predicts a box's first digit is where the pick is made from the question alone; at the
later digits the answer already says where the object is (RESULTS.md section 22: held out, selectivity 0.57 at
the first digit against 0.89 over all of them). `pick_weight` adds the same loss over those first positions only,
and the log keeps their selectivity apart (`binding/first_selectivity`). A grounding answer whose think names the
object's place first (`sft.grounding_think` with `{region}`: "It is at the top left.") makes the pick at those
words, and the loss holds them too: its first read is then the place's first word (RESULTS.md section 35). A
detection think naming its boxes' places in order (`sft.detection_think`) has the k-th place held on the k-th
box's instance (section 47).
`presence_weight` holds the same share at the position that predicts a detection answer's first token, where
the answer decides between a box and "No Objects", on the category's instances (RESULTS.md section 43), and
`continue_weight` at each box's close, where it decides whether another box follows, on the instances not yet
written (section 45).

Only the split among objects is held: how much a head looks at objects at all, at background or at text is
left free (that is where a head reads a lone object's position: RESULTS.md section 11). A position whose
scene has no other object (selectivity is 1 there) or whose object owns no cell is not counted. Nothing is
added to the model: the loss reads the attention weights the forward computed, and a checkpoint is a plain
Qwen2.5-VL. Only eager attention returns its weights, so a binding stage loads the model with
`HELD_EAGER` (`models/attention.py`): SDPA everywhere except in the held layers, which run eager
(`model.attn_implementation=eager` works too, eager in every layer, slower).

    BindingSFTTrainer(sft_config, BindingConfig(weight=1.0), samples).fit()
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import yaml

from visual_rft.config import SFTTrainConfig
from visual_rft.data.types import DetectionTarget, Sample
from visual_rft.models.attention import HELD_EAGER, WEIGHTED_ATTENTION, AttentionRecorder, check_layers
from visual_rft.models.forward import Rollout, core_model
from visual_rft.recipes.answer_reads import (
    answer_start,
    asked_instances,
    asked_objects,
    box_ends,
    digit_targets,
    first_reads,
)
from visual_rft.recipes.position import ResidualRecorder, check_position_layer, position_loss
from visual_rft.sft.trainer import SFTTrainer
from visual_rft.world.dense import cell_grid, object_cells, owner_boxes


@dataclass
class BindingConfig:
    weight: float = 0.0
    """Weight of the binding loss beside the answers' NLL (0: off, a plain SFT stage)."""
    layers: list[int] = field(default_factory=lambda: [-2, -1])
    """Language-model layers whose heads are held (negative: counted from the last)."""
    heads: list[int] = field(default_factory=list)
    """Heads of those layers that are held ([]: all of them)."""
    pick_weight: float = 0.0
    """Weight of the binding loss at only the position that predicts each box's first digit, added to `weight`'s
    mean over every digit position: there the heads must pick the object from the question alone, before the
    answer's digits say where it is (RESULTS.md section 22); 0: off."""
    position_weight: float = 0.0
    """Weight of the position loss (`recipes/position.py`: each image token's cell and its object's box
    linearly readable from the residual stream entering `position_layer`); 0: off."""
    position_layer: int = 2
    """The decoder layer whose input residual stream the position loss reads (1 .. layers - 1)."""
    presence_weight: float = 0.0
    """Weight of the binding loss at the position that predicts a detection answer's first token (a box or "No"),
    where the answer decides whether the asked category is there: of the held heads' attention on objects, the
    share on the category's instances (all of them, as one object) should be all of it. A category the scene
    does not show has nothing to look at: its questions train on the NLL alone. Not limited by `kinds`. With
    `sft.aggregation=token`, on presence questions, held-out answers right 52.7% -> 70.8% (`token` without it:
    50%; RESULTS.md section 43); in a chain phase on the base detection samples (79% present) the answers tip
    to boxes for every question (section 44). 0: off."""
    continue_weight: float = 0.0
    """Weight of the same loss at each position where a detection answer decides whether another box follows (the
    token closing a box's entry, `box_ends`): the share on the asked instances not yet written (as one object).
    After the last box nothing is left to look at: the NLL alone there. A model that reads presence writes one box
    where 1-4 are asked; held here, it reads whether another instance is left (the close's AUC 0.60 -> 0.72) and
    writes longer lists, their later boxes on no instance yet (RESULTS.md section 45). Not limited by `kinds`; 0:
    off."""
    kinds: list[str] = field(default_factory=list)
    """The sample kinds (`sample_kind`: a grounding kind, "single", "detection", ...) whose digits the binding
    loss holds ([]: every kind); the others' answers train on the NLL (and the position loss) alone, their
    heads free to pick as they learn to (RESULTS.md section 30: `extreme` held with `name` takes `name`'s pick)."""

    @property
    def reads_attention(self) -> bool:
        """A binding loss is on (over every digit, the first ones, or where a detection answer decides): the held
        heads' weights are read."""
        return self.weight > 0 or self.pick_weight > 0 or self.presence_weight > 0 or self.continue_weight > 0


def check_binding(binding: BindingConfig, layers: int, heads: int) -> None:
    """The binding config against a language model of `layers` layers of `heads` heads (what it reads)."""
    if binding.reads_attention:
        check_layers(binding.layers, layers)
    bad = [h for h in binding.heads if not 0 <= h < heads]
    if bad:
        raise ValueError(f"binding.heads: {bad} are not heads of a {heads}-head layer")
    if binding.position_weight > 0:
        check_position_layer(binding.position_layer, layers)


def sample_kind(sample: Sample) -> str:
    """The sample's kind: its kind in meta (a grounding kind, "single" for one-object scenes, a grounded detection
    kind), else its task."""
    return sample.meta.get("kind", sample.task)


def decisions(
    sample: Sample, text: str, tokenizer, binding: BindingConfig
) -> list[tuple[str, float, int, list[int]]]:
    """(log prefix, weight, answer token index, the objects held) of each position where a detection answer decides:
    its first token (`presence_weight`: the asked category's instances; none when absent) and the close of each box
    (`continue_weight`: the asked instances the answer has not written yet; none after the last)."""
    out = []
    instances, start = asked_instances(sample), answer_start(text, tokenizer)
    if binding.presence_weight > 0 and instances and start is not None:
        out.append(("presence", binding.presence_weight, start, instances))
    if binding.continue_weight > 0 and isinstance(sample.target, DetectionTarget):
        written = asked_objects(sample)  # in the answer's order
        for j, t in enumerate(box_ends(text, tokenizer)):
            left = [i for i in written[j + 1 :] if i >= 0]
            if left:
                out.append(("continue", binding.continue_weight, t, left))
    return out


def selectivity_loss(
    attn: torch.Tensor, owners: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, selectivity, chance) over the positions that count.

    attn: [l, h, Q, N] the held heads' attention from Q query positions over the N image cells;
    owners: [N] the object owning each cell (-1: background); targets: [Q] the asked object of each query.
    loss: mean of -log(selectivity) over l, h and the counted queries (0 when none counts); selectivity: its
    mean (detached); chance: the asked object's cells / all object cells, the selectivity of uniform attention.
    """
    is_target = owners[None, :] == targets[:, None]  # [Q, N]
    is_object = (owners >= 0)[None, :].expand_as(is_target)  # [Q, N]
    others = is_object & ~is_target  # [Q, N]
    counted = is_target.any(1) & others.any(1)  # [Q]
    if not bool(counted.any()):
        zero = attn.sum() * 0.0
        return zero, zero.detach(), zero.detach()
    a = attn[:, :, counted]  # [l, h, q, N]
    on_target = (a * is_target[counted]).sum(-1)  # [l, h, q]
    on_objects = (a * is_object[counted]).sum(-1)  # [l, h, q]
    sel = on_target / on_objects.clamp_min(1e-12)  # [l, h, q]
    loss = -torch.log(sel.clamp_min(1e-6)).mean()
    chance = is_target[counted].sum(1).float() / is_object[counted].sum(1).float()  # [q]
    return loss, sel.detach().mean(), chance.mean()


def selectivity_metrics(prefix: str, n_samples: int, **counted: list[float]) -> dict[str, float]:
    """A binding loss's log: `prefix/NAME`, the mean of each list over the samples it counted (nan: none), and
    `prefix/share`, the share of the micro-batch's `n_samples` that it counted (the lists' length)."""
    n = len(next(iter(counted.values())))
    means = {f"{prefix}/{k}": float(np.mean(v)) if v else math.nan for k, v in counted.items()}
    return {**means, f"{prefix}/share": n / n_samples}


class BindingSFTTrainer(SFTTrainer):
    """SFT plus the binding loss (module docstring) on the world's samples with several objects, and the position
    loss (`recipes/position.py`) on every world scene, each when its weight is above 0."""

    name = "sft+binding"

    def __init__(
        self,
        cfg: SFTTrainConfig,
        binding: BindingConfig,
        samples: list[Sample] | None = None,
        resume: bool = False,
    ):
        attn = cfg.model.attn_implementation
        if binding.reads_attention and attn not in WEIGHTED_ATTENTION:  # before anything loads
            raise ValueError(
                "a binding loss (binding.weight, pick_weight, presence_weight or continue_weight > 0) reads attention "
                f"weights: set model.attn_implementation={HELD_EAGER} "
                f"(eager in the held layers only) or eager (got {attn!r})"
            )
        super().__init__(cfg, samples, resume)
        text = core_model(self.model).config.text_config
        check_binding(binding, text.num_hidden_layers, text.num_attention_heads)
        self.binding = binding
        self.recorder = AttentionRecorder(self.model, binding.layers) if binding.reads_attention else None
        self.residuals = (
            ResidualRecorder(self.model, binding.position_layer) if binding.position_weight > 0 else None
        )
        self.image_id = core_model(self.model).config.image_token_id
        ip = self.processor.image_processor
        self.patch, self.merge = ip.patch_size, ip.merge_size
        self._metrics: dict[str, float] = {}

    def open_run(self):
        logger = super().open_run()
        (self.run_dir / "binding.yaml").write_text(yaml.safe_dump(asdict(self.binding), sort_keys=False))
        return logger

    def auxiliary_loss(
        self, rollout: Rollout, samples: list[Sample], texts: list[str]
    ) -> torch.Tensor | None:
        self._metrics = {}
        parts = [
            self.binding_loss(rollout, samples, texts),
            self.decision_loss(rollout, samples, texts),
            self.position_term(rollout, samples),
        ]
        parts = [p for p in parts if p is not None]
        return sum(parts) if parts else None

    def cells(self, rollout: Rollout, r: int, sample: Sample) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """Row r's image token positions [N], the object owning each cell [N] (-1: background) and the objects'
        boxes [k, 4] in cells of the processor's image."""
        image = (rollout.prompt_ids[r] == self.image_id).nonzero().squeeze(1)  # [N]
        _, h, w = rollout.image_grid_thw[r].tolist()  # one image per world sample
        return (image, *object_cells(sample, h, w, self.patch, self.merge))

    def binding_loss(self, rollout: Rollout, samples: list[Sample], texts: list[str]) -> torch.Tensor | None:
        """The binding loss (module docstring) of one micro-batch, a mean over its samples; None: off or
        nothing counted."""
        if not (self.binding.weight > 0 or self.binding.pick_weight > 0):
            return None
        L, device = rollout.prompt_ids.shape[1], rollout.prompt_ids.device
        losses, sels, picks, chances = [], [], [], []
        for r, (sample, text) in enumerate(zip(samples, texts)):
            if self.binding.kinds and sample_kind(sample) not in self.binding.kinds:
                continue
            targets = digit_targets(text, self.processor.tokenizer, asked_objects(sample))  # [T]
            reads = [t for t, j in enumerate(targets) if j >= 0]
            if not reads:
                continue
            image, owners, _ = self.cells(rollout, r, sample)
            queries = torch.tensor([L + t - 1 for t in reads], device=device)  # [Q] they predict t
            a = self.recorder.rows(r, self.binding.heads, queries, image)  # [l, h, Q, N]
            owner_ids = torch.from_numpy(owners).to(device)  # [N]
            asked = torch.tensor([targets[t] for t in reads], device=device)  # [Q]
            loss, sel, chance = selectivity_loss(a, owner_ids, asked)
            first = first_reads(asked)  # [F] each box's first digit (one object a box)
            pick, pick_sel, _ = selectivity_loss(a[:, :, first], owner_ids, asked[first])
            if float(chance) > 0:
                losses.append(self.binding.weight * loss + self.binding.pick_weight * pick)
                sels.append(float(sel))
                picks.append(float(pick_sel))
                chances.append(float(chance))
        n = len(losses)
        self._metrics.update(
            selectivity_metrics(
                "binding", len(samples), selectivity=sels, first_selectivity=picks, chance=chances
            )
        )
        if not n:
            return None
        mean = torch.stack(losses).mean()  # weighted: binding + pick
        self._metrics["binding/loss"] = mean.item()
        return mean * n / len(samples)  # a mean over the chunk's samples

    def decision_loss(self, rollout: Rollout, samples: list[Sample], texts: list[str]) -> torch.Tensor | None:
        """The binding loss where a detection answer decides (`decisions`: its first token, `presence_weight`; each
        box's close, `continue_weight`) of one micro-batch: the sum over its decisions / its samples (one decision a
        sample: a mean over the samples); None: off or nothing counted. Logged per kind of decision, `share` the
        decisions counted per sample."""
        if self.binding.presence_weight <= 0 and self.binding.continue_weight <= 0:
            return None
        losses = []
        logs = {
            k: ([], [])
            for k, w in (
                ("presence", self.binding.presence_weight),
                ("continue", self.binding.continue_weight),
            )
            if w > 0
        }
        for r, (sample, text) in enumerate(zip(samples, texts)):
            held = decisions(sample, text, self.processor.tokenizer, self.binding)
            if not held:
                continue
            image, owners, _ = self.cells(rollout, r, sample)  # once a sample, for each of its decisions
            for name, weight, t, instances in held:
                loss, sel, chance = self.held_share(rollout, r, image, owners, t, instances)
                if float(chance) > 0:
                    losses.append(weight * loss)
                    logs[name][0].append(float(sel))
                    logs[name][1].append(float(chance))
        for name, (sels, chances) in logs.items():
            self._metrics.update(selectivity_metrics(name, len(samples), selectivity=sels, chance=chances))
        return torch.stack(losses).sum() / len(samples) if losses else None

    def held_share(
        self, rollout: Rollout, r: int, image: torch.Tensor, owners: np.ndarray, t: int, instances: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`selectivity_loss` (loss, selectivity, chance) of the held heads at the position of row r that predicts
        its answer's token t, on `instances` taken as one object (`image`, `owners`: row r's `cells`)."""
        L, device = rollout.prompt_ids.shape[1], rollout.prompt_ids.device
        owners = np.where(np.isin(owners, instances), instances[0], owners)  # [N] the instances as one owner
        query = torch.tensor([L + t - 1], device=device)  # [1] it predicts token t
        a = self.recorder.rows(r, self.binding.heads, query, image)  # [l, h, 1, N]
        asked = torch.tensor([instances[0]], device=device)  # [1]
        return selectivity_loss(a, torch.from_numpy(owners).to(device), asked)

    def position_term(self, rollout: Rollout, samples: list[Sample]) -> torch.Tensor | None:
        """The position loss (`recipes/position.py`) of one micro-batch, over its samples that list their scene's
        objects (`meta.objects`); None: off or fewer than two such samples."""
        if self.residuals is None:
            return None
        device = rollout.prompt_ids.device
        tokens, cells, targets = [], [], []
        for r, sample in enumerate(samples):
            if "objects" not in sample.meta:  # not a world scene (a class answer, a user's file): no boxes
                continue
            image, owners, boxes = self.cells(rollout, r, sample)
            _, h, w = rollout.image_grid_thw[r].tolist()
            tokens.append(self.residuals.hidden[r, image])  # [N, H]
            grid = cell_grid(h // self.merge, w // self.merge)  # [N, 2]
            cells.append(torch.tensor(grid, dtype=torch.float32, device=device))
            targets.append(torch.from_numpy(owner_boxes(boxes, owners)).to(device))  # [N, 4] nan: background
        loss, metrics = position_loss(tokens, cells, targets)
        self._metrics.update(metrics)
        return None if loss is None else self.binding.position_weight * loss

    def auxiliary_metrics(self) -> dict[str, float]:
        return self._metrics
