"""AdaMTL's training recipe (thesis 7.3.3), on CPU, reproducible by seed.

1. **Static**: encoder and every decoder (eq. 7.1), with stochastic depth for blocks
   and tokens (``skip_rate``), as Swin itself is trained.
2. **Policy initialisation**: model frozen, every policy trained to keep everything
   (eq. 7.2), so co-training starts from the static model's behaviour.
3. **Co-training**: task losses + ``alpha`` x efficiency loss (eq. 7.3-7.6).
   a. *Alternating task training*: one task at a time, only that task's decoder and
      that task's policy sub-networks train (the encoder is frozen), so no task's
      policy is tuned on another's loss.
   b. *End-to-end fine-tuning*: everything trains; every step runs the static
      model and one policy (the sandwich rule), so the static model and all
      policies keep sharing one encoder.

Single-task models (one decoder, no policy, stage 1 only) are the reference for the
multi-task delta, as in the thesis's tables.
"""

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from adaptive_perception.multitask.config import AdamtlTrainConfig
from adaptive_perception.multitask.dataset import DenseArrays, from_description
from adaptive_perception.multitask.manifest import read_manifest, write_manifest
from adaptive_perception.multitask.model import (
    AdaMTL,
    Decisions,
    ModelConfig,
    PolicySpec,
    block_flops,
    decide,
    normalise,
    parse_targets,
)
from adaptive_perception.multitask.validate import score_model
from adaptive_perception.training import load_checkpoint, save_checkpoint, warmup_cosine

CHECKPOINT_FORMAT = 'adaptive_perception.adamtl/2'
# Readable formats, newest first: /1 kept the settings as top-level keys (read back
# by ``AdamtlTrainConfig.from_checkpoint``).
CHECKPOINT_FORMATS = (CHECKPOINT_FORMAT, 'adaptive_perception.adamtl/1')
# Loss weights per task, in the spirit of Vandenhende et al.'s (normals and saliency
# losses are an order smaller than cross-entropy and depth L1 in metres).
TASK_WEIGHTS = {'segmentation': 1.0, 'depth': 1.0, 'normals': 5.0, 'saliency': 2.0}


def read_checkpoint(path, with_stage1: bool = False) -> dict:
    """Load what ``train_adamtl`` saved, or say plainly why a file is not that."""
    checkpoint = load_checkpoint(path, CHECKPOINT_FORMATS, 'AdaMTL')
    if with_stage1 and 'static' not in checkpoint:
        raise ValueError(f'{path}: an AdaMTL checkpoint without its static stage')
    return checkpoint


@dataclass
class Batch:
    """Network input and the targets, with unknown labels marked as in DenseArrays."""

    images: torch.Tensor
    targets: dict = field(default_factory=dict)

    @classmethod
    def from_arrays(cls, data: DenseArrays, rows, flip: torch.Tensor | None = None) -> 'Batch':
        """Rows of ``data``; ``flip`` (bool per row) mirrors left-right (normals' x too)."""
        rows = np.asarray(rows)
        images = normalise(data.images[rows])
        targets = {
            'segmentation': torch.from_numpy(data.segmentation[rows]).long(),
            'depth': torch.from_numpy(data.depth[rows]),
            'normals': torch.from_numpy(data.normals[rows]).permute(0, 3, 1, 2),
            'saliency': torch.from_numpy(data.saliency[rows]),
        }
        targets = {task: value for task, value in targets.items() if task in data.tasks}
        if flip is not None and flip.any():
            images[flip] = images[flip].flip(-1)
            for value in targets.values():
                value[flip] = value[flip].flip(-1)
            if 'normals' in targets:
                targets['normals'][flip, 0] *= -1
        return cls(images, targets)

    def to(self, device) -> 'Batch':
        """Return the same batch on ``device``."""
        return Batch(self.images.to(device),
                     {task: value.to(device) for task, value in self.targets.items()})


