"""Export AdaMTL as the ONNX graphs and manifest the runtime reads.

The static model is one graph for the whole encoder (as it would be deployed without
AdaMTL, so the comparison is fair). The adaptive path has one graph per part, so
that what a policy skips is never run: the patch embedding,
every transformer block (with a dynamic token count: it sees only the tokens its
policy keeps), every patch merging, each policy per stage and each task decoder
(with its post-processing: class ids, metres, unit normals, saliency probability).

Two parts are fused at export, with the same arithmetic, because at this model's
size a graph call and each small node cost as much as the work in them:
* a policy stage stacks all its task sub-networks into one network and makes the
  decisions in the graph (logit > 0, OR over the tasks that run);
* ``decoders`` runs every task's decoder in one graph (projections side by side, the
  3x3 layers as one grouped convolution); frames that need a subset of the tasks
  run the per-task graphs.

FLOPs are counted by PyTorch's FLOP counter on exactly what is exported (matrix
products and convolutions, the ops that carry the cost). A block's FLOPs depend on
its kept tokens n as a*n + b*n^2 (linear layers and attention); a and b are measured
at two token counts and stored, so the runtime can report each frame's FLOPs.
"""

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from adaptive_perception.multitask.engine import MANIFEST_FORMAT
from adaptive_perception.multitask.model import (
    MEAN,
    STD,
    AdaMTL,
    ModelConfig,
    postprocess,
    tokens_to_map,
)
from adaptive_perception.multitask.train import CHECKPOINT_FORMAT
from adaptive_perception.runtime.onnx_export import export_graph


def load_checkpoint(path) -> tuple:
    """(model in eval mode, checkpoint dict) from what ``train_adamtl`` saved."""
    checkpoint = torch.load(path, map_location='cpu', weights_only=False)
    if checkpoint.get('format') != CHECKPOINT_FORMAT:
        raise ValueError(f'{path}: not an AdaMTL checkpoint ({CHECKPOINT_FORMAT})')
    model = AdaMTL(ModelConfig.from_json(checkpoint['config']))
    model.load_state_dict(checkpoint['state_dict'])
    return model.eval(), checkpoint


def count_flops(module: nn.Module, *inputs: torch.Tensor) -> int:
    """FLOPs of one forward pass (matrix products and convolutions)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*inputs)
    return int(counter.get_total_flops())


class StaticEncoder(nn.Module):
    """The whole encoder with every block on every token: the static model as deployed."""

    def __init__(self, model: AdaMTL):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple:
        """Image -> every stage's output tokens."""
        x, outputs = self.model.embed(image), []
        for s, blocks in enumerate(self.model.stages):
            for block in blocks:
                x = block(x)
            outputs.append(x)
            if s < len(self.model.merges):
                x = self.model.merges[s](x)
        return tuple(outputs)


class PolicyStageGraph(nn.Module):
    """One policy stage for every owner as one network, with the decisions in the graph.

    The owners' (task sub-networks') layers are stacked: a first layer for all of them
    is one matrix product, the second a batched one. Inputs: the stage's tokens
    (1, N, C) and ``owners`` (O,) bool, which owners count (the running tasks).
    Outputs: blocks on (depth,) and kept tokens (depth, N), bool - each counted
    owner's logit > 0, OR-ed, as ``AdaMTL.run_adaptive`` decides.
    """

    def __init__(self, networks: list):
        super().__init__()
        for path in ('token', 'block'):
            first = [getattr(n, path)[0] for n in networks]
            second = [getattr(n, path)[2] for n in networks]
            self.register_buffer(f'{path}_w1', torch.cat([f.weight for f in first]).T.clone())
            self.register_buffer(f'{path}_b1', torch.cat([f.bias for f in first]).clone())
            self.register_buffer(f'{path}_w2', torch.stack([s.weight.T for s in second]).clone())
            self.register_buffer(f'{path}_b2', torch.stack([s.bias for s in second]).clone())
        self.owners, self.hidden = len(networks), first[0].out_features

    def forward(self, tokens: torch.Tensor, owners: torch.Tensor) -> tuple:
        """(1, N, C) tokens, (O,) bool owners -> blocks on (depth,), kept (depth, N)."""
        x = tokens[0]
        hidden = F.gelu(x @ self.token_w1 + self.token_b1)  # (N, O*H)
        hidden = hidden.reshape(x.shape[0], self.owners, self.hidden).transpose(0, 1)
        token_logits = hidden @ self.token_w2 + self.token_b2[:, None, :]  # (O, N, depth)
        pooled = F.gelu(x.mean(0, keepdim=True) @ self.block_w1 + self.block_b1)
        pooled = pooled.reshape(self.owners, 1, self.hidden)
        block_logits = (pooled @ self.block_w2)[:, 0] + self.block_b2  # (O, depth)
        blocks_on = ((block_logits > 0) & owners[:, None]).any(0)
        kept = ((token_logits > 0) & owners[:, None, None]).any(0).T
        return blocks_on, kept


