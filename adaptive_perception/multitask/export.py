"""Export AdaMTL as the ONNX graphs and manifest the runtime reads.

The encoder is one graph per way through it, so that a frame costs one graph call
whatever its policy decides (at this model's size a graph call and each small node
cost as much as the work in them; per-block graphs made the adaptive path 14 calls):
* ``encoder_static``: every block on every token, the static model as it would be
  deployed without AdaMTL, so the comparison is fair;
* ``encoder_policy``: a policy decides inside the graph, stage by stage, and each
  block runs on the tokens it keeps only - gathered out before attention and the
  MLP, scattered back after, none at all for a skipped block. A policy's networks
  are inputs (``policy_<name>.npz``, fed as ``engine.policy_inputs`` arranges them
  for the running tasks), so one graph serves every policy and the encoder's
  weights are stored once;
* ``encoder_decided``: the same, with the decisions as inputs (the random policy of
  the ablation).
Every encoder graph runs its blocks in one form (``ExportBlock``), the static one
included, so the policies are timed against the same arithmetic.

The decoders are a graph per task and ``decoders``, all four in one graph with the
same arithmetic (projections side by side, the 3x3 layers as one grouped
convolution), which frames that need every task use.

FLOPs are counted by PyTorch's FLOP counter on the modules exported (matrix
products and convolutions, the ops that carry the cost). A block's FLOPs depend on
its kept tokens n as a*n + b*n^2 (linear layers and attention); a and b are measured
at two token counts and stored, so the runtime can report each frame's FLOPs from
the decisions the encoder graph returns; so are a policy's FLOPs per number of
running tasks.
"""

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from adaptive_perception.multitask.engine import POLICY_PATHS, policy_inputs
from adaptive_perception.multitask.manifest import MultitaskManifest
from adaptive_perception.multitask.model import (
    MEAN,
    STD,
    AdaMTL,
    ModelConfig,
    postprocess,
    tokens_to_map,
)
from adaptive_perception.multitask.train import read_checkpoint
from adaptive_perception.training.macs import count_flops
from adaptive_perception.training.onnx_export import export_graph


def load_checkpoint(path) -> tuple:
    """(model in eval mode, checkpoint dict) from what ``train_adamtl`` saved."""
    checkpoint = read_checkpoint(path)
    model = AdaMTL(ModelConfig.from_json(checkpoint['config']))
    model.load_state_dict(checkpoint['state_dict'])
    return model.eval(), checkpoint


