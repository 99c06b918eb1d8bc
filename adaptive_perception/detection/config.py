"""AdaCon's training configuration: one dataclass for the CLI, the trainer and the checkpoint.

Every hyper-parameter is declared once, with its default and help text; ``train
adacon``'s options are generated from it (``verb_args.dataclass_args``) and the
checkpoint keeps it as it is (``dataclasses.asdict``), so a run can be read back and
repeated exactly. Import-light (no torch), as the command line imports it.
"""

import argparse
from dataclasses import dataclass, field

from adaptive_perception.verb_args import config_from_dict


def width_scale(text: str) -> tuple[float, float]:
    """'0.5=1' -> (0.5, 1.0): a backbone width and the branch scale there."""
    try:
        width, scale = (float(part) for part in text.split('='))
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r}: expected WIDTH=SCALE, e.g. 0.5=1') from None
    return width, scale


@dataclass
class AdaconTrainConfig:
    """What ``train_adacon`` trains with; the data and the run's paths are its arguments."""

    clusters: int = field(default=4, metadata={'help': 'context branches'})
    seed: int = field(default=0, metadata={
        'help': 'seed of the clustering, the weights, the data order and the augmentation'})
    epochs_static: int = field(default=30, metadata={
        'help': 'stage 1: backbone and static head'})
    epochs_branches: int = field(default=30, metadata={
        'help': 'stage 2: controller and branches'})
    input_size: int = field(default=128, metadata={'help': 'square input side in pixels'})
    head_width: int = field(default=192, metadata={
        'help': 'static head width; each branch gets its share of the classes'})
    branch_scale: float = field(default=1.0, metadata={
        'help': "branch width as a multiple of that share (1: the thesis's)"})
    branch_scale_at: list = field(default_factory=list, metadata={
        'type': width_scale, 'nargs': '+', 'metavar': 'WIDTH=SCALE',
        'help': 'a smaller branch scale at a backbone width: the branches run their first '
                'channels there, e.g. 0.5=1'})
    widths: list = field(default_factory=lambda: [1.0], metadata={
        'type': float, 'nargs': '+',
        'help': 'backbone widths (nested channel sets) trained on shared weights, '
                'e.g. 1.0 0.75 0.5'})
    smoke: bool = field(default=False, metadata={
        'help': 'tiny run for CI'})
    batch_size: int = field(default=32, metadata={'cli': False, 'help': 'images per step'})
    lr: float = field(default=2e-3, metadata={
        'cli': False, 'help': 'peak learning rate of both stages (AdamW, warm-up and cosine)'})

    @classmethod
    def from_dict(cls, values: dict) -> 'AdaconTrainConfig':
        """Read a stored configuration; keys it lacks keep their defaults."""
        return config_from_dict(cls, values)

    @classmethod
    def from_checkpoint(cls, checkpoint: dict) -> 'AdaconTrainConfig':
        """Return the configuration a checkpoint was trained with, this format or an older.

        Older checkpoints kept the settings apart (``training``, the model's ``config``,
        the data's input size, one branch per cluster); they are gathered here. Their
        epochs are those that ran (one per stage in a smoke run).
        """
        if 'train_config' in checkpoint:
            return cls.from_dict(checkpoint['train_config'])
        training, model = checkpoint.get('training', {}), checkpoint.get('config', {})
        values = {key: training[key] for key in ('seed', 'epochs_static', 'epochs_branches',
                                                 'batch_size', 'lr', 'smoke', 'widths')
                  if key in training}
        full = model.get('branch_scale', 1.0)
        values['branch_scale_at'] = [(float(width), float(scale)) for width, scale
                                     in training.get('branch_scales', []) if scale != full]
        values['branch_scale'] = full
        if 'head_width' in model:
            values['head_width'] = model['head_width']
        if 'branch_ids' in checkpoint:
            values['clusters'] = len(checkpoint['branch_ids'])
        if 'input_size' in checkpoint:
            values['input_size'] = int(checkpoint['input_size'][0])
        return cls.from_dict(values)