class DecoderGraph(nn.Module):
    """Stage tokens -> a task's final output at the model's input size."""

    def __init__(self, model: AdaMTL, task: str):
        super().__init__()
        self.decoder = model.decoders[task]
        self.grids = [model.config.grid(s) for s in range(len(model.config.dims))]
        self.task = task

    def forward(self, *stage_tokens: torch.Tensor) -> torch.Tensor:
        """Tokens of every stage -> the post-processed answer."""
        maps = [tokens_to_map(t, g) for t, g in zip(stage_tokens, self.grids, strict=True)]
        raw = self.decoder(maps)
        return postprocess(self.task, raw)


class DecodersGraph(nn.Module):
    """Every task's decoder in one graph: the same arithmetic as the per-task graphs.

    Each stage's projections of all tasks are one 1x1 convolution (with the task's
    fusion weight folded in: it is linear, and so is the upsampling), the 3x3 layers
    one grouped convolution and group norm (8 groups per task, as before), then each
    task's output layer, one upsampling for all, and each task's post-processing.
    """

    def __init__(self, model: AdaMTL):
        super().__init__()
        config = model.config
        decoders = [model.decoders[task] for task in config.tasks]
        self.tasks = config.tasks
        self.grids = [config.grid(s) for s in range(len(config.dims))]
        self.upscale = config.patch
        width, count = config.decoder_dim, len(decoders)
        self.project = nn.ModuleList()
        for s, dim in enumerate(config.dims):
            conv = nn.Conv2d(dim, width * count, 1)
            scale = [d.scale_logits.softmax(0)[s] for d in decoders]
            conv.weight.data = torch.cat([w * d.project[s].weight
                                          for w, d in zip(scale, decoders, strict=True)])
            conv.bias.data = torch.cat([w * d.project[s].bias
                                        for w, d in zip(scale, decoders, strict=True)])
            self.project.append(conv)
        self.hidden = nn.Conv2d(width * count, width * count, 3, padding=1, bias=False,
                                groups=count)
        self.hidden.weight.data = torch.cat([d.hidden[0].weight for d in decoders])
        norm = decoders[0].hidden[1]
        self.norm = nn.GroupNorm(norm.num_groups * count, width * count, eps=norm.eps)
        self.norm.weight.data = torch.cat([d.hidden[1].weight for d in decoders])
        self.norm.bias.data = torch.cat([d.hidden[1].bias for d in decoders])
        self.out = nn.ModuleList(d.out for d in decoders)
        self.width = width

    def forward(self, *stage_tokens: torch.Tensor) -> tuple:
        """Tokens of every stage -> every task's post-processed answer, in task order."""
        maps = [tokens_to_map(t, g) for t, g in zip(stage_tokens, self.grids, strict=True)]
        size = maps[0].shape[-2:]
        fused = 0
        for project, feature in zip(self.project, maps, strict=True):
            mapped = project(feature)
            if mapped.shape[-2:] != size:
                mapped = F.interpolate(mapped, size=size, mode='bilinear', align_corners=False)
            fused = fused + mapped
        hidden = F.relu(self.norm(self.hidden(fused)))
        parts = hidden.split(self.width, 1)
        raw = torch.cat([out(part) for out, part in zip(self.out, parts, strict=True)], 1)
        raw = F.interpolate(raw, scale_factor=self.upscale, mode='bilinear',
                            align_corners=False)
        sizes = [out.out_channels for out in self.out]
        return tuple(postprocess(task, part) for task, part
                     in zip(self.tasks, raw.split(sizes, 1), strict=True))