class ExportBlock(nn.Module):
    """A ``Block`` on one frame's tokens (n, C), the form every encoder graph runs.

    Linear layers on 2-D tokens (one Gemm each, bias included), the attention scale
    folded into the query weights. In the exported graph, attention is ONNX Runtime's
    fused ``com.microsoft.Attention`` (the query/key/value projection, the heads'
    scaled dot products and softmax in one node, which runs on n = 0 too): the same
    arithmetic as the 14 nodes of reshapes, transposes, products and softmax that the
    PyTorch form exports to, and the static encoder runs 13% faster (``bench
    multitask``, encoder only). Run in PyTorch (FLOP counting, tests) it is that
    PyTorch form.
    """

    def __init__(self, block):
        super().__init__()
        attention = block.attn
        self.heads, self.dim = attention.heads, attention.qkv.in_features
        weight = attention.qkv.weight.detach().clone()
        bias = attention.qkv.bias.detach().clone()
        weight[:self.dim] *= attention.scale
        bias[:self.dim] *= attention.scale
        self.register_buffer('qkv_weight', weight)
        self.register_buffer('qkv_bias', bias)
        self.norm1, self.norm2 = block.norm1, block.norm2
        self.proj, self.mlp = attention.proj, block.mlp

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        """Multi-head self-attention of normalised tokens (n, C), before the projection."""
        count, dim, heads = x.shape[0], self.dim, self.heads
        if torch.onnx.is_in_onnx_export():
            fused = torch.onnx.ops.symbolic(
                'com.microsoft::Attention', (x[None], self.qkv_weight.T, self.qkv_bias),
                {'num_heads': heads, 'scale': 1.0}, dtype=x.dtype, shape=(1, count, dim),
                version=1)
            return fused[0]
        qkv = F.linear(x, self.qkv_weight, self.qkv_bias)
        qkv = qkv.reshape(count, 3, heads, dim // heads).permute(1, 2, 0, 3)
        q, k, v = qkv[0], qkv[1], qkv[2]
        mixed = (q @ k.transpose(-2, -1)).softmax(-1) @ v
        return mixed.transpose(0, 1).reshape(count, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(n, C) -> (n, C); n may be 0."""
        x = x + self.proj(self.attend(self.norm1(x)))
        return x + self.mlp(self.norm2(x))


POLICY_ARRAYS = tuple(f'{path}_{layer}' for path in POLICY_PATHS
                      for layer in ('w1', 'b1', 'w2', 'b2'))


def stack_policy_stage(networks: list, stage: int) -> dict:
    """One stage's owner networks (``StagePolicy``) as numpy arrays, owners first.

    Per path, layer 1 as (O, C, H) and (O, 1, H), layer 2 as (O, H, depth) and
    (O, 1, depth), named ``<path>_<layer>_s<stage>``: what ``policy_inputs`` turns
    into the graph's inputs.
    """
    arrays = {}
    for path in POLICY_PATHS:
        first = [getattr(n, path)[0] for n in networks]
        second = [getattr(n, path)[2] for n in networks]
        arrays[f'{path}_w1'] = torch.stack([f.weight.T for f in first])
        arrays[f'{path}_b1'] = torch.stack([f.bias[None] for f in first])
        arrays[f'{path}_w2'] = torch.stack([s.weight.T for s in second])
        arrays[f'{path}_b2'] = torch.stack([s.bias[None] for s in second])
    return {f'{name}_s{stage}': arrays[name].detach().numpy().copy() for name in POLICY_ARRAYS}


def decide_stage(tokens: torch.Tensor, arrays, depth: int) -> torch.Tensor:
    """Decide for one policy stage, as ``AdaMTL.run_adaptive`` does: (N, depth) bool.

    ``tokens`` (N, C); ``arrays`` the stage's inputs from ``policy_inputs``, in
    ``POLICY_ARRAYS`` order, for the K owners that count (the running tasks'). A
    token runs in a block when some owner's token logit and some owner's block logit
    are > 0 (the OR of the owners' decisions: the largest logit > 0).
    """
    token_w1, token_b1, token_w2, token_b2, block_w1, block_b1, block_w2, block_b2 = arrays
    count = tokens.shape[0]
    token_logits = F.gelu(tokens @ token_w1 + token_b1) @ token_w2 + token_b2  # (N, K*depth)
    pooled = tokens.mean(0, keepdim=True)
    block_logits = F.gelu(pooled @ block_w1 + block_b1) @ block_w2 + block_b2  # (1, K*depth)
    return ((token_logits.reshape(count, -1, depth).amax(1) > 0)
            & (block_logits.reshape(1, -1, depth).amax(1) > 0))


class DecideStage(nn.Module):
    """``decide_stage`` as a module, for the FLOP counter."""

    def __init__(self, depth: int):
        super().__init__()
        self.depth = depth

    def forward(self, tokens: torch.Tensor, *arrays) -> torch.Tensor:
        """See ``decide_stage``."""
        return decide_stage(tokens, arrays, self.depth)


ENCODER_MODES = ('static', 'policy', 'decided')


class EncoderGraph(nn.Module):
    """The encoder as one graph: static, deciding with a policy, or with decisions given.

    ``static``: input ``image``; every block on every token. ``policy``: inputs
    ``image`` and, per stage, a policy's arrays (``stack_policy_stage``) for the
    owners that count: every resident policy runs through this one graph, whatever
    its owner count; outputs, after every stage's tokens, ``runs_s<stage>``: (N, depth)
    bool, which tokens each block of the stage processed (none: the block was
    skipped). ``decided``: inputs ``image`` and those ``runs_s<stage>``.
    """

    def __init__(self, model: AdaMTL, mode: str = 'static'):
        super().__init__()
        if mode not in ENCODER_MODES:
            raise ValueError(f'encoder mode {mode!r}: one of {", ".join(ENCODER_MODES)}')
        self.embed = model.embed
        self.stages = nn.ModuleList(nn.ModuleList(ExportBlock(b) for b in stage)
                                    for stage in model.stages)
        self.merges = model.merges
        self.mode = mode

    def forward(self, image: torch.Tensor, *decisions: torch.Tensor) -> tuple:
        """Image (1, 3, S, S) and the mode's decision inputs -> stage tokens (, runs)."""
        x = self.embed(image)[0]
        outputs, decided, width = [], [], len(POLICY_ARRAYS)
        for s, blocks in enumerate(self.stages):
            if self.mode == 'policy':
                runs = decide_stage(x, decisions[s * width:(s + 1) * width], len(blocks))
            elif self.mode == 'decided':
                runs = decisions[s]
            for j, block in enumerate(blocks):
                if self.mode == 'static':
                    x = block(x)
                    continue
                index = runs[:, j].nonzero()[:, 0]
                x = x.index_put((index,), block(x.index_select(0, index)))
            if self.mode == 'policy':
                decided.append(runs)
            outputs.append(x[None])
            if s < len(self.merges):
                x = self.merges[s](x[None])[0]
        return (*outputs, *decided)


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


def _deciding_flops(config: ModelConfig, stacked: dict, counted: list) -> int:
    """FLOPs of a policy's decisions, all stages, with the ``counted`` owners' networks."""
    inputs = policy_inputs(stacked, counted)
    return sum(count_flops(DecideStage(depth), torch.zeros(config.grid(s) ** 2, dim),
                           *[torch.from_numpy(inputs[f'{key}_s{s}']) for key in POLICY_ARRAYS])
               for s, (dim, depth) in enumerate(zip(config.dims, config.depths, strict=True)))


def export_model(model: AdaMTL, out_dir, provenance: dict | None = None,
                 references: dict | None = None,
                 static_settings: dict | None = None) -> MultitaskManifest:
    """Write every graph of ``model`` and ``manifest.json`` into ``out_dir``; return it.

    ``static_settings``: how stage 1 was trained (data, seed, recipe), so that single-task
    references can be trained for the model later without its checkpoint.
    """
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

    stage_names = [f'stage{s}' for s in range(len(config.dims))]
    static = EncoderGraph(model)
    write('encoder_static', static, (image,), ['image'], stage_names)
    flops['encoder_static'] = count_flops(static, image)
    flops['embed'] = count_flops(model.embed, image)
    blocks = []
    for s, stage in enumerate(model.stages):
        tokens, dim = config.grid(s) ** 2, config.dims[s]
        blocks.append([{'flops': block_flop_model(block, tokens, dim)} for block in stage])
        if s < len(model.merges):
            flops[f'merge_s{s}'] = count_flops(model.merges[s], torch.zeros(1, tokens, dim))
    runs = [f'runs_s{s}' for s in range(len(config.dims))]
    everything = [torch.ones(config.grid(s) ** 2, depth, dtype=torch.bool)
                  for s, depth in enumerate(config.depths)]
    write('encoder_decided', EncoderGraph(model, 'decided'), (image, *everything),
          ['image', *runs], stage_names)
    policies, stacked = {}, {}
    for name, policy in model.policies.items():
        stacked[name] = {key: value for s in range(len(config.dims))
                         for key, value in stack_policy_stage(
                             [policy.stages[owner][s] for owner in policy.owners], s).items()}
        file = f'policy_{name}.npz'
        np.savez(out_dir / file, **stacked[name])
        policies[name] = {'arrays': file, 'owners': list(policy.owners),
                          'flops_by_owner_count': [
                              _deciding_flops(config, stacked[name], list(range(k)))
                              for k in range(1, len(policy.owners) + 1)],
                          'block_target': policy.spec.block_target,
                          'token_target': policy.spec.token_target,
                          'task_aware': policy.spec.task_aware}
    if policies:  # one graph for every policy; two owners stand for any count
        owners = torch.export.Dim('owners', min=1, max=64)
        sample = policy_inputs(next(iter(stacked.values())), [0, 0])
        names = [f'{key}_s{s}' for s in range(len(config.dims)) for key in POLICY_ARRAYS]
        hidden, shapes = config.policy_hidden, []
        for depth in config.depths:  # per owner, layer 1 adds H columns, layer 2 depth
            for _ in POLICY_PATHS:
                shapes += [{1: hidden * owners}, {0: hidden * owners},
                           {0: hidden * owners, 1: depth * owners}, {0: depth * owners}]
        write('encoder_policy', EncoderGraph(model, 'policy'),
              (image, *[torch.from_numpy(sample[name]) for name in names]),
              ['image', *names], [*stage_names, *runs], (None, tuple(shapes)))
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
    manifest = MultitaskManifest(
        config=config.to_json(), input_size=size, mean=MEAN, std=STD, graphs=graphs,
        flops=flops, blocks=blocks, policies=policies, decoders=decoders,
        references=references or {}, provenance=provenance or {},
        static_settings=static_settings or {})
    manifest.save(out_dir)
    return manifest


def export_adamtl(checkpoint, out_dir, references_from=None) -> MultitaskManifest:
    """Export a checkpoint of ``train_adamtl``; single-task scores travel as references.

    ``references_from``: take the single-task references from another checkpoint
    instead - the run that trained them - provided both share stage 1 (same settings
    and weights), as a run with ``static_from`` does.
    """
    model, ckpt = load_checkpoint(checkpoint)
    references = ckpt.get('references', {})
    provenance = dict(ckpt.get('provenance', {}))
    if references_from:
        source = read_checkpoint(references_from)
        mine, theirs = ckpt.get('static', {}), source.get('static', {})
        same = (mine.get('settings') == theirs.get('settings') and mine.get('settings')
                and all(torch.equal(mine['state_dict'][k], theirs['state_dict'][k])
                        for k in mine['state_dict']))
        if not same:
            raise ValueError(f'{references_from} does not share stage 1 with {checkpoint}: '
                             f'its single-task references do not apply')
        references = source.get('references', {})
        provenance['references_from'] = source.get('provenance', {})
    return export_model(model, out_dir, provenance, references,
                        ckpt.get('static', {}).get('settings'))


CALIBRATION_FRAMES = 128
# Quantized in the AdaMTL graphs: the weight layers that gain from INT8 on this runtime.
INT8_OP_TYPES = ('Conv', 'Gemm')
INT8_LEFT_OUT = {
    'MatMul': 'the patch merges (3-D input): ONNX Runtime ran them as QLinearMatMul at '
              'about 2.5 ms each against 0.04 ms in FP32 (per-op profile, 1 thread)',
    'Attention': "com.microsoft.Attention: ONNX Runtime's static (QDQ) quantizer has no "
                 'rule for it (only dynamic quantization does)',
}


def add_int8(model_dir, count: int = CALIBRATION_FRAMES, seed: int = 0,
             method: str = 'minmax') -> MultitaskManifest:
    """Write a calibrated INT8 copy of every graph of an exported AdaMTL; the new manifest.

    Calibration frames: the first ``count`` generated training scenes (``seed`` 0 is
    the training set), preprocessed as the runtime does. The encoders see the frames
    (the policy encoder with each resident policy's arrays in turn, all tasks); the
    decoders see the FP32 static encoder's features of them. Matrix products that read
    a policy's arrays stay FP32 (see ``_policy_layers``). Only ``*_int8.onnx`` files and
    the manifest's ``int8`` entry are written; the FP32 graphs stay as they are.
    """
    from adaptive_perception.multitask.dataset import describe_generated, generate_dataset_arrays
    from adaptive_perception.multitask.engine import MultiTaskEngine
    from adaptive_perception.runtime.quantize import int8_file, quantize_graph

    model_dir = Path(model_dir)
    manifest = MultitaskManifest.load(model_dir)
    if manifest.int8:  # the engine must load the FP32 graphs only, whatever is there
        manifest = replace(manifest, int8={})
        manifest.save(model_dir)
    engine = MultiTaskEngine(model_dir, threads=1)
    data = generate_dataset_arrays(count, seed, engine.input_size)
    images = [engine.preprocess(np.ascontiguousarray(rgb)) for rgb in data.images]
    source = (f'{describe_generated(count, seed, engine.input_size)} (the training set at '
              f'seed 0), preprocessed as the runtime does')
    features = [dict(zip([f'stage{s}' for s in range(len(engine.depths))],
                         engine.encode(image)[0], strict=True)) for image in images]
    policies = [engine.policy(name) for name in engine.policies[1:]]
    feeds = {
        'encoder_static': [{'image': image} for image in images],
        'encoder_decided': [{'image': image, **policy_free_decisions(engine, i)}
                            for i, image in enumerate(images)],
        'encoder_policy': [{'image': image, **policies[i % len(policies)].feeds(
            engine.tasks, engine.layout)[0]} for i, image in enumerate(images)]
        if policies else [],
    }
    graphs, reports = {}, {}
    for name, file in manifest.graphs.items():
        inputs = feeds.get(name, features)
        fixed = {key for key in (inputs[0] if inputs else {}) if key != 'image'
                 and not key.startswith('stage')}

        def keep_policy_fp32(node, fixed=fixed):
            return ('reads a policy array fed at run time: its output is thresholded into '
                    'the block and token decisions' if fixed & set(node.input) else None)

        report = quantize_graph(model_dir / file, model_dir / int8_file(file), inputs,
                                source if name.startswith('encoder') else
                                f'{source}; through the FP32 static encoder',
                                op_types=INT8_OP_TYPES, exclude_nodes=keep_policy_fp32,
                                method=method, reasons=INT8_LEFT_OUT)
        graphs[name], reports[name] = report.file, report.to_json()
        print(f'[adamtl int8] {report.file}: INT8 {report.quantized_ops}, '
              f'FP32 {report.fp32_ops}', flush=True)
    manifest = replace(manifest, int8={
        'graphs': graphs, 'reports': reports,
        'calibration': {'frames': count, 'seed': seed, 'method': method, 'data': source}})
    manifest.save(model_dir)
    return manifest


def policy_free_decisions(engine, index: int) -> dict:
    """Return decisions for the decided encoder during calibration.

    Every block on every token on even frames, a fixed random half on odd ones, so
    both paths see real ranges.
    """
    rng = np.random.default_rng(index)
    return {f'runs_s{s}': (np.ones((count, depth), bool) if index % 2 == 0
                           else rng.random((count, depth)) < 0.5)
            for s, (depth, count) in enumerate(engine.layout)}


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
