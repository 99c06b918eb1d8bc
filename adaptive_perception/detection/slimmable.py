"""Nested channel sets: one AdaCon whose backbone runs at several widths on shared weights.

Slimmable networks (Yu et al.; the nested, droppable channel sets of
the self-adaptive MSc thesis): width ``w`` uses the first ``round(w x C)`` channels of
every backbone layer, so the narrower sets are nested in the wider ones and one set
of convolution weights serves every width. Batch-norm statistics differ per width, so
each width keeps its own batch norms ("switchable" batch norm), in the backbone and in
every head, whose first layer reads the narrower features. One set of heads serves
every backbone width. The branches may be nested channel sets too: at a backbone
width given a smaller branch scale, each branch runs its first channels only (its
most important ones, as :func:`init_branches_from_static` orders them), so the
cheapest width does not pay for branches sized for the widest.

:func:`at_width` cuts a plain :class:`AdaCon` of the narrower shape out of the shared
weights, so each width exports as its own static graph with no masked work.
"""

from collections import OrderedDict

import torch
from torch import nn
from torch.func import functional_call

from adaptive_perception.detection.model import AdaCon, branch_width

WIDTHS = (1.0, 0.75, 0.5)


def width_key(width: float) -> str:
    """'w100' for 1.0, 'w075' for 0.75: a name usable in module and file names."""
    return f'w{round(width * 100):03d}'


def scaled(channels: int, width: float) -> int:
    """Channels of a layer at ``width``: its first ``round(width x channels)``, at least one."""
    return max(1, round(channels * width))


def scaled_widths(widths: tuple, width: float) -> tuple:
    """Backbone layer widths at ``width``."""
    return tuple(scaled(c, width) for c in widths)


