"""Export a trained AdaCon checkpoint as the ONNX graphs and manifest the runtime reads.

One graph per part - backbone, controller, static head, each branch - so that a
branch the controller does not select costs nothing at run time, and one such set
per backbone width, each cut out of the shared weights as a plain static model
(``SlimmableAdaCon.at_width``), so that a narrower width does no masked work. MACs
are counted per graph by PyTorch's FLOP counter (MACs = FLOPs / 2) on exactly what
is exported.
"""

from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from adaptive_perception.channels.slimmable import SlimmableAdaCon, width_key
from adaptive_perception.detection.manifest import HeadSpec, Manifest, WidthGraphs
from adaptive_perception.detection.model import DecodedHead
from adaptive_perception.detection.train import CHECKPOINT_FORMAT
from adaptive_perception.runtime.onnx_export import export_graph


def load_checkpoint(path) -> tuple:
    """(SlimmableAdaCon in eval mode, checkpoint dict) from what ``train_adacon`` saved."""
    checkpoint = torch.load(path, map_location='cpu', weights_only=False)
    if checkpoint.get('format') != CHECKPOINT_FORMAT:
        raise ValueError(f'{path}: not an AdaCon checkpoint ({CHECKPOINT_FORMAT})')
    model = SlimmableAdaCon(checkpoint['config'], checkpoint['widths'],
                            dict(checkpoint.get('branch_scales', [])))
    model.load_state_dict(checkpoint['state_dict'])
    return model.eval(), checkpoint


def count_macs(module: torch.nn.Module, *inputs: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass, counted by ``FlopCounterMode``."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*inputs)
    return counter.get_total_flops() // 2


def export_adacon(checkpoint, out_dir) -> Manifest:
    """Write every width's graphs and ``manifest.json``; the manifest.

    Per width: backbone, controller, static_head, branch_<i>. Full-width files are
    plain (``backbone.onnx``), narrower ones carry the width (``backbone_w050.onnx``).
    """
    slimmable, ckpt = load_checkpoint(checkpoint)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    height, width = ckpt['input_size']
    image = torch.zeros(1, 3, height, width)

    def export(name, module, inputs, input_names, output_names):
        path = out_dir / f'{name}.onnx'
        export_graph(module, inputs, path, input_names, output_names)
        macs = count_macs(module, *inputs)
        print(f'[adacon export] {path.name}: {macs:,} MACs, '
              f'{path.stat().st_size / 1e3:.0f} kB', flush=True)
        return {'file': path.name, 'macs': macs}

    def export_width(share: float) -> WidthGraphs:
        model = slimmable.at_width(share)
        suffix = '' if share == 1.0 else f'_{width_key(share)}'
        with torch.no_grad():
            features = model.backbone(image)

        def export_head(file, name, head, class_ids):
            graph = export(file + suffix, DecodedHead(head, model.stride).eval(), (features,),
                           ['features'], ['heatmap', 'box'])
            return HeadSpec(name=name, class_ids=list(class_ids), **graph)

        return WidthGraphs(
            width=share,
            backbone=export('backbone' + suffix, model.backbone, (image,), ['image'],
                            ['features']),
            controller=export('controller' + suffix, model.controller, (features,),
                              ['features'], ['logits']),
            static_head=export_head('static_head', 'static', model.static_head,
                                    ckpt['category_ids']),
            branches=[export_head(f'branch_{i}', name, head, ids)
                      for i, (name, head, ids) in enumerate(zip(
                          ckpt['branch_names'], model.branches, ckpt['branch_ids'],
                          strict=True))])

    widths = [export_width(share) for share in slimmable.widths]
    training = dict(ckpt['training'])
    training['checkpoint'] = str(checkpoint)
    manifest = Manifest(
        input_size=[height, width], stride=slimmable.full.stride, mean=ckpt['mean'],
        std=ckpt['std'], classes={int(cid): name for cid, name in ckpt['class_names'].items()},
        common_class_ids=ckpt['common_ids'], widths=widths, training=training)
    path = manifest.save(out_dir)
    files = [file for graphs in widths for file in graphs.files()]
    total = sum((out_dir / file).stat().st_size for file in files)
    print(f'[adacon export] wrote {path} and {len(files)} graphs ({total / 1e6:.2f} MB)',
          flush=True)
    return manifest
