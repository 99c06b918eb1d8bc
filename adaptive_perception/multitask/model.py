"""AdaMTL's parts (thesis ch. 7): hierarchical ViT encoder, task decoders, policies.

The encoder is shared, each task has its own multi-scale fusion and decoder, and the
policy networks choose, per frame, which blocks and which tokens run.

Two ways through the same weights:

* ``forward`` (training and the masked reference): every block runs on every token and
  the decisions enter as 0/1 masks - a kept token gets the block's update, a dropped one
  passes through unchanged, and attention gives dropped tokens no weight as keys.
  Decisions are Gumbel-sigmoid with a straight-through estimator while training, and a
  plain threshold on the logits at inference (no noise: the published code left the
  noise on at test time).
* ``run_adaptive`` (inference, batch 1): the same decisions, but a skipped block is not
  called and a block only sees the tokens it keeps - they are gathered out before
  attention and the MLP and scattered back after. Its output equals the masked
  reference; only the work differs. This is what the runtime mirrors with ONNX graphs.

A policy is task-aware (one sub-network per task, decisions combined by logical OR,
the thesis's add-and-clamp) or task-agnostic (one sub-network). Per stage, one small
two-layer network reads the stage's input tokens and gives a logit per block (from the
pooled tokens) and a logit per token and block.
"""

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from adaptive_perception.multitask.scenes import CLASS_NAMES, TASKS

DECODER_GROUPS = 8  # group norm groups in each task decoder
GUMBEL_TAU = 5.0  # the thesis's temperature; hard decisions at sigmoid 0.5
MEAN, STD = 0.5, 0.25  # image normalisation: (pixel / 255 - MEAN) / STD


def normalise(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W), as training and every runtime feed it."""
    tensor = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return (tensor / 255.0 - MEAN) / STD


@dataclass(frozen=True)
class PolicySpec:
    """A compute target: the share of blocks and of tokens the policy should keep."""

    block_target: float
    token_target: float
    task_aware: bool = True


DEFAULT_POLICIES = {
    'high': PolicySpec(0.9, 0.6),      # the thesis's H
    'low': PolicySpec(0.5, 0.5),       # the thesis's L
    'low_agnostic': PolicySpec(0.5, 0.5, task_aware=False),  # the ablation's comparison
}


def parse_targets(entries) -> dict:
    """``['low=0.7/0.6', ...]`` -> the default policies with those targets changed."""
    policies = dict(DEFAULT_POLICIES)
    for entry in entries:
        name, _, value = entry.partition('=')
        if name not in policies:
            raise ValueError(f'{entry!r}: policy {name!r} is not one of {", ".join(policies)}')
        try:
            blocks, tokens = (float(v) for v in value.split('/'))
        except ValueError:
            raise ValueError(f'{entry!r}: expected POLICY=BLOCKS/TOKENS, '
                             f'e.g. low=0.7/0.6') from None
        if not (0 < blocks <= 1 and 0 < tokens <= 1):
            raise ValueError(f'{entry!r}: shares must be in (0, 1]')
        policies[name] = PolicySpec(blocks, tokens, policies[name].task_aware)
    return policies


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the model; stored in checkpoints and the manifest."""

    image_size: int = 64
    patch: int = 4
    dims: tuple = (32, 64, 128)
    depths: tuple = (2, 2, 4)
    head_dim: int = 32
    mlp_ratio: int = 4
    decoder_dim: int = 32
    policy_hidden: int = 16
    tasks: tuple = TASKS
    class_names: tuple = CLASS_NAMES
    policies: dict = field(default_factory=lambda: dict(DEFAULT_POLICIES))

    def to_json(self) -> dict:
        """Plain JSON types (tuples become lists, specs become dicts)."""
        data = asdict(self)
        data['policies'] = {name: asdict(spec) for name, spec in self.policies.items()}
        return data

    @classmethod
    def from_json(cls, data: dict) -> 'ModelConfig':
        """Inverse of ``to_json``."""
        data = dict(data)
        data['policies'] = {name: PolicySpec(**spec) for name, spec in data['policies'].items()}
        for key in ('dims', 'depths', 'tasks', 'class_names'):
            data[key] = tuple(data[key])
        return cls(**data)

    def __post_init__(self):
        """Refuse an input size or decoder width the model cannot be built at."""
        step = self.patch * 2 ** (len(self.dims) - 1)  # every stage merges 2x2 tokens
        if self.image_size <= 0 or self.image_size % step:
            raise ValueError(f'image size {self.image_size}: must be a positive multiple of '
                             f'{step} (patch {self.patch}, {len(self.dims)} stages)')
        if self.decoder_dim <= 0 or self.decoder_dim % DECODER_GROUPS:
            raise ValueError(f'decoder width {self.decoder_dim}: must be a positive multiple '
                             f'of {DECODER_GROUPS} (its group norm groups)')

    def grid(self, stage: int) -> int:
        """Tokens per side in ``stage``."""
        return self.image_size // self.patch // 2 ** stage