def block_flop_model(block: nn.Module, tokens: int, dim: int) -> list:
    """Fit FLOPs(n) = a*n + b*n^2 from counts at ``tokens`` and half of it; return [a, b]."""
    full = count_flops(block, torch.zeros(1, tokens, dim))
    half_n = max(1, tokens // 2)
    half = count_flops(block, torch.zeros(1, half_n, dim))
    # full = a N + b N^2, half = a n + b n^2  ->  solve the 2x2 system
    b = (full * half_n - half * tokens) / (tokens ** 2 * half_n - half_n ** 2 * tokens)
    a = (full - b * tokens ** 2) / tokens
    return [a, b]


def export_model(model: AdaMTL, out_dir, provenance: dict | None = None,
                 references: dict | None = None) -> dict:
    """Write every graph of ``model`` and ``manifest.json`` into ``out_dir``; return it."""
    model = model.eval()
    config = model.config
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    size = config.image_size
    image = torch.zeros(1, 3, size, size)
    graphs, flops = {}, {}

    def write(name, module, inputs, input_names, output_names, dynamic_shapes=None):
        export_graph(module, inputs, out_dir / f'{name}.onnx', input_names, output_names,
                     dynamic_shapes)
        graphs[name] = f'{name}.onnx'

    write('embed', model.embed, (image,), ['image'], ['tokens'])
    flops['embed'] = count_flops(model.embed, image)
    stage_names = [f'stage{s}' for s in range(len(config.dims))]
    write('encoder_static', StaticEncoder(model), (image,), ['image'], stage_names)
    flops['encoder_static'] = count_flops(StaticEncoder(model), image)
    blocks = []
    for s, stage in enumerate(model.stages):
        tokens, dim = config.grid(s) ** 2, config.dims[s]
        sample = torch.randn(1, tokens, dim)
        count = torch.export.Dim(f'tokens_s{s}', min=2, max=tokens)
        stage_blocks = []
        for j, block in enumerate(stage):
            name = f'block_s{s}_{j}'
            write(name, block, (sample,), ['tokens'], ['out'], {'x': {1: count}})
            stage_blocks.append({'graph': name, 'flops': block_flop_model(block, tokens, dim)})
        blocks.append(stage_blocks)
        if s < len(model.merges):
            write(f'merge_s{s}', model.merges[s], (sample,), ['tokens'], ['out'])
            flops[f'merge_s{s}'] = count_flops(model.merges[s], sample)
    policies = {}
    for name, policy in model.policies.items():
        stages = []
        for s in range(len(config.dims)):
            sample = torch.randn(1, config.grid(s) ** 2, config.dims[s])
            owners = torch.ones(len(policy.owners), dtype=torch.bool)
            fused = PolicyStageGraph([policy.stages[owner][s] for owner in policy.owners])
            graph = f'policy_{name}_s{s}'
            write(graph, fused, (sample, owners), ['tokens', 'owners'], ['blocks_on', 'kept'])
            stages.append({'graph': graph, 'flops': count_flops(fused, sample, owners)})
        policies[name] = {'owners': list(policy.owners), 'stages': stages,
                          'block_target': policy.spec.block_target,
                          'token_target': policy.spec.token_target,
                          'task_aware': policy.spec.task_aware}
    features = [torch.randn(1, config.grid(s) ** 2, dim) for s, dim in enumerate(config.dims)]
    decoders = {}
    for task in config.tasks:
        graph = DecoderGraph(model, task)
        write(f'decoder_{task}', graph, tuple(features),
              [f'stage{s}' for s in range(len(features))], ['output'])
        decoders[task] = {'graph': f'decoder_{task}', 'flops': count_flops(graph, *features)}
    write('decoders', DecodersGraph(model), tuple(features),
          [f'stage{s}' for s in range(len(features))], list(config.tasks))
    flops['decoders'] = count_flops(DecodersGraph(model), *features)
    manifest = {
        'format': MANIFEST_FORMAT, 'config': config.to_json(), 'input_size': size,
        'mean': MEAN, 'std': STD, 'graphs': graphs, 'flops': flops, 'blocks': blocks,
        'policies': policies, 'decoders': decoders, 'references': references or {},
        'provenance': provenance or {},
    }
    (out_dir / 'manifest.json').write_text(json.dumps(manifest, indent=1) + '\n')
    return manifest


def export_adamtl(checkpoint, out_dir, references_from=None) -> dict:
    """Export a checkpoint of ``train_adamtl``; single-task scores travel as references.

    ``references_from``: take the single-task references from another checkpoint
    instead - the run that trained them - provided both share stage 1 (same settings
    and weights), as a run with ``static_from`` does.
    """
    model, ckpt = load_checkpoint(checkpoint)
    references = ckpt.get('references', {})
    provenance = dict(ckpt.get('provenance', {}))
    if references_from:
        source = torch.load(references_from, map_location='cpu', weights_only=False)
        mine, theirs = ckpt.get('static', {}), source.get('static', {})
        same = (mine.get('settings') == theirs.get('settings') and mine.get('settings')
                and all(torch.equal(mine['state_dict'][k], theirs['state_dict'][k])
                        for k in mine['state_dict']))
        if not same:
            raise ValueError(f'{references_from} does not share stage 1 with {checkpoint}: '
                             f'its single-task references do not apply')
        references = source.get('references', {})
        provenance['references_from'] = source.get('provenance', {})
    return export_model(model, out_dir, provenance, references)


def export_random_model(out_dir, seed: int = 0) -> Path:
    """Export a small untrained model with every part, for tests of the runtime and node.

    Its policies are left at random initialisation, so they keep some tokens and
    blocks and drop others - the paths a trained model takes, at a size that exports
    in seconds.
    """
    torch.manual_seed(seed)
    model = AdaMTL(ModelConfig(image_size=32, dims=(16, 32, 64), depths=(1, 1, 2),
                               head_dim=16, decoder_dim=8, policy_hidden=8))
    for policy in model.policies.values():
        for parameter in policy.parameters():
            nn.init.normal_(parameter, std=0.5)
    export_model(model, out_dir, {'note': 'untrained test model'})
    # The weights too, so tests can compare the runtime with PyTorch.
    torch.save({'config': model.config.to_json(), 'state_dict': model.state_dict()},
               Path(out_dir) / 'model.pt')
    return Path(out_dir)
