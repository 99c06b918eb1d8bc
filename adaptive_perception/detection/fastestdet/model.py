"""FastestDet (ShuffleNetV2 0.5x + SPP + one anchor-free head) as a plain PyTorch module.

Written for this project from the published architecture, so that the vendored
COCO-80 weights (``fastestdet_coco80.pth``, upstream's state dict) load with
``load_state_dict`` unchanged and the network can be re-exported by the project's
exporter at any input size. Parameter names follow upstream's state dict, which is
why the modules below are ``nn.Sequential`` with the same child indices.

Input: (1, 3, H, W) float, **BGR** channel order, 0..1 (upstream trained on
``cv2.imread`` images divided by 255), the whole frame stretched to (H, W) - no
letterbox, no mean/std. H and W must be multiples of 32.
Output: (1, 5 + classes, H/16, W/16) per cell: objectness (sigmoid), x/y offset and
w/h logits (raw; tanh and sigmoid are applied by the decoder), class probabilities
(softmax) - the same tensor upstream's export produces.
"""

import torch
from torch import nn

# ShuffleNetV2 0.5x: channels after the stem and after stages 2, 3, 4; blocks per stage.
STEM_CHANNELS = 24
STAGE_CHANNELS = (48, 96, 192)
STAGE_BLOCKS = (4, 8, 4)
STRIDE = 16  # output cells -> input pixels


def conv_bn(cin: int, cout: int, kernel: int = 1, stride: int = 1, depthwise: bool = False,
            relu: bool = True) -> list:
    """Conv (no bias) + BatchNorm (+ ReLU) as a list of layers to splice into a Sequential."""
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False,
                        groups=cin if depthwise else 1), nn.BatchNorm2d(cout)]
    return layers + [nn.ReLU(inplace=True)] if relu else layers


class ShuffleUnit(nn.Module):
    """A ShuffleNetV2 unit: stride 1 splits the channels, stride 2 downsamples both halves.

    ``branch_main``: 1x1 -> depthwise 3x3 -> 1x1; ``branch_proj`` (stride 2 only):
    depthwise 3x3 -> 1x1. At stride 1 the input's channels are split by the
    channel shuffle of the previous unit (even channels pass, odd ones are processed).
    """

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.stride = stride
        mid = cout // 2
        main_in = cin if stride == 2 else cin // 2
        main_out = cout - main_in if stride == 1 else cout - cin
        self.branch_main = nn.Sequential(
            *conv_bn(main_in, mid, 1),
            *conv_bn(mid, mid, 3, stride, depthwise=True, relu=False),
            *conv_bn(mid, main_out, 1))
        self.branch_proj = nn.Sequential(
            *conv_bn(cin, cin, 3, 2, depthwise=True, relu=False),
            *conv_bn(cin, cin, 1)) if stride == 2 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenate the two branches (the passed half and the processed half at stride 1)."""
        if self.stride == 2:
            return torch.cat([self.branch_proj(x), self.branch_main(x)], 1)
        kept, processed = x[:, 0::2], x[:, 1::2]  # the shuffle of the previous unit's output
        return torch.cat([kept, self.branch_main(processed)], 1)


class ShuffleNetV2Half(nn.Module):
    """ShuffleNetV2 0.5x; returns the stage 2, 3 and 4 maps (strides 8, 16, 32)."""

    def __init__(self):
        super().__init__()
        self.first_conv = nn.Sequential(*conv_bn(3, STEM_CHANNELS, 3, 2))
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = STEM_CHANNELS
        for name, cout, blocks in zip(('stage2', 'stage3', 'stage4'), STAGE_CHANNELS,
                                      STAGE_BLOCKS, strict=True):
            units = [ShuffleUnit(cin, cout, 2)] + [ShuffleUnit(cout, cout, 1)
                                                   for _ in range(blocks - 1)]
            setattr(self, name, nn.Sequential(*units))
            cin = cout

    def forward(self, x: torch.Tensor) -> tuple:
        """Return the stride 8, 16 and 32 maps."""
        x = self.maxpool(self.first_conv(x))
        c3 = self.stage2(x)
        c4 = self.stage3(c3)
        return c3, c4, self.stage4(c4)


class SPP(nn.Module):
    """1x1 reduction, then three depthwise 5x5 stacks (receptive fields 5, 9, 13) fused back."""

    def __init__(self, cin: int, channels: int):
        super().__init__()
        self.Conv1x1 = _Wrapped('conv1x1', nn.Sequential(*conv_bn(cin, channels, 1)))
        for i in (1, 2, 3):
            setattr(self, f'S{i}', nn.Sequential(*[layer for _ in range(i) for layer in
                                                   conv_bn(channels, channels, 5,
                                                           depthwise=True)]))
        self.output = nn.Sequential(*conv_bn(3 * channels, channels, 1, relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Fuse the three receptive fields back into the reduced map (residual)."""
        x = self.Conv1x1(x)
        y = torch.cat([self.S1(x), self.S2(x), self.S3(x)], 1)
        return torch.relu(x + self.output(y))


class _Wrapped(nn.Module):
    """One child under a fixed attribute name (upstream's state dict nests them so)."""

    def __init__(self, name: str, module: nn.Module):
        super().__init__()
        self._name = name
        setattr(self, name, module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, self._name)(x)


def _branch(channels: int, outputs: int) -> nn.Module:
    """Depthwise 5x5 + BN + ReLU, then 1x1 + BN: one output branch of the head."""
    return _Wrapped('conv5x5', nn.Sequential(*conv_bn(channels, channels, 5, depthwise=True),
                                             *conv_bn(channels, outputs, 1, relu=False)))


class DetectHead(nn.Module):
    """Objectness, box and class branches on a shared 1x1; concatenated per cell."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.conv1x1 = _Wrapped('conv1x1', nn.Sequential(*conv_bn(channels, channels, 1)))
        self.obj_layers = _branch(channels, 1)
        self.reg_layers = _branch(channels, 4)
        self.cls_layers = _branch(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return (1, 5 + classes, h, w): objectness, raw box, class probabilities."""
        x = self.conv1x1(x)
        return torch.cat([torch.sigmoid(self.obj_layers(x)), self.reg_layers(x),
                          torch.softmax(self.cls_layers(x), dim=1)], 1)


class FastestDet(nn.Module):
    """The whole detector: three backbone scales fused at stride 16, SPP, head.

    The stride-8 map is average-pooled down, the stride-32 map upsampled (nearest),
    both concatenated with the stride-16 map.
    """

    def __init__(self, num_classes: int = 80):
        super().__init__()
        self.num_classes = num_classes
        self.backbone = ShuffleNetV2Half()
        self.SPP = SPP(sum(STAGE_CHANNELS), STAGE_CHANNELS[1])
        self.detect_head = DetectHead(STAGE_CHANNELS[1], num_classes)
        self.avg_pool = nn.AvgPool2d(3, 2, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Return the per-cell prediction for a BGR 0..1 image (see the module docstring)."""
        c3, c4, c5 = self.backbone(image)
        fused = torch.cat([self.avg_pool(c3), c4,
                           nn.functional.interpolate(c5, scale_factor=2.0, mode='nearest')], 1)
        return self.detect_head(self.SPP(fused))


def load_fastestdet(weights, num_classes: int = 80) -> FastestDet:
    """Build a FastestDet in eval mode with upstream's state dict from ``weights`` (strict)."""
    model = FastestDet(num_classes)
    state = torch.load(weights, map_location='cpu', weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()