def block_flops(dim: int, tokens: int, mlp_ratio: int) -> int:
    """FLOPs of one transformer block on ``tokens`` tokens (matrix products only).

    Linear layers 2 x (4 + 2 x mlp_ratio) x C^2 per token (qkv, projection, MLP), and
    attention 4 x C x n^2 (scores and weighted sum); the export measures the same.
    """
    return 2 * (4 + 2 * mlp_ratio) * dim * dim * tokens + 4 * dim * tokens * tokens


def output_channels(task: str, class_count: int) -> int:
    """Channels of a task's raw output."""
    return {'segmentation': class_count, 'depth': 1, 'normals': 3, 'saliency': 1}[task]


class Attention(nn.Module):
    """Global multi-head self-attention; dropped tokens (mask 0) are no keys."""

    def __init__(self, dim: int, head_dim: int):
        super().__init__()
        self.heads = dim // head_dim
        self.scale = head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N, C) -> (B, N, C); ``keep`` (B, N) in [0, 1] weights the keys."""
        batch, tokens, dim = x.shape
        q, k, v = self.qkv(x).reshape(batch, tokens, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        scores = (q * self.scale) @ k.transpose(-2, -1)
        if keep is None:
            weights = scores.softmax(-1)
        else:  # softmax over kept keys only, differentiable in ``keep`` (DynamicViT's form)
            scores = scores - scores.amax(-1, keepdim=True).detach()
            weights = scores.exp() * keep[:, None, None, :]
            weights = weights / (weights.sum(-1, keepdim=True) + 1e-6)
        out = (weights @ v).transpose(1, 2).reshape(batch, tokens, dim)
        return self.proj(out)


class Block(nn.Module):
    """Pre-norm transformer block; with ``keep`` only kept tokens take its update."""

    def __init__(self, dim: int, head_dim: int, mlp_ratio: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, head_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(),
                                 nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens (B, N, C) -> (B, N, C)."""
        if keep is None:
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))
        gate = keep[..., None]
        x = x + gate * self.attn(self.norm1(x), keep)
        return x + gate * self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """Image -> stage-0 tokens: a strided convolution, norm, learned positions."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        dim = config.dims[0]
        self.proj = nn.Conv2d(3, dim, config.patch, config.patch)
        self.norm = nn.LayerNorm(dim)
        self.position = nn.Parameter(torch.zeros(1, config.grid(0) ** 2, dim))
        nn.init.trunc_normal_(self.position, std=0.02)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Normalised image (B, 3, H, W) -> tokens (B, N0, C0)."""
        return self.norm(self.proj(image).flatten(2).transpose(1, 2)) + self.position


class PatchMerging(nn.Module):
    """2x2 neighbouring tokens -> one token of twice the width (Swin's merging)."""

    def __init__(self, dim: int, out_dim: int, grid: int):
        super().__init__()
        self.grid = grid
        self.norm = nn.LayerNorm(4 * dim)
        self.reduce = nn.Linear(4 * dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, grid^2, C) -> (B, (grid/2)^2, out_dim)."""
        batch, _, dim = x.shape
        half = self.grid // 2
        x = x.reshape(batch, half, 2, half, 2, dim).permute(0, 1, 3, 4, 2, 5)
        return self.reduce(self.norm(x.reshape(batch, half * half, 4 * dim)))


class StagePolicy(nn.Module):
    """One stage's decision maker: block logits from pooled tokens, token logits per block."""

    def __init__(self, dim: int, depth: int, hidden: int):
        super().__init__()
        self.block = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, depth))
        self.token = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, depth))

    def forward(self, x: torch.Tensor) -> tuple:
        """Tokens (B, N, C) -> block logits (B, depth), token logits (B, depth, N)."""
        return self.block(x.mean(1)), self.token(x).transpose(1, 2)


