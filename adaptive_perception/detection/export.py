"""Export a trained AdaCon checkpoint as the ONNX graphs and manifest the runtime reads.

One graph per part - backbone, controller, static head, each branch - so that a
branch the controller does not select costs nothing at run time. MACs are counted
per graph by PyTorch's FLOP counter (MACs = FLOPs / 2) on exactly what is exported.
"""

from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from adaptive_perception.detection.manifest import HeadSpec, Manifest
from adaptive_perception.detection.model import AdaCon, DecodedHead
from adaptive_perception.detection.train import CHECKPOINT_FORMAT
from adaptive_perception.runtime.onnx_export import export_graph


def load_checkpoint(path) -> tuple:
    """(model in eval mode, checkpoint dict) from what ``train_adacon`` saved."""
    checkpoint = torch.load(path, map_location='cpu', weights_only=False)
    if checkpoint.get('format') != CHECKPOINT_FORMAT:
        raise ValueError(f'{path}: not an AdaCon checkpoint ({CHECKPOINT_FORMAT})')
    model = AdaCon(**checkpoint['config'])
    model.load_state_dict(checkpoint['state_dict'])
    return model.eval(), checkpoint


def count_macs(module: torch.nn.Module, *inputs: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass, counted by ``FlopCounterMode``."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*inputs)
    return counter.get_total_flops() // 2


def export_adacon(checkpoint, out_dir) -> Manifest:
    """Write backbone/controller/static_head/branch_<i>.onnx and ``manifest.json``."""
    model, ckpt = load_checkpoint(checkpoint)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    height, width = ckpt['input_size']
    image = torch.zeros(1, 3, height, width)
    with torch.no_grad():
        features = model.backbone(image)

    def export(name, module, inputs, input_names, output_names):
        path = out_dir / f'{name}.onnx'
        export_graph(module, inputs, path, input_names, output_names)
        macs = count_macs(module, *inputs)
        print(f'[adacon export] {path.name}: {macs:,} MACs, '
              f'{path.stat().st_size / 1e3:.0f} kB', flush=True)
        return path.name, macs

    def export_head(file, name, head, class_ids):
        file, macs = export(file, DecodedHead(head, model.stride).eval(), (features,),
                            ['features'], ['heatmap', 'box'])
        return HeadSpec(name=name, file=file, class_ids=list(class_ids), macs=macs)

    backbone = export('backbone', model.backbone, (image,), ['image'], ['features'])
    controller = export('controller', model.controller, (features,), ['features'], ['logits'])
    static = export_head('static_head', 'static', model.static_head, ckpt['category_ids'])
    branches = [export_head(f'branch_{i}', name, head, ids) for i, (name, head, ids) in enumerate(
        zip(ckpt['branch_names'], model.branches, ckpt['branch_ids'], strict=True))]
    training = dict(ckpt['training'])
    training['checkpoint'] = str(checkpoint)
    manifest = Manifest(
        input_size=[height, width], stride=model.stride, mean=ckpt['mean'], std=ckpt['std'],
        classes={int(cid): name for cid, name in ckpt['class_names'].items()},
        common_class_ids=ckpt['common_ids'],
        backbone={'file': backbone[0], 'macs': backbone[1]},
        controller={'file': controller[0], 'macs': controller[1]},
        static_head=static, branches=branches,
        training=training)
    path = manifest.save(out_dir)
    files = [backbone[0], controller[0], static.file, *[b.file for b in branches]]
    total = sum((out_dir / file).stat().st_size for file in files)
    print(f'[adacon export] wrote {path} and {len(files)} graphs ({total / 1e6:.2f} MB)',
          flush=True)
    return manifest
