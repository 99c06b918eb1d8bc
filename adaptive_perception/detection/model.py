"""AdaCon's parts: backbone, CenterNet-style heads and the branch controller (thesis ch. 6).

The static head detects every class. Each context branch is the same head with every
layer's width scaled by |branch classes| / |all classes| (thesis 6.3.2), so that
running one branch instead of the static head spends a fraction of the head's MACs.
``branch_scale`` widens the branches beyond that share (a departure from the thesis,
measured in the model card: at 6/18 of the static width the branches cap the
adaptive modes' mAP well below the static head's).
The head is the larger part of the model on purpose: in RetinaNet, where AdaCon saves
most, the head is ~62% of the MACs.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution, batch norm, ReLU: the one layer type of backbone and heads."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ResidualBlock(nn.Module):
    """Two conv-BN layers with an identity shortcut (ResNet's basic block)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_relu(channels, channels),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual sum, then ReLU."""
        return F.relu(x + self.body(x))


class Backbone(nn.Module):
    """Three stride-2 stages to output stride 8, kept cheap so the head dominates.

    ``widths``: output channels of the stem and the two stages after it; the last is
    the feature width every head and the controller read.
    """

    stride = 8

    def __init__(self, widths: tuple = (24, 48, 96), num_blocks: int = 1):
        super().__init__()
        self.widths = tuple(widths)
        stem, mid, out = widths
        self.stem = conv_bn_relu(3, stem, stride=2)
        self.stage2 = nn.Sequential(conv_bn_relu(stem, mid, stride=2), conv_bn_relu(mid, mid))
        self.stage3 = nn.Sequential(
            conv_bn_relu(mid, out, stride=2), *[ResidualBlock(out) for _ in range(num_blocks)])
        self.out_channels = out

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Normalised image (N, 3, H, W) -> features (N, C, H/8, W/8)."""
        return self.stage3(self.stage2(self.stem(image)))


class CenterHead(nn.Module):
    """Two 3x3 conv-BN-ReLU layers of ``width``, then 1x1 ``heatmap`` logits and ``box``.

    ``box`` holds (dx, dy, log(w / stride), log(h / stride)) per cell: the centre
    offset inside the cell and the log size, which trains better than pixels;
    :class:`DecodedHead` turns both outputs into what the exported graphs promise.
    """

    def __init__(self, in_channels: int, width: int, num_classes: int, prior: float = 0.1):
        super().__init__()
        self.trunk = nn.Sequential(conv_bn_relu(in_channels, width), conv_bn_relu(width, width))
        self.heatmap = nn.Conv2d(width, num_classes, 1)
        self.box = nn.Conv2d(width, 4, 1)
        # Start every class at a low probability, as RetinaNet and CenterNet do, so the
        # many background cells do not swamp the focal loss in the first steps.
        nn.init.constant_(self.heatmap.bias, -math.log((1 - prior) / prior))

    def forward(self, features: torch.Tensor) -> tuple:
        """Features -> (heatmap logits (N, n, h, w), raw box (N, 4, h, w))."""
        hidden = self.trunk(features)
        return self.heatmap(hidden), self.box(hidden)


def decode(heatmap_logits: torch.Tensor, box: torch.Tensor, stride: int) -> tuple:
    """Head outputs -> class probabilities and (dx, dy, w, h) with w, h in input pixels."""
    # The clamp keeps exp finite on any input (e^10 * stride is far beyond any image).
    size = torch.exp(box[:, 2:].clamp(max=10.0)) * stride
    return torch.sigmoid(heatmap_logits), torch.cat([box[:, :2], size], dim=1)


class DecodedHead(nn.Module):
    """A head as exported: ``features`` -> (``heatmap`` probabilities, ``box`` in pixels)."""

    def __init__(self, head: CenterHead, stride: int):
        super().__init__()
        self.head = head
        self.stride = stride

    def forward(self, features: torch.Tensor) -> tuple:
        """Features -> (``heatmap``, ``box``) as manifest.py defines them."""
        return decode(*self.head(features), self.stride)


class BranchController(nn.Module):
    """Global average and max pooling, two linear layers -> one logit per branch.

    Max pooling keeps the trace of a single small object that averaging would wash out.
    Trained with BCE on the logits against "cluster present" labels, so the sigmoid of
    a logit is the probability the multi-branch threshold is compared with.
    """

    def __init__(self, in_channels: int, num_branches: int, hidden: int = 64):
        super().__init__()
        self.fc1 = nn.Linear(2 * in_channels, hidden)
        self.fc2 = nn.Linear(hidden, num_branches)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Features -> (N, K) logits."""
        pooled = torch.cat([features.mean(dim=(2, 3)), features.amax(dim=(2, 3))], dim=1)
        return self.fc2(F.relu(self.fc1(pooled)))


def branch_width(width: int, num_branch_classes: int, num_classes: int,
                 minimum: int = 8, scale: float = 1.0) -> int:
    """Width of every layer of a branch head: the static width x its share of the classes.

    ``scale`` multiplies that share, capped at the static width.
    """
    return min(width, max(minimum, round(width * num_branch_classes / num_classes * scale)))


class AdaCon(nn.Module):
    """Backbone, static head over all classes, branch controller, one head per cluster.

    Classes are indices ``0 .. num_classes-1`` (the static head's channels);
    ``branch_classes[i]`` lists the classes branch ``i`` detects, in its channel order
    (the cluster's classes and the common ones).
    """

    def __init__(self, num_classes: int, branch_classes: list, widths: tuple = (24, 48, 96),
                 num_blocks: int = 1, head_width: int = 192, controller_hidden: int = 64,
                 min_branch_width: int = 8, branch_scale: float = 1.0):
        super().__init__()
        self.num_classes = num_classes
        self.head_width, self.min_branch_width = head_width, min_branch_width
        self.branch_classes = [list(map(int, classes)) for classes in branch_classes]
        self.backbone = Backbone(widths, num_blocks)
        self.stride = self.backbone.stride
        channels = self.backbone.out_channels
        self.static_head = CenterHead(channels, head_width, num_classes)
        self.controller = BranchController(channels, len(branch_classes), controller_hidden)
        self.branches = nn.ModuleList(
            CenterHead(channels, branch_width(head_width, len(classes), num_classes,
                                              min_branch_width, branch_scale), len(classes))
            for classes in self.branch_classes)

    def forward(self, image: torch.Tensor) -> dict:
        """Run every part (training and checks): features, static head, controller, branches."""
        features = self.backbone(image)
        return {
            'features': features,
            'static': self.static_head(features),
            'logits': self.controller(features),
            'branches': [branch(features) for branch in self.branches],
        }