def task_loss(task: str, raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """One task's loss over its known pixels (0 if the batch has none)."""
    if task == 'segmentation':
        if not (target != 255).any():
            return raw.sum() * 0
        return F.cross_entropy(raw, target, ignore_index=255)
    if task == 'depth':
        known = target > 0
        return F.l1_loss(raw[:, 0][known], target[known]) if known.any() else raw.sum() * 0
    if task == 'normals':
        known = target.abs().sum(1) > 0
        if not known.any():
            return raw.sum() * 0
        cosine = (F.normalize(raw, dim=1) * target).sum(1)
        return (1 - cosine[known]).mean()
    known = ~torch.isnan(target)  # saliency
    if not known.any():
        return raw.sum() * 0
    return F.binary_cross_entropy_with_logits(raw[:, 0][known], target[known])


def distillation_loss(outputs: dict, teacher: dict) -> torch.Tensor:
    """Score the adaptive path against the static model, each task in its loss's form.

    Every pixel has a teacher answer, so the policies learn from what the static model
    would say where the labels alone say little (DynamicViT distils the same way).
    """
    total = 0
    for task, raw in outputs.items():
        target = teacher[task].detach()
        if task == 'segmentation':
            loss = F.cross_entropy(raw, target.softmax(1))
        elif task == 'depth':
            loss = F.l1_loss(raw, target)
        elif task == 'normals':
            loss = (1 - (F.normalize(raw, dim=1) * F.normalize(target, dim=1)).sum(1)).mean()
        else:
            loss = F.binary_cross_entropy_with_logits(raw, torch.sigmoid(target))
        total = total + TASK_WEIGHTS[task] * loss
    return total


def tasks_loss(outputs: dict, targets: dict) -> torch.Tensor:
    """Weighted sum over the tasks that have both an output and labels (eq. 7.1)."""
    return sum(TASK_WEIGHTS[task] * task_loss(task, raw, targets[task])
               for task, raw in outputs.items() if task in targets)


EFFICIENCY_WEIGHTS = ('width', 'flops')


def _block_costs(config: ModelConfig) -> tuple:
    """(widths, FLOPs at full size) of every block, in order."""
    per_block = [(dim, config.grid(s) ** 2) for s, (dim, depth)
                 in enumerate(zip(config.dims, config.depths, strict=True)) for _ in range(depth)]
    return (torch.tensor([float(dim) for dim, _ in per_block]),
            torch.tensor([float(block_flops(dim, tokens, config.mlp_ratio))
                          for dim, tokens in per_block]))


def efficiency_loss(decisions: Decisions, spec: PolicySpec, config: ModelConfig,
                    by: str = 'flops') -> torch.Tensor:
    """Eq. 7.4-7.6: kept block and token shares against the policy's targets.

    ``width`` is the thesis's form: (block share - target)^2 plus the mean over blocks
    of (w (token share - target))^2, w the stage width over the mean width (a token
    costs more in a wider stage). Every block is held to the token target.
    ``flops``: one block share and one token share, each a mean over blocks weighted
    by what the block costs at full size, against the targets - a budget the policy
    may spend where it hurts least. Here the narrow first stage holds 16x the tokens
    of the last and its blocks cost the most (attention grows with the square of the
    token count), which width weighting does not see.
    Shares are over the batch, so single frames may use more or less than the target.
    """
    if by not in EFFICIENCY_WEIGHTS:
        raise ValueError(f'efficiency weights {by!r}: one of {", ".join(EFFICIENCY_WEIGHTS)}')
    device = decisions.blocks[0].device
    widths, costs = (t.to(device) for t in _block_costs(config))
    blocks = torch.cat([mask.mean(0) for mask in decisions.blocks])
    tokens = torch.cat([mask.mean((0, 2)) for mask in decisions.tokens])
    if by == 'width':
        weights = widths / widths.mean()
        return ((blocks.mean() - spec.block_target) ** 2
                + ((weights * (tokens - spec.token_target)) ** 2).mean())
    share = costs / costs.sum()
    return (((share * blocks).sum() - spec.block_target) ** 2
            + ((share * tokens).sum() - spec.token_target) ** 2)


def _batches(count: int, batch_size: int, generator: torch.Generator):
    """Shuffled row indices, full batches only (batch norm wants them)."""
    order = torch.randperm(count, generator=generator).numpy()
    for start in range(0, count - batch_size + 1, batch_size):
        yield order[start:start + batch_size]


def _flips(size: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(size, generator=generator) < 0.5


def _device(model: AdaMTL) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def validation_loss(model: AdaMTL, data: DenseArrays, policy: str | None = None,
                    batch_size: int = 64) -> dict:
    """Mean weighted task loss and the kept block/token shares on ``data``."""
    model.eval()
    total, blocks, tokens, batches = 0.0, 0.0, 0.0, 0
    for start in range(0, len(data), batch_size):
        batch = Batch.from_arrays(data, range(start, min(len(data), start + batch_size)))
        batch = batch.to(_device(model))
        outputs, decisions = model(batch.images, policy)
        total += float(tasks_loss(outputs, batch.targets))
        if decisions is not None:
            blocks += float(torch.cat(decisions.blocks, 1).mean())
            tokens += float(torch.cat([m.mean(2) for m in decisions.tokens], 1).mean())
        batches += 1
    model.train()
    result = {'loss': total / batches}
    if policy is not None:
        result.update(block_share=blocks / batches, token_share=tokens / batches)
    return result


# The policy networks are tiny and start far from their targets: at the model's
# learning rate the logits that stage 2 raised to "keep everything" took many epochs
# to come down.
POLICY_LR_FACTOR = 10.0


def _optimizer(model: AdaMTL, parameters: list, lr: float, weight_decay: float):
    """AdamW: the model's parameters at ``lr``, the policy networks' at 10x, no decay."""
    policy = {id(p) for p in model.policies.parameters()}
    groups = [{'params': [p for p in parameters if id(p) not in policy],
               'weight_decay': weight_decay},
              {'params': [p for p in parameters if id(p) in policy],
               'lr': lr * POLICY_LR_FACTOR, 'weight_decay': 0.0}]
    return torch.optim.AdamW([g for g in groups if g['params']], lr=lr)


def _set_trainable(model: AdaMTL, parameters) -> list:
    chosen = {id(p) for p in parameters}
    for parameter in model.parameters():
        parameter.requires_grad_(id(parameter) in chosen)
    return [p for p in model.parameters() if p.requires_grad]


def train_static(model: AdaMTL, train: DenseArrays, val: DenseArrays, epochs: int,
                 batch_size: int, lr: float, generator: torch.Generator, log,
                 skip_rate: float = 0.0) -> list:
    """Stage 1 (and the single-task models): all the model's tasks, no policy.

    ``skip_rate``: stochastic depth for blocks and tokens (see ``AdaMTL.forward``).
    """
    parameters = _set_trainable(model, [p for name, p in model.named_parameters()
                                        if not name.startswith('policies.')])
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=0.05)
    steps = epochs * (len(train) // batch_size)
    scheduler = warmup_cosine(optimizer, steps, max(1, steps // 20), clamp=True)
    history = []
    model.train()
    for epoch in range(epochs):
        start, running = time.perf_counter(), 0.0
        for rows in _batches(len(train), batch_size, generator):
            batch = Batch.from_arrays(train, rows, _flips(len(rows), generator)).to(
                _device(model))
            outputs, _ = model(batch.images, skip_rate=skip_rate)
            loss = tasks_loss(outputs, batch.targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            running += float(loss.detach())
        record = {'epoch': epoch + 1, 'train_loss': running / (len(train) // batch_size),
                  **{f'val_{k}': v for k, v in validation_loss(model, val).items()},
                  'seconds': round(time.perf_counter() - start, 1)}
        history.append(record)
        log(f'static {record}')
    return history


def _stage_inputs(model: AdaMTL, images: torch.Tensor) -> list:
    """Each stage's input tokens with everything on (what an all-keeping policy sees)."""
    inputs = []
    x = model.embed(images)
    for s, blocks in enumerate(model.stages):
        inputs.append(x)
        for block in blocks:
            x = block(x)
        if s < len(model.merges):
            x = model.merges[s](x)
    return inputs


def initialise_policies(model: AdaMTL, train: DenseArrays, epochs: int, batch_size: int,
                        lr: float, generator: torch.Generator, log,
                        keep_enough: float = 0.99) -> list:
    """Stage 2 (eq. 7.2): with the model frozen, teach every sub-network to keep all.

    Each task's sub-network is trained on its own decisions: through the clamp of the
    combined decision, a network whose partner already keeps a token would get no
    gradient. It stops once every network keeps ``keep_enough`` of blocks and tokens
    under the Gumbel noise: pushing further only saturates the logits, and stage 3
    then cannot move them (with Adam, the push never fades).
    """
    parameters = _set_trainable(model, model.policies.parameters())
    optimizer = torch.optim.Adam(parameters, lr=lr)
    history = []
    for epoch in range(epochs):
        running, steps, lowest = 0.0, 0, 0.0
        for rows in _batches(len(train), batch_size, generator):
            with torch.no_grad():
                images = Batch.from_arrays(train, rows).images.to(_device(model))
                inputs = _stage_inputs(model, images)
            loss, kept = 0, []
            for policy in model.policies.values():
                for networks in policy.stages.values():
                    for network, x in zip(networks, inputs, strict=True):
                        for logits in network(x):
                            mask = decide(logits, True)
                            loss = loss + (1 - mask).mean()
                            kept.append(float(mask.detach().mean()))
            lowest = min(kept)
            if lowest >= keep_enough:
                break
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            running, steps = running + float(loss.detach()), steps + 1
        history.append({'epoch': epoch + 1, 'steps': steps,
                        'loss': running / max(1, steps), 'lowest_keep': lowest})
        log(f'policy init {history[-1]}')
        if lowest >= keep_enough:
            break
    return history


def alternating_tasks(model: AdaMTL, train: DenseArrays, val: DenseArrays, rounds: int,
                      batch_size: int, lr: float, alpha: float, weights_by: str,
                      generator: torch.Generator, log) -> list:
    """Stage 3a: one task per epoch; that task's decoder and policy networks train.

    Every step trains each policy once on the batch (their parameters are disjoint),
    with the efficiency loss of that policy's target, and the decoder on the static
    model's features too, since the static model shares it.
    """
    history = []
    policies = list(model.policies)
    for round_ in range(rounds):
        for task in model.config.tasks:
            owned = [p for policy in model.policies.values()
                     for owner, networks in policy.stages.items() if owner in (task, 'all')
                     for p in networks.parameters()]
            parameters = _set_trainable(model, [*model.decoders[task].parameters(), *owned])
            optimizer = _optimizer(model, parameters, lr, 0.0)
            running, steps = {name: [0.0, 0.0] for name in policies}, 0
            for rows in _batches(len(train), batch_size, generator):
                batch = Batch.from_arrays(train, rows, _flips(len(rows), generator))
                batch = batch.to(_device(model))
                optimizer.zero_grad()
                static_outputs, _ = model(batch.images, tasks=(task,))
                tasks_loss(static_outputs, batch.targets).backward()  # the decoder serves both
                for name in policies:
                    outputs, decisions = model(batch.images, name, tasks=(task,))
                    task_part = tasks_loss(outputs, batch.targets)
                    eff = efficiency_loss(decisions, model.config.policies[name], model.config,
                                          weights_by)
                    (task_part + alpha * eff).backward()
                    running[name][0] += float(task_part.detach())
                    running[name][1] += float(eff.detach())
                optimizer.step()
                steps += 1
            record = {'round': round_ + 1, 'task': task,
                      **{f'{name}_task_loss': round(v[0] / steps, 4) for name, v in
                         running.items()},
                      **{f'{name}_eff_loss': round(v[1] / steps, 5) for name, v in
                         running.items()}}
            history.append(record)
            log(f'alternating {record}')
    return history


def fine_tune(model: AdaMTL, train: DenseArrays, val: DenseArrays, epochs: int,
              batch_size: int, lr: float, alpha: float, weights_by: str,
              generator: torch.Generator, log, distill: float = 0.0) -> list:
    """Stage 3b: end to end, by the sandwich rule of slimmable networks.

    Every step trains the static model and one policy (in turn) on the same batch.
    Cycling through static and the policies instead gave the static model a quarter
    of the steps, and the shared encoder drifted towards what the policies need:
    the static model lost what stage 1 had reached.

    The Gumbel noise on the decisions fades linearly to 0 over the epochs, so that
    the last epochs train on the decisions inference takes. With the noise left on,
    a task-aware policy (an OR of four noisy decisions) kept far more while training
    than at inference, and was trained for a budget it did not keep.
    """
    names = list(model.policies)
    parameters = _set_trainable(model, list(model.parameters()))
    optimizer = _optimizer(model, parameters, lr, 0.05)
    steps_total = epochs * (len(train) // batch_size)
    scheduler = warmup_cosine(optimizer, steps_total, max(1, steps_total // 20), clamp=True)
    history, step = [], 0
    for epoch in range(epochs):
        start, running = time.perf_counter(), 0.0
        for rows in _batches(len(train), batch_size, generator):
            model.noise_scale = max(0.0, 1.0 - step / max(1, steps_total - 1))
            policy = names[step % len(names)]
            batch = Batch.from_arrays(train, rows, _flips(len(rows), generator)).to(
                _device(model))
            optimizer.zero_grad()
            static_outputs, _ = model(batch.images)
            loss = tasks_loss(static_outputs, batch.targets)
            outputs, decisions = model(batch.images, policy)
            loss = loss + tasks_loss(outputs, batch.targets) + alpha * efficiency_loss(
                decisions, model.config.policies[policy], model.config, weights_by)
            if distill:
                loss = loss + distill * distillation_loss(outputs, static_outputs)
            loss.backward()
            optimizer.step()
            scheduler.step()
            running += float(loss.detach())
            step += 1
        record = {'epoch': epoch + 1, 'train_loss': running / (len(train) // batch_size),
                  'noise_scale': round(model.noise_scale, 3),
                  'seconds': round(time.perf_counter() - start, 1)}
        for policy in [None, *names]:
            record[str(policy or 'static')] = validation_loss(model, val, policy)
        history.append(record)
        log(f'fine-tune {record}')
    model.noise_scale = 1.0
    return history


def train_single_tasks(train: DenseArrays, val: DenseArrays, config: ModelConfig,
                       epochs: int, batch_size: int, lr: float, seed: int,
                       skip_rate: float = 0.0, threads: int | None = None,
                       device: str = 'cpu', log=print, done: dict | None = None,
                       on_task=None) -> tuple:
    """One static model per task (the delta's reference): (scores on ``val``, history).

    Each task's model starts from its own seed (``seed`` + 1 + its place in
    ``config.tasks``), so a task trains the same alone, after the others or on another
    machine. ``on_task`` gets the progress (scores and histories) after each task;
    handed back as ``done``, the tasks it holds are not trained again.
    """
    if threads:
        torch.set_num_threads(threads)
    progress = {'scores': dict((done or {}).get('scores', {})),
                'history': dict((done or {}).get('history', {}))}
    for index, task in enumerate(config.tasks):
        if task in progress['scores']:
            continue
        torch.manual_seed(seed + 1 + index)
        generator = torch.Generator().manual_seed(seed + 1 + index)
        single = AdaMTL(replace(config, tasks=(task,), policies={})).to(device)
        history = train_static(single, train, val, epochs, batch_size, lr, generator,
                               lambda line, task=task: log(f'[{task}] {line}'), skip_rate)
        progress = {'scores': {**progress['scores'], task: score_model(single, val)[task]},
                    'history': {**progress['history'], task: history}}
        if on_task is not None:
            on_task(progress)
    return progress['scores'], progress['history']


def _train_references(settings: dict, holder: dict, write, device: str, log) -> tuple:
    """Train the single-task models stage 1's ``settings`` describe: (references, history).

    The data are regenerated (or read again) from what stage 1 recorded, and seed and
    recipe are stage 1's, so the references are those a full run would have trained.
    The progress lives in ``holder['single_task_progress']`` and ``write`` saves it after
    each task: at 128x128 the four models take hours on a CPU, and a stopped run goes
    on from the last task. Once all are done the progress is dropped from ``holder``.
    """
    config = ModelConfig.from_json(settings['config'])
    train = from_description(settings['train'], config.image_size)
    val = from_description(settings['val'], config.image_size)
    done = holder.get('single_task_progress')
    if done:
        log(f'trained already: {", ".join(done["scores"])}')

    def save(progress: dict) -> None:
        holder['single_task_progress'] = progress
        write()

    scores, history = train_single_tasks(
        train, val, config, settings['static_epochs'], settings['batch_size'],
        settings['lr'], settings['seed'], settings['skip_rate'], device=device, log=log,
        done=done, on_task=save)
    holder.pop('single_task_progress', None)
    return {'single_task': {'data': settings['val'], 'scores': scores}}, history


def add_single_task_references(checkpoint_path, device: str = 'cpu', log=print) -> dict:
    """Train the single-task references a run skipped (``--no-single-task``) into its file.

    Export and ``--static-from`` then treat them as a full run's. Works on a full
    checkpoint and on its ``.stage1.pt`` alike; each finished task is saved at once.
    """
    path = Path(checkpoint_path)
    checkpoint = read_checkpoint(path, with_stage1=True)
    static = checkpoint['static']
    if static['references'].get('single_task'):
        log(f'{path} has its single-task references already')
        return static['references']
    references, history = _train_references(
        static['settings'], static, lambda: save_checkpoint(checkpoint, path), device, log)
    static['references'] = references
    if 'references' in checkpoint:  # a full checkpoint, not only its stage 1
        checkpoint['references'] = references
        checkpoint['history']['single_task'] = history
    save_checkpoint(checkpoint, path)
    return references


def add_single_task_references_to_model(model_dir, device: str = 'cpu', log=print) -> dict:
    """Train the single-task references into an exported model, checkpoint or not.

    Stage 1's settings travel in the manifest (``static_settings``); the progress is
    kept there too (``single_task_progress``) until the four tasks are done, so it can
    be committed with the model and go on on another machine.
    """
    manifest = read_manifest(model_dir)
    if manifest['references'].get('single_task'):
        log(f'{model_dir} has its single-task references already')
        return manifest['references']
    if 'static_settings' not in manifest:
        raise ValueError(f'{Path(model_dir) / "manifest.json"} does not record the settings '
                         f'of its static stage (static_settings): export the model again '
                         f'from its checkpoint')
    references, history = _train_references(
        manifest['static_settings'], manifest, lambda: write_manifest(manifest, model_dir),
        device, log)
    manifest['references'] = references
    manifest['provenance']['single_task_history'] = history
    write_manifest(manifest, model_dir)
    return references


STATIC_KEYS = ('config', 'seed', 'batch_size', 'lr', 'static_epochs', 'skip_rate', 'train',
               'val')


def _stage1_view(settings: dict) -> dict:
    """Return the settings stage 1 depends on (the policies' targets are not among them)."""
    config = {k: v for k, v in settings['config'].items() if k != 'policies'}
    return {**{k: settings.get(k) for k in STATIC_KEYS}, 'config': config}


def _static_stage(from_path, expected: dict) -> dict:
    """Stage 1 and the single-task references of an earlier run, if it matches this one."""
    earlier = read_checkpoint(from_path, with_stage1=True)
    mine, theirs = _stage1_view(expected), _stage1_view(earlier['static']['settings'])
    differ = [k for k in STATIC_KEYS if mine[k] != theirs[k]]
    if differ:
        raise ValueError(f'{from_path}: its static stage was trained with other '
                         f'{", ".join(differ)}; train it again without --static-from')
    return earlier


def train_adamtl(config: AdamtlTrainConfig, train: DenseArrays, val: DenseArrays, out_path,
                 model_config: ModelConfig | None = None, *, jobs: int = 1, static_from=None,
                 device: str = 'cpu', train_description: str = '', val_description: str = '',
                 provenance: dict | None = None, log=print) -> dict:
    """Run the whole recipe and save one checkpoint (model, references, history).

    ``config`` holds every hyper-parameter (see :class:`AdamtlTrainConfig`); the
    checkpoint keeps it as it is (``train_config``). ``model_config``: the model to
    train; without one it is built from ``config`` (decoder width, targets) at the
    input size of ``train``'s images.
    The single-task models are scored on ``val`` (described by ``val_description``,
    so that evaluation knows when the references apply) and only their scores are kept.
    ``jobs`` 2 trains them in a second process alongside, one thread each: on small
    models two single-threaded processes finish sooner than one with two threads.
    ``static_from``: an earlier checkpoint on the same data and settings whose stage 1
    (weights, random state) and single-task references are reused, so that stages 2-3
    can be tuned without training the static model again (the policies' targets may
    differ); the result is the same as a full run with the same settings.
    ``device``: where to train ('cuda' where there is one); the checkpoint is saved for
    the CPU either way.
    """
    schedule, seed, batch_size, lr = config.schedule, config.seed, config.batch_size, config.lr
    alpha, skip_rate, distill = config.alpha, config.skip_rate, config.distill
    weights_by, single_task = config.efficiency_weights, config.single_task
    torch.manual_seed(seed)
    np.random.seed(seed)
    decoder_dim = ModelConfig.decoder_dim if config.decoder_dim is None else config.decoder_dim
    model_config = model_config or ModelConfig(
        image_size=train.images.shape[1],
        tasks=tuple(t for t in ModelConfig().tasks if t in train.tasks),
        class_names=tuple(train.class_names), decoder_dim=decoder_dim,
        policies=parse_targets(config.targets))
    settings = {'config': model_config.to_json(), 'seed': seed, 'batch_size': batch_size,
                'lr': lr, 'static_epochs': schedule.static, 'skip_rate': skip_rate,
                'train': train_description, 'val': val_description}
    generator = torch.Generator().manual_seed(seed)
    if weights_by not in EFFICIENCY_WEIGHTS:
        raise ValueError(f'efficiency weights {weights_by!r}: one of '
                         f'{", ".join(EFFICIENCY_WEIGHTS)}')
    model = AdaMTL(model_config).to(device)
    seconds, history = {}, {}
    earlier = _static_stage(static_from, settings) if static_from else None
    pool = singles = None
    if earlier is None:
        single_args = (train, val, model_config, schedule.static, batch_size, lr, seed, skip_rate)
        single_kwargs = {'device': device}
        if single_task and jobs > 1:
            pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context('spawn'))
            singles = pool.submit(train_single_tasks, *single_args, threads=1, **single_kwargs)
            torch.set_num_threads(1)
        started = time.perf_counter()
        history['static'] = train_static(model, train, val, schedule.static, batch_size, lr,
                                         generator, log, skip_rate)
        seconds['static'] = round(time.perf_counter() - started, 1)
        # A copy: state_dict() shares the tensors that stages 2-3 go on changing.
        static = {'settings': settings,
                  'state_dict': {k: v.detach().cpu().clone()
                                 for k, v in model.state_dict().items()},
                  'generator': generator.get_state(), 'rng': torch.get_rng_state(),
                  'history': history['static'],
                  'seconds': seconds['static'], 'references': {}}
        # Stage 1 on its own, usable with static_from while the rest still trains.
        save_checkpoint({'format': CHECKPOINT_FORMAT, 'train_config': asdict(config),
                         'static': static},
                        Path(out_path).with_suffix('.stage1.pt'))
    else:
        static = earlier['static']
        model.load_state_dict(static['state_dict'])
        generator.set_state(static['generator'])
        if 'rng' in static:  # the global stream (Gumbel noise, stochastic depth) too
            torch.set_rng_state(static['rng'])
        history['static'] = static['history']
        log(f'stage 1 and single-task references from {static_from}')
    stages = [
        ('policy_init', lambda: initialise_policies(model, train, schedule.policy_init,
                                                    batch_size, 1e-3, generator, log)),
        ('alternating', lambda: alternating_tasks(model, train, val,
                                                  schedule.alternating_rounds, batch_size,
                                                  lr / 2, alpha, weights_by, generator, log)),
        ('fine_tune', lambda: fine_tune(model, train, val, schedule.fine_tune, batch_size,
                                        lr / 4, alpha, weights_by, generator, log,
                                        distill)),
    ]
    for name, run in stages:
        started = time.perf_counter()
        history[name] = run()
        seconds[name] = round(time.perf_counter() - started, 1)
    if earlier is None and single_task:
        started = time.perf_counter()
        if pool is not None:
            scores, history['single_task'] = singles.result()
            pool.shutdown()
        else:
            scores, history['single_task'] = train_single_tasks(*single_args, **single_kwargs,
                                                                log=log)
        seconds['single_task_after_fine_tune'] = round(time.perf_counter() - started, 1)
        static['references'] = {'single_task': {'data': val_description, 'scores': scores}}
    checkpoint = {'format': CHECKPOINT_FORMAT, 'config': model_config.to_json(),
                  'train_config': asdict(config),
                  'state_dict': {k: v.cpu() for k, v in model.state_dict().items()},
                  'references': static['references'], 'static': static,
                  'provenance': provenance or {}, 'history': history, 'seconds': seconds}
    save_checkpoint(checkpoint, out_path)
    return checkpoint
