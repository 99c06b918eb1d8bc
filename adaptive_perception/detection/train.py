"""Multi-stage AdaCon training (thesis 6.3.3) on any COCO-format data set.

Stage 1 trains the backbone with the static head over all classes (CenterNet focal
loss on the heatmaps, L1 on offsets and log sizes). Stage 2 freezes the backbone -
eval mode, no gradients, BatchNorm statistics untouched - and concurrently trains the
branch controller (BCE on logits against "cluster present" multi-hot labels, so its
sigmoid is the probability the multi-branch threshold reads) and every branch. Each
branch sees every training image with the labels of its own classes only, so that it
learns to output nothing for the rest. Every branch starts as the static head cut
down to its width (:func:`init_branches_from_static`).
"""

import json
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from adaptive_perception.detection import clustering
from adaptive_perception.detection.coco_data import CocoDetection
from adaptive_perception.detection.config import AdaconTrainConfig
from adaptive_perception.detection.model import AdaCon
from adaptive_perception.detection.slimmable import SlimmableAdaCon
from adaptive_perception.training import load_checkpoint, save_checkpoint, warmup_cosine

CHECKPOINT = 'adacon.pt'
CHECKPOINT_FORMAT = 'adacon-checkpoint/3'
# Readable formats, newest first. /2 kept the settings in a hand-built ``training``
# dict (read back by ``AdaconTrainConfig.from_checkpoint``); /1 is the single-width
# one (plain ``AdaCon`` keys), from which only stage 1 is taken.
CHECKPOINT_FORMATS = (CHECKPOINT_FORMAT, 'adacon-checkpoint/2', 'adacon-checkpoint/1')
# What the exporter reads: the formats of the nested-width model.
MODEL_FORMATS = CHECKPOINT_FORMATS[:2]
SMOKE_IMAGES = (48, 16)  # train, val images in smoke mode


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 2.0,
               beta: float = 4.0) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss on heatmap logits, per object centre."""
    positive = target.eq(1).float()
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
    p = torch.sigmoid(logits)
    pos = positive * (1 - p) ** alpha * log_p
    neg = (1 - positive) * (1 - target) ** beta * p ** alpha * log_not_p
    return -(pos.sum() + neg.sum()) / positive.sum().clamp(min=1)


def head_loss(outputs: tuple, targets: dict, classes: torch.Tensor = None,
              box_weight: float = 1.0) -> tuple:
    """Loss of one head; ``classes`` restricts the targets to a branch's classes.

    The branch's heatmap channel ``i`` is class ``classes[i]``; objects of any other
    class are background for it, heatmap and box alike. Returns (total, heatmap, box).
    """
    heatmap_logits, box = outputs
    heatmap, cls_map = targets['heatmap'], targets['cls_map']
    if classes is None:
        mask = cls_map >= 0
    else:
        heatmap = heatmap[:, classes]
        mask = torch.isin(cls_map, classes)
    heat = focal_loss(heatmap_logits, heatmap)
    mask = mask.unsqueeze(1).float()
    reg = (F.l1_loss(box, targets['box'], reduction='none') * mask).sum() / (
        4 * mask.sum()).clamp(min=1)
    return heat + box_weight * reg, heat, reg


def controller_loss(logits: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """BCE on logits against multi-hot "this cluster is in the image" labels."""
    return F.binary_cross_entropy_with_logits(logits, present)


def freeze(module: torch.nn.Module) -> None:
    """Eval mode and no gradients: parameters and BatchNorm statistics stay as they are."""
    module.eval()
    module.requires_grad_(False)


def _channels_last(images: torch.Tensor) -> torch.Tensor:
    """NHWC layout: oneDNN's faster convolutions on CPU, and far less hurt by busy cores."""
    return images.contiguous(memory_format=torch.channels_last)


def _targets(batch: dict) -> dict:
    return {key: batch[key] for key in ('heatmap', 'box', 'cls_map')}


