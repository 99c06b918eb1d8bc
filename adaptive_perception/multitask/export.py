"""Export AdaMTL as the ONNX graphs and manifest the runtime reads.

The static model is one graph for the whole encoder (as it would be deployed without
AdaMTL, so the comparison is fair). The adaptive path has one graph per part, so
that what a policy skips is never run: the patch embedding,
every transformer block (with a dynamic token count: it sees only the tokens its
policy keeps), every patch merging, each policy per stage (all its task sub-networks
in one small graph) and each task decoder (with its post-processing: class ids,
metres, unit normals, saliency probability).

FLOPs are counted by PyTorch's FLOP counter on exactly what is exported (matrix
products and convolutions, the ops that carry the cost). A block's FLOPs depend on
its kept tokens n as a*n + b*n^2 (linear layers and attention); a and b are measured
at two token counts and stored, so the runtime can report each frame's FLOPs.
"""

import json
from pathlib import Path

import torch
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


class PolicyGraph(nn.Module):
    """One policy's stage networks for every owner, stacked: (O, depth), (O, depth, N)."""

    def __init__(self, networks: list):
        super().__init__()
        self.networks = nn.ModuleList(networks)

    def forward(self, tokens: torch.Tensor) -> tuple:
        """Stage tokens (1, N, C) -> every owner's block and token logits."""
        pairs = [network(tokens) for network in self.networks]
        return (torch.cat([b for b, _ in pairs], 0), torch.cat([t for _, t in pairs], 0))


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
            per_owner = [policy.stages[owner][s] for owner in policy.owners]
            graph = f'policy_{name}_s{s}'
            write(graph, PolicyGraph(per_owner), (sample,), ['tokens'],
                  ['block_logits', 'token_logits'])
            stages.append({'graph': graph,
                           'flops_per_owner': count_flops(per_owner[0], sample)})
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