class Policy(nn.Module):
    """The stage policies of one compute target: per task (task-aware) or shared."""

    def __init__(self, config: ModelConfig, spec: PolicySpec):
        super().__init__()
        self.spec = spec
        owners = config.tasks if spec.task_aware else ('all',)
        self.owners = owners
        self.stages = nn.ModuleDict({
            owner: nn.ModuleList(StagePolicy(dim, depth, config.policy_hidden)
                                 for dim, depth in zip(config.dims, config.depths, strict=True))
            for owner in owners})

    def owners_for(self, tasks) -> tuple:
        """Sub-networks whose decisions count when ``tasks`` run."""
        return tuple(t for t in tasks if t in self.stages) if self.spec.task_aware else ('all',)

    def logits(self, stage: int, x: torch.Tensor, owners) -> list:
        """[(block logits, token logits)] of ``owners`` for ``stage``'s input tokens."""
        return [self.stages[owner][stage](x) for owner in owners]


def decide(logits: torch.Tensor, training: bool, noise_scale: float = 1.0) -> torch.Tensor:
    """Logits -> 0/1 decisions: Gumbel-sigmoid straight-through in training, else a threshold.

    ``noise_scale`` scales the Gumbel noise; at 0 training decides as inference does
    (with the straight-through gradient still flowing).
    """
    if not training:
        return (logits > 0).to(logits.dtype)
    uniform = torch.rand_like(logits).clamp(1e-6, 1 - 1e-6)
    noise = torch.log(uniform) - torch.log1p(-uniform)  # difference of two Gumbels
    soft = torch.sigmoid((logits + noise_scale * noise) / GUMBEL_TAU)
    return (soft > 0.5).to(soft.dtype) - soft.detach() + soft


def combine(masks: list) -> torch.Tensor:
    """Task decisions -> one: add and clamp at 1 (logical OR, the thesis's combination).

    The clamp passes gradients straight through: where two tasks keep a token, a plain
    clamp would give neither any gradient, and the efficiency loss could never make
    the union smaller than "everything" that policy initialisation starts from.
    """
    total = masks[0]
    for mask in masks[1:]:
        total = total + mask
    return total + (total.clamp(max=1.0) - total).detach()


class TaskDecoder(nn.Module):
    """Learned multi-scale fusion of the stage outputs, then two layers, at image size."""

    def __init__(self, config: ModelConfig, channels: int):
        super().__init__()
        width = config.decoder_dim
        self.project = nn.ModuleList(nn.Conv2d(dim, width, 1) for dim in config.dims)
        self.scale_logits = nn.Parameter(torch.zeros(len(config.dims)))
        # Group norm, not batch norm: the static model and every policy share this
        # decoder, and batch statistics mixed over them fit none (slimmable networks'
        # problem); group norm has no running statistics to mix.
        self.hidden = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False),
                                    nn.GroupNorm(DECODER_GROUPS, width), nn.ReLU(inplace=True))
        self.out = nn.Conv2d(width, channels, 1)
        self.upscale = config.patch

    def forward(self, features: list) -> torch.Tensor:
        """Stage maps [(B, C_s, H_s, W_s)] -> raw output (B, channels, H, W)."""
        size = features[0].shape[-2:]
        weights = self.scale_logits.softmax(0)
        fused = 0
        for i, (project, feature) in enumerate(zip(self.project, features, strict=True)):
            mapped = project(feature)
            if mapped.shape[-2:] != size:
                mapped = F.interpolate(mapped, size=size, mode='bilinear', align_corners=False)
            fused = fused + weights[i] * mapped
        out = self.out(self.hidden(fused))
        return F.interpolate(out, scale_factor=self.upscale, mode='bilinear',
                             align_corners=False)


def postprocess(task: str, raw: torch.Tensor) -> torch.Tensor:
    """Raw decoder output (B, C, H, W) -> the task's answer (what the node publishes)."""
    if task == 'segmentation':
        return raw.argmax(1).to(torch.uint8)
    if task == 'depth':
        return raw[:, 0]
    if task == 'normals':
        return F.normalize(raw, dim=1).permute(0, 2, 3, 1)
    return torch.sigmoid(raw[:, 0])


def tokens_to_map(tokens: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, grid^2, C) -> (B, C, grid, grid)."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, grid, grid)


@dataclass
class Decisions:
    """The masks a forward pass used, per stage: block (B, depth), token (B, depth, N)."""

    blocks: list = field(default_factory=list)
    tokens: list = field(default_factory=list)