def train_static(model: SlimmableAdaCon, train_set, val_set, epochs: int, batch_size: int = 32,
                 lr: float = 2e-3, weight_decay: float = 1e-4, seed: int = 0,
                 log=print) -> list:
    """Stage 1: backbone and static head at every width; a record per epoch.

    Every step sums the loss of every width (the sandwich rule of slimmable networks
    with all widths, as there are only a few), so the shared weights serve them all.
    Losses in the record are the full width's; ``val_loss_by_width`` has every width's.
    """
    loader = DataLoader(train_set, batch_size, shuffle=True, drop_last=len(train_set) > batch_size,
                        generator=torch.Generator().manual_seed(seed))
    full = model.full
    params = [*full.backbone.parameters(), *full.static_head.parameters(),
              *model.norm_parameters('backbone', 'static_head')]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    steps = epochs * len(loader)
    scheduler = warmup_cosine(optimizer, steps, warmup=min(300, max(1, steps // 10)),
                              clamp=False)
    records = []
    for epoch in range(epochs):
        start = time.perf_counter()
        full.backbone.train()
        full.static_head.train()
        sums = np.zeros(3)
        for batch in loader:
            image, targets = _channels_last(batch['image']), _targets(batch)
            total = 0.0
            for width in model.widths:
                outputs = model.part('static_head', model.part('backbone', image, width), width)
                loss, heat, reg = head_loss(outputs, targets)
                total = total + loss
                if width == 1.0:
                    sums += [loss.item(), heat.item(), reg.item()]
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            scheduler.step()
        record = dict(zip(('loss', 'heatmap', 'box'), (sums / len(loader)).tolist(), strict=True))
        by_width = {f'{w:g}': _val_static(model, val_set, batch_size, w) for w in model.widths}
        record.update(val_loss=by_width['1'], val_loss_by_width=by_width, epoch=epoch + 1,
                      seconds=round(time.perf_counter() - start, 2))
        records.append(record)
        log(f'static {epoch + 1}/{epochs}: loss {record["loss"]:.4f} (heatmap '
            f'{record["heatmap"]:.4f}, box {record["box"]:.4f}), val '
            + ', '.join(f'{v:.4f} @{w}' for w, v in by_width.items())
            + f', {record["seconds"]:.1f} s')
    return records


@torch.no_grad()
def _val_static(model: SlimmableAdaCon, val_set, batch_size: int, width: float) -> float:
    model.eval()
    total, count = 0.0, 0
    for batch in DataLoader(val_set, batch_size):
        features = model.part('backbone', _channels_last(batch['image']), width)
        loss, _, _ = head_loss(model.part('static_head', features, width), _targets(batch))
        total += loss.item() * len(batch['image'])
        count += len(batch['image'])
    return total / max(1, count)


def _branch_losses(model: SlimmableAdaCon, features: torch.Tensor, targets: dict,
                   width: float) -> list:
    return [head_loss(model.part(f'branches.{i}', features, width), targets, torch.tensor(classes))
            for i, classes in enumerate(model.full.branch_classes)]


@torch.no_grad()
def init_branches_from_static(model: AdaCon) -> list:
    """Start every branch as the trained static head cut down to the branch's size.

    Each layer keeps the static head's channels with the largest batch-norm scale
    (|gamma|, the channel-importance measure of network slimming) and the heatmap
    rows of the branch's classes. The branches then fine-tune from what the static
    head learned instead of from noise, which lowers their validation loss at every
    epoch of stage 2. Returns per branch the channels kept in each trunk layer.
    """
    static = model.static_head
    first, second = static.trunk[0], static.trunk[1]
    kept = []
    for branch, classes in zip(model.branches, model.branch_classes, strict=True):
        width = branch.trunk[0][0].out_channels
        # Most important first: a nested branch (``SlimmableAdaCon.branch_scales``)
        # runs the first of these channels at a narrower backbone width.
        keep1 = first[1].weight.abs().argsort(descending=True)[:width]
        keep2 = second[1].weight.abs().argsort(descending=True)[:width]
        branch.trunk[0][0].weight.copy_(first[0].weight[keep1])
        branch.trunk[1][0].weight.copy_(second[0].weight[keep2][:, keep1])
        for target, source, keep in ((branch.trunk[0][1], first[1], keep1),
                                     (branch.trunk[1][1], second[1], keep2)):
            for name in ('weight', 'bias', 'running_mean', 'running_var'):
                getattr(target, name).copy_(getattr(source, name)[keep])
        branch.heatmap.weight.copy_(static.heatmap.weight[classes][:, keep2])
        branch.heatmap.bias.copy_(static.heatmap.bias[classes])
        branch.box.weight.copy_(static.box.weight[:, keep2])
        branch.box.bias.copy_(static.box.bias)
        kept.append([keep1, keep2])
    return kept


def init_slimmable_branches(model: SlimmableAdaCon) -> None:
    """:func:`init_branches_from_static` at every width (narrower widths' norms too)."""
    for i, keep in enumerate(init_branches_from_static(model.full)):
        model.copy_head_norms(f'branches.{i}', 'static_head', keep)


def train_branches(model: SlimmableAdaCon, train_set, train_present: torch.Tensor, val_set,
                   val_present: torch.Tensor, epochs: int, batch_size: int = 32,
                   lr: float = 2e-3, weight_decay: float = 1e-4, seed: int = 0,
                   log=print) -> list:
    """Stage 2: controller and branches at every width; backbone and static head frozen.

    ``*_present`` (N, K): the multi-hot cluster labels of the data sets' images, in
    item ``index`` order. The frozen backbone runs on every batch of ``train_set``
    under its augmentation, so the branches see fresh views every epoch: trained on
    a cache of four fixed views they over-fitted (validation loss 3x the training
    loss) and lost 1.5 mAP points. One set of heads serves every width (each width
    with its own batch norms); every step sums the widths' losses. Returns a record
    per epoch, of the full width, with ``val_branch_loss_by_width``.
    """
    full = model.full
    freeze(full.backbone)
    freeze(full.static_head)
    params = [*full.controller.parameters(), *full.branches.parameters(),
              *model.norm_parameters('branches')]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    loader = DataLoader(train_set, batch_size, shuffle=True, drop_last=len(train_set) > batch_size,
                        generator=torch.Generator().manual_seed(seed))
    scheduler = warmup_cosine(optimizer, epochs * len(loader), warmup=min(300, len(loader)),
                              clamp=False)
    records = []
    for epoch in range(epochs):
        start = time.perf_counter()
        full.controller.train()
        full.branches.train()
        sums = np.zeros(2)
        for batch in loader:
            image, targets = _channels_last(batch['image']), _targets(batch)
            present = train_present[batch['index']]
            total = 0.0
            for width in model.widths:
                with torch.no_grad():
                    features = model.part('backbone', image, width)
                ctrl = controller_loss(model.part('controller', features, width), present)
                branches = sum(loss for loss, _, _ in
                               _branch_losses(model, features, targets, width))
                total = total + ctrl + branches
                if width == 1.0:
                    sums += [ctrl.item(), branches.item()]
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            scheduler.step()
        record = dict(zip(('controller_loss', 'branch_loss'), (sums / len(loader)).tolist(),
                          strict=True))
        by_width = {f'{w:g}': _val_branches(model, val_set, val_present, batch_size, w)
                    for w in model.widths}
        record.update(by_width['1'])
        record['val_branch_loss_by_width'] = {w: v['val_branch_loss'] for w, v in by_width.items()}
        record.update(epoch=epoch + 1, seconds=round(time.perf_counter() - start, 2))
        records.append(record)
        log(f'branches {epoch + 1}/{epochs}: controller {record["controller_loss"]:.4f}, '
            f'branches {record["branch_loss"]:.4f}; val controller '
            f'{record["val_controller_loss"]:.4f} (top-1 {record["val_top1"]:.3f}), branches '
            + ', '.join(f'{v:.4f} @{w}' for w, v in record['val_branch_loss_by_width'].items())
            + f', {record["seconds"]:.1f} s')
    return records


@torch.no_grad()
def _val_branches(model: SlimmableAdaCon, val_set, present: torch.Tensor, batch_size: int,
                  width: float) -> dict:
    """Compute validation losses, and top-1: the share of images whose best branch is present."""
    model.eval()
    ctrl = branches = 0.0
    hits = scored = 0
    for batch in DataLoader(val_set, batch_size):
        rows = batch['index']
        features = model.part('backbone', _channels_last(batch['image']), width)
        logits = model.part('controller', features, width)
        ctrl += controller_loss(logits, present[rows]).item() * len(rows)
        branches += sum(loss.item() for loss, _, _ in
                        _branch_losses(model, features, _targets(batch), width)) * len(rows)
        has_cluster = present[rows].sum(1) > 0
        top = present[rows].gather(1, logits.argmax(1, keepdim=True)).squeeze(1)
        hits += int(top[has_cluster].sum())
        scored += int(has_cluster.sum())
    n = max(1, len(val_set))
    return {'val_controller_loss': ctrl / n, 'val_branch_loss': branches / n,
            'val_top1': hits / max(1, scored)}


def _present(dataset, result) -> torch.Tensor:
    """(N, K) cluster-present labels of every image of ``dataset``, row = item ``index``.

    Under a Subset: of the whole set, as the items' ``index`` counts in it.
    """
    base = dataset.dataset if isinstance(dataset, Subset) else dataset
    return torch.tensor(np.stack([clustering.cluster_labels(base.image_category_ids(i), result)
                                  for i in range(len(base))]), dtype=torch.float32)


def _stage1_weights(path) -> tuple:
    """Return (checkpoint, its backbone and static-head weights keyed as in ``AdaCon``).

    Reads this format or the single-width one before it (plain ``AdaCon`` keys).
    """
    checkpoint = load_checkpoint(path, CHECKPOINT_FORMATS, 'AdaCon')
    weights = {k.removeprefix('full.'): v for k, v in checkpoint['state_dict'].items()}
    return checkpoint, {k: v for k, v in weights.items()
                        if k.startswith(('backbone.', 'static_head.'))}


def _stage1_config(config: dict) -> dict:
    """Drop from ``config`` what only stage 2 builds (the branches' width)."""
    return {k: v for k, v in config.items() if k != 'branch_scale'}


def _load_stage1(model: SlimmableAdaCon, path, config: dict) -> list:
    """Load stage 1 of an earlier run with the same configuration and widths.

    The branches' width may differ: stage 1 does not train them.

    The shared backbone and static head, and every width's norms of them. Returns
    that run's stage-1 log.
    """
    checkpoint, _ = _stage1_weights(path)
    if _stage1_config(checkpoint['config']) != _stage1_config(config) or \
            tuple(checkpoint.get('widths', ())) != model.widths:
        raise ValueError(f'{path}: not a checkpoint of this configuration {config} and widths '
                         f'{model.widths}')
    stage1 = ('full.backbone.', 'full.static_head.', 'norms.')
    model.load_state_dict({k: v for k, v in checkpoint['state_dict'].items()
                           if k.startswith(stage1) and '.branches/' not in k}, strict=False)
    log = Path(path).parent / 'training_log.json'
    return json.loads(log.read_text())['static'] if log.is_file() else []


def train_adacon(config: AdaconTrainConfig, train_annotations, train_images, val_annotations,
                 val_images, out_dir, *, clusters_file=None, init_from=None, stage1_from=None,
                 command: str = None) -> Path:
    """Cluster the classes, train both stages, save the checkpoint; its path.

    ``config`` holds every hyper-parameter (see :class:`AdaconTrainConfig`); the
    checkpoint keeps it as it is (``train_config``). Writes into ``out_dir``:
    ``clusters.json``, ``adacon.pt`` (state dict, model config, training config,
    classes, clusters, provenance) and ``training_log.json`` (losses per epoch, seconds
    per stage, seed). ``clusters_file``: clusters to use instead of clustering the
    training set. ``init_from``: start stage 1 from that checkpoint's backbone and
    static head (e.g. a single-width run, to add narrower widths in fewer epochs).
    ``stage1_from``: take stage 1 from that checkpoint (a run with the same data, seed,
    configuration and widths; the branch scale may differ) and train stage 2 only.
    ``command`` (default: this process's command line) is recorded as the way to
    reproduce the run.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed, batch_size, lr, input_size = (config.seed, config.batch_size, config.lr,
                                        config.input_size)
    torch.manual_seed(seed)
    np.random.seed(seed)
    started = time.perf_counter()
    epochs_static, epochs_branches = ((1, 1) if config.smoke else
                                      (config.epochs_static, config.epochs_branches))
    train_coco = json.loads(Path(train_annotations).read_text())
    if clusters_file:
        result = clustering.ClusterResult.from_json(Path(clusters_file).read_text())
    else:
        result = clustering.cluster_classes(train_coco, config.clusters, seed=seed)
    (out_dir / clustering.CLUSTERS_JSON).write_text(result.to_json())

    augment = torch.Generator().manual_seed(seed)
    train_set = CocoDetection(train_coco, train_images, input_size, train=True, generator=augment)
    classes = train_set
    val_set = CocoDetection(val_annotations, val_images, input_size)
    if config.smoke:
        train_set = Subset(train_set, range(min(len(train_set), SMOKE_IMAGES[0])))
        val_set = Subset(val_set, range(min(len(val_set), SMOKE_IMAGES[1])))
    index_of = {cid: i for i, cid in enumerate(classes.category_ids)}
    branch_ids = result.branches()
    unknown = sorted({c for ids in branch_ids for c in ids} - set(index_of))
    if unknown:
        raise ValueError(f'clusters name category ids {unknown} that {train_annotations} '
                         'does not have')
    model_config = {'num_classes': classes.num_classes, 'head_width': config.head_width,
                    'branch_classes': [[index_of[c] for c in ids] for ids in branch_ids]}
    if config.branch_scale != 1.0:
        model_config['branch_scale'] = config.branch_scale
    model = SlimmableAdaCon(model_config, tuple(config.widths),
                            dict(config.branch_scale_at)).to(memory_format=torch.channels_last)
    _log(f'{len(train_set)} train / {len(val_set)} val images, {classes.num_classes} classes')
    for name, ids in zip(result.cluster_names, branch_ids, strict=True):
        _log(f'branch {name}: {", ".join(classes.class_names[c] for c in ids)}')

    stage1 = time.perf_counter()
    if stage1_from:
        static = _load_stage1(model, stage1_from, model_config)
        _log(f'stage 1 from {stage1_from}')
    else:
        if init_from:
            model.full.load_state_dict(_stage1_weights(init_from)[1], strict=False)
            model.copy_norms_from_full()
            _log(f'stage 1 starts from {init_from}')
        static = train_static(model, train_set, val_set, epochs_static, batch_size, lr,
                              seed=seed, log=_log)
    stage2 = time.perf_counter()
    init_slimmable_branches(model)
    branches = train_branches(model, train_set, _present(train_set, result), val_set,
                              _present(val_set, result), epochs_branches, batch_size, lr,
                              seed=seed, log=_log)
    done = time.perf_counter()

    scales = [[width, scale] for width, scale in sorted(model.branch_scales.items(),
                                                           reverse=True)]
    training = {  # provenance; the settings are the configuration's
        'data': {'train_annotations': str(train_annotations), 'train_images': str(train_images),
                 'val_annotations': str(val_annotations), 'val_images': str(val_images),
                 'train_count': len(train_set), 'val_count': len(val_set),
                 'description': train_coco.get('info', {}).get('description', '')},
        'init_from': str(init_from) if init_from else None,
        'stage1_from': str(stage1_from) if stage1_from else None,
        'command': command or shlex.join(sys.argv),
    }
    path = out_dir / CHECKPOINT
    save_checkpoint({
        'format': CHECKPOINT_FORMAT, 'config': model_config, 'widths': list(model.widths),
        'branch_scales': scales, 'train_config': asdict(config),
        'state_dict': model.state_dict(),
        'category_ids': classes.category_ids,
        'class_names': {cid: classes.class_names[cid] for cid in classes.category_ids},
        'common_ids': list(result.common), 'branch_ids': branch_ids,
        'branch_names': list(result.cluster_names), 'clusters': result.to_json(),
        'input_size': list(classes.input_size), 'stride': model.full.stride,
        'mean': list(classes.mean), 'std': list(classes.std), 'training': training,
    }, path)
    (out_dir / 'training_log.json').write_text(json.dumps({
        'seed': seed, 'config': asdict(config), 'static': static, 'branches': branches,
        'seconds': {'static': round(stage2 - stage1, 1), 'branches': round(done - stage2, 1),
                    'total': round(done - started, 1)},
        'training': training}, indent=1))
    _log(f'saved {path} after {done - started:.0f} s '
        f'(static {stage2 - stage1:.0f} s, branches {done - stage2:.0f} s)')
    return path


def _log(line: str) -> None:
    print(f'[adacon train] {line}', flush=True)