class SlimmableAdaCon(nn.Module):
    """An :class:`AdaCon` (``full``) plus the batch norms of every narrower width.

    ``forward(image, width)`` runs the model with each backbone convolution cut to
    its first channels at ``width``, the heads' and controller's inputs cut to match,
    and ``width``'s own batch norms. Gradients reach the shared weights from every width.
    ``branch_scales``: backbone width -> the branches' scale there (``branch_width``),
    at most the model's own (``config['branch_scale']``, the default at every width).
    """

    def __init__(self, config: dict, widths: tuple = (1.0,), branch_scales: dict | None = None):
        super().__init__()
        widths = tuple(sorted({float(w) for w in widths}, reverse=True))
        if not widths or widths[0] != 1.0 or widths[-1] <= 0:
            raise ValueError(f'widths {widths} must be in (0, 1] and include 1.0, the '
                             'shared weights')
        self.widths = widths
        self.config = dict(config)
        self.full = AdaCon(**config)
        self.backbone_widths = self.full.backbone.widths
        full_scale = self.config.get('branch_scale', 1.0)
        self.branch_scales = {w: full_scale for w in widths}
        for width, scale in (branch_scales or {}).items():
            if float(width) not in self.branch_scales or not 0 < scale <= full_scale:
                raise ValueError(f'branch scale {scale} at width {width}: the width must be '
                                 f'one of {widths}, the scale in (0, {full_scale}]')
            self.branch_scales[float(width)] = float(scale)
        self.norms = nn.ModuleDict({
            width_key(w): nn.ModuleDict({
                name.replace('.', '/'): nn.BatchNorm2d(self._channels(name, module, w))
                for name, module in self.full.named_modules()
                if isinstance(module, nn.BatchNorm2d)})
            for w in self.widths if w != 1.0})
        self.copy_norms_from_full()

    def branch_channels(self, index: int, width: float) -> int:
        """Channels of branch ``index``'s layers at backbone ``width``."""
        full = self.full
        return branch_width(full.head_width, len(full.branch_classes[index]), full.num_classes,
                            full.min_branch_width, self.branch_scales[width])

    def _channels(self, name: str, norm: nn.BatchNorm2d, width: float) -> int:
        if name.startswith('backbone.'):
            return scaled(norm.num_features, width)
        if name.startswith('branches.'):
            return self.branch_channels(int(name.split('.')[1]), width)
        return norm.num_features

    def copy_norms_from_full(self) -> None:
        """Set every narrower width's batch norms to the full width's (a sliced copy)."""
        with torch.no_grad():
            for norms in self.norms.values():
                for key, norm in norms.items():
                    source = self.full.get_submodule(key.replace('/', '.'))
                    n = norm.num_features
                    for attr in ('weight', 'bias', 'running_mean', 'running_var'):
                        getattr(norm, attr).copy_(getattr(source, attr)[:n])

    def norm_parameters(self, *parts: str) -> list:
        """Parameters of the narrower widths' batch norms inside ``parts`` ('backbone', ...)."""
        return [p for norms in self.norms.values() for key, norm in norms.items()
                if key.split('/')[0] in parts for p in norm.parameters()]

    @torch.no_grad()
    def copy_head_norms(self, target: str, source: str, keep: list) -> None:
        """Copy head ``source``'s narrower-width batch norms into head ``target``'s.

        At every narrower width, ``target``'s norm ``i`` := ``source``'s at channels
        ``keep[i]`` (what :func:`init_branches_from_static` did at full width).
        """
        for norms in self.norms.values():
            for i, channels in enumerate(keep):
                into = norms[f'{target}/trunk/{i}/1'.replace('.', '/')]
                origin = norms[f'{source}/trunk/{i}/1'.replace('.', '/')]
                first = channels[:into.num_features]  # a nested branch: its first channels
                for name in ('weight', 'bias', 'running_mean', 'running_var'):
                    getattr(into, name).copy_(getattr(origin, name)[first])

    def width_state(self, width: float, part: str = '') -> 'OrderedDict[str, torch.Tensor]':
        """Parameters and buffers of ``full`` (or of its ``part``) as seen at ``width``.

        Slices of the shared convolutions and linears, and ``width``'s own batch norms
        (not slices, so that training updates them in place). Names are ``full``'s.
        """
        if width not in self.widths:
            raise ValueError(f'width {width} is not one of {self.widths}')
        module = self.full.get_submodule(part)
        full_state = OrderedDict(module.named_parameters(prefix=part))
        full_state.update(module.named_buffers(prefix=part))
        if width == 1.0:
            return full_state
        norms = self.norms[width_key(width)]
        channels_in = self.backbone_widths[-1]
        channels_out = scaled(channels_in, width)
        state = OrderedDict()
        for name, tensor in full_state.items():
            module_name, _, attr = name.rpartition('.')
            module = self.full.get_submodule(module_name)
            if isinstance(module, nn.BatchNorm2d):
                state[name] = getattr(norms[module_name.replace('.', '/')], attr)
            elif isinstance(module, nn.Conv2d) and name.startswith('backbone.'):
                out = scaled(module.out_channels, width)
                inp = 3 if module.in_channels == 3 else scaled(module.in_channels, width)
                state[name] = tensor[:out, :inp]
            elif name.startswith('branches.'):
                state[name] = self._branch_slice(module_name, attr, tensor, channels_out, width)
            elif module_name.endswith('trunk.0.0'):  # a head's first layer reads the features
                state[name] = tensor[:, :channels_out]
            elif module_name == 'controller.fc1' and attr == 'weight':
                # Its input is [mean pool, max pool] of the features: cut both halves.
                state[name] = torch.cat([tensor[:, :channels_out],
                                         tensor[:, channels_in:channels_in + channels_out]], 1)
            else:
                state[name] = tensor
        return state

    def _branch_slice(self, module_name: str, attr: str, tensor: torch.Tensor,
                      features: int, width: float) -> torch.Tensor:
        """Cut a branch parameter to its first ``branch_channels`` at ``width``."""
        k = self.branch_channels(int(module_name.split('.')[1]), width)
        if module_name.endswith('trunk.0.0'):  # reads the features, writes k channels
            return tensor[:k, :features]
        if module_name.endswith('trunk.1.0'):
            return tensor[:k, :k]
        return tensor[:, :k] if attr == 'weight' else tensor  # heatmap and box read k

    def forward(self, image: torch.Tensor, width: float = 1.0) -> dict:
        """``AdaCon.forward`` at ``width``."""
        return functional_call(self.full, self.width_state(width), (image,))

    def part(self, name: str, inputs: torch.Tensor, width: float) -> object:
        """Run one part of ``full`` (e.g. 'backbone', 'static_head', 'branches.0') at ``width``."""
        prefix = name + '.'
        state = {k.removeprefix(prefix): v for k, v in self.width_state(width, name).items()}
        return functional_call(self.full.get_submodule(name), state, (inputs,))

    def at_width(self, width: float) -> AdaCon:
        """Cut out a plain AdaCon of ``width``'s shape holding its weights (for export)."""
        config = dict(self.config)
        config['widths'] = scaled_widths(self.backbone_widths, width)
        config['branch_scale'] = self.branch_scales[width]
        model = AdaCon(**config)
        model.load_state_dict({k: v.detach().clone() for k, v in self.width_state(width).items()})
        return model.eval()