class AdaMTL(nn.Module):
    """Shared encoder, per-task decoders and the resident policies (one per compute target)."""

    def __init__(self, config: ModelConfig = ModelConfig()):
        super().__init__()
        self.config = config
        self.embed = PatchEmbed(config)
        self.stages = nn.ModuleList(
            nn.ModuleList(Block(dim, config.head_dim, config.mlp_ratio) for _ in range(depth))
            for dim, depth in zip(config.dims, config.depths, strict=True))
        self.merges = nn.ModuleList(
            PatchMerging(config.dims[s], config.dims[s + 1], config.grid(s))
            for s in range(len(config.dims) - 1))
        classes = len(config.class_names)
        self.decoders = nn.ModuleDict({task: TaskDecoder(config, output_channels(task, classes))
                                       for task in config.tasks})
        self.policies = nn.ModuleDict({name: Policy(config, spec)
                                       for name, spec in config.policies.items()})
        # Gumbel noise on training decisions; fine-tuning anneals it to 0 (see train.py).
        self.noise_scale = 1.0

    def encoder_parameters(self) -> list:
        """Parameters shared by every task: embedding, blocks, merges."""
        return [*self.embed.parameters(), *self.stages.parameters(), *self.merges.parameters()]

    def forward(self, image: torch.Tensor, policy: str | None = None, tasks=None,
                policy_tasks=None, skip_rate: float = 0.0) -> tuple:
        """Masked pass: (raw outputs per task, Decisions or None).

        ``policy`` None runs everything (the static model). ``tasks``: decoders to run
        (default all). ``policy_tasks``: whose task policies decide (default ``tasks``;
        alternating task training uses one task's policy while training that task).
        ``skip_rate`` (static model, training only): skip each block for a sample, and
        each token in a block, with this probability - stochastic depth, as Swin is
        trained with, carried down to tokens - so that the encoder learns to live
        with what a policy will later skip.
        """
        tasks = tuple(tasks or self.config.tasks)
        x = self.embed(image)
        features, decisions = [], Decisions() if policy is not None else None
        for s, blocks in enumerate(self.stages):
            if policy is not None:
                chooser = self.policies[policy]
                owners = chooser.owners_for(policy_tasks or tasks)
                # The policy reads the tokens but does not train the encoder: the
                # efficiency loss would otherwise reshape the features every task
                # and the static model share.
                pairs = chooser.logits(s, x.detach(), owners)
                block_mask = combine([decide(b, self.training, self.noise_scale)
                                      for b, _ in pairs])
                token_mask = combine([decide(t, self.training, self.noise_scale)
                                      for _, t in pairs])
                decisions.blocks.append(block_mask)
                decisions.tokens.append(token_mask)
            for j, block in enumerate(blocks):
                if policy is None and skip_rate > 0 and self.training:
                    keep = (torch.rand(x.shape[0], 1, device=x.device) >= skip_rate) \
                        & (torch.rand(x.shape[:2], device=x.device) >= skip_rate)
                    x = block(x, keep.to(x.dtype))
                elif policy is None:
                    x = block(x)
                else:
                    x = block(x, block_mask[:, j, None] * token_mask[:, j])
            features.append(tokens_to_map(x, self.config.grid(s)))
            if s < len(self.merges):
                x = self.merges[s](x)
        return {task: self.decoders[task](features) for task in tasks}, decisions

    @torch.no_grad()
    def run_adaptive(self, image: torch.Tensor, policy: str | None = None,
                     tasks=None) -> tuple:
        """Batch-1 inference that skips for real: (raw outputs, tokens run per block).

        A block the policy turns off is never called; a block that runs sees only its
        kept tokens. ``tokens run`` lists, per stage, the kept token count of each block
        (0 = skipped).
        """
        if image.shape[0] != 1:
            raise ValueError('run_adaptive takes one image (batch 1)')
        tasks = tuple(tasks or self.config.tasks)
        x = self.embed(image)
        features, counts = [], []
        for s, blocks in enumerate(self.stages):
            kept = None
            if policy is not None:
                chooser = self.policies[policy]
                pairs = chooser.logits(s, x, chooser.owners_for(tasks))
                block_on = torch.stack([b[0] > 0 for b, _ in pairs]).any(0)
                kept = torch.stack([t[0] > 0 for _, t in pairs]).any(0)  # (depth, N)
            stage_counts = []
            for j, block in enumerate(blocks):
                if kept is None:
                    x = block(x)
                    stage_counts.append(x.shape[1])
                    continue
                index = kept[j].nonzero()[:, 0] if block_on[j] else kept[j][:0].nonzero()[:, 0]
                stage_counts.append(int(index.numel()))
                if index.numel():
                    x = x.clone()
                    x[:, index] = block(x[:, index])
            counts.append(stage_counts)
            features.append(tokens_to_map(x, self.config.grid(s)))
            if s < len(self.merges):
                x = self.merges[s](x)
        return {task: self.decoders[task](features) for task in tasks}, counts
