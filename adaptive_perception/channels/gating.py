"""Per-input channel skipping (ACS, adaptive channel skipping) on the static detection head.

A small gating network reads the pooled backbone features and decides, per input,
which hidden channels of the head's two 3x3 layers to compute. Unlike the released
ACS code, which computed every channel and multiplied the skipped ones by zero (and
trained with its cost term set to zero), :func:`gathered_forward` gathers the kept
filters before each convolution, so a skipped channel costs nothing, and training
pays a real cost term: the expected share of the head's MACs.

``masked_forward`` is the reference the gathered path must equal: every channel
computed, the skipped ones zeroed. The static head is where skipping could pay:
it is the largest part of the detector (the branches are already narrow).
"""

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from adaptive_perception.detection.model import AdaCon, CenterHead, decode
from adaptive_perception.detection.train import freeze, head_loss


class ChannelGate(nn.Module):
    """Pooled features -> one keep logit per hidden channel of both head layers.

    Average and max pooling, as the branch controller reads them; the last bias
    starts high, so a fresh gate keeps everything and training removes channels.
    """

    def __init__(self, in_channels: int, width: int, hidden: int = 32, start: float = 3.0):
        super().__init__()
        self.width = width
        self.fc1 = nn.Linear(2 * in_channels, hidden)
        self.fc2 = nn.Linear(hidden, 2 * width)
        nn.init.zeros_(self.fc2.weight)
        nn.init.constant_(self.fc2.bias, start)

    def forward(self, features: torch.Tensor) -> tuple:
        """Features (N, C, h, w) -> keep logits of layer 1 and layer 2, each (N, width)."""
        pooled = torch.cat([features.mean(dim=(2, 3)), features.amax(dim=(2, 3))], dim=1)
        logits = self.fc2(F.relu(self.fc1(pooled)))
        return logits[:, :self.width], logits[:, self.width:]


def _folded(layer: nn.Sequential) -> tuple:
    """(conv weight, per-channel scale, per-channel shift) of a conv-BN-ReLU layer in eval."""
    conv, norm = layer[0], layer[1]
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    return conv.weight, scale, norm.bias - norm.running_mean * scale


def head_macs(in_channels: int, width: int, classes: int, cells: int, kept1: torch.Tensor,
              kept2: torch.Tensor) -> torch.Tensor:
    """MACs of the head computing ``kept1`` / ``kept2`` hidden channels (tensors or numbers)."""
    return cells * (9 * in_channels * kept1 + 9 * kept1 * kept2 + (classes + 4) * kept2)


class GatedHead(nn.Module):
    """A :class:`CenterHead` whose hidden channels a :class:`ChannelGate` picks per input."""

    def __init__(self, head: CenterHead, in_channels: int, gate_hidden: int = 32):
        super().__init__()
        self.head = head
        self.in_channels = in_channels
        self.width = head.trunk[0][0].out_channels
        self.gate = ChannelGate(in_channels, self.width, gate_hidden)

    def expected_share(self, features: torch.Tensor, keep1: torch.Tensor,
                       keep2: torch.Tensor) -> torch.Tensor:
        """Share of the dense head's MACs at keep probabilities ``keep1``, ``keep2`` (N, width)."""
        cells = features.shape[2] * features.shape[3]
        classes = self.head.heatmap.out_channels
        full = head_macs(self.in_channels, self.width, classes, cells, self.width, self.width)
        return head_macs(self.in_channels, self.width, classes, cells, keep1.sum(1),
                         keep2.sum(1)) / full

    def masked_forward(self, features: torch.Tensor, mask1: torch.Tensor,
                       mask2: torch.Tensor) -> tuple:
        """Compute every channel and multiply the skipped ones by zero.

        The training path, and the reference the gathered path must equal. Masks
        (N, width) in [0, 1].
        """
        hidden = self.head.trunk[0](features) * mask1[:, :, None, None]
        hidden = self.head.trunk[1](hidden) * mask2[:, :, None, None]
        return self.head.heatmap(hidden), self.head.box(hidden)

    def train_forward(self, features: torch.Tensor, temperature: float = 1.0) -> tuple:
        """Training: hard Gumbel-sigmoid decisions with straight-through gradients.

        Returns (head outputs, expected share of the dense head's MACs per image).
        """
        logits1, logits2 = self.gate(features)
        masks, probabilities = [], []
        for logits in (logits1, logits2):
            noise = torch.rand_like(logits).clamp(1e-6, 1 - 1e-6)
            soft = torch.sigmoid((logits + torch.log(noise) - torch.log1p(-noise)) / temperature)
            masks.append((soft > 0.5).float() + soft - soft.detach())
            probabilities.append(torch.sigmoid(logits))
        return (self.masked_forward(features, *masks),
                self.expected_share(features, *probabilities))

    def decide(self, features: torch.Tensor) -> tuple:
        """Inference decisions for one image: (kept layer-1 channels, kept layer-2 channels).

        Deterministic (logit > 0); each layer keeps at least its best channel.
        """
        kept = []
        for logits in self.gate(features):
            logits = logits[0]
            kept.append(torch.nonzero(logits >= torch.clamp(logits.max(), max=0.0)).flatten())
        return tuple(kept)

    def gathered_forward(self, features: torch.Tensor) -> tuple:
        """One image, eval mode: only the kept channels are computed.

        The kept filters (and their folded batch norm) are gathered before each
        convolution; the next layer reads only the kept inputs. Returns
        (heatmap logits, box, kept layer-1 count, kept layer-2 count).
        """
        kept1, kept2 = self.decide(features)
        weight1, scale1, shift1 = _folded(self.head.trunk[0])
        weight2, scale2, shift2 = _folded(self.head.trunk[1])
        hidden = F.conv2d(features, weight1[kept1], padding=1)
        hidden = F.relu(hidden * scale1[kept1, None, None] + shift1[kept1, None, None])
        hidden = F.conv2d(hidden, weight2[kept2][:, kept1], padding=1)
        hidden = F.relu(hidden * scale2[kept2, None, None] + shift2[kept2, None, None])
        heatmap = F.conv2d(hidden, self.head.heatmap.weight[:, kept2], self.head.heatmap.bias)
        box = F.conv2d(hidden, self.head.box.weight[:, kept2], self.head.box.bias)
        return heatmap, box, kept1.numel(), kept2.numel()


class DecodedGatedHead(nn.Module):
    """A gated head as exported: ``features`` -> (``heatmap``, ``box``, ``kept``).

    ``heatmap`` and ``box`` as the static head graph gives them (manifest.py), so the
    engine runs it in its place; ``kept`` holds the computed channel counts of the
    two layers.
    """

    def __init__(self, gated: GatedHead, stride: int):
        super().__init__()
        self.gated = gated
        self.stride = stride

    def forward(self, features: torch.Tensor) -> tuple:
        """One image's features -> decoded outputs and the kept counts."""
        heatmap, box, kept1, kept2 = self.gated.gathered_forward(features)
        return (*decode(heatmap, box, self.stride), torch.tensor([kept1, kept2]))


def train_gate(model: AdaCon, train_set, alpha: float, epochs: int, batch_size: int = 32,
               seed: int = 0, log=print) -> GatedHead:
    """Train a gate on ``model``'s static head (fine-tuned with it) on the frozen backbone.

    Loss: the head's detection loss + ``alpha`` x the expected share of the dense
    head's MACs (the ACS cost term, here not zero). The gate learns at 1e-3, the head
    at 2e-4, so it adapts to its skipped channels without forgetting.
    """
    torch.manual_seed(seed)
    freeze(model.backbone)
    gated = GatedHead(copy.deepcopy(model.static_head), model.backbone.out_channels)
    optimizer = torch.optim.AdamW([{'params': gated.gate.parameters(), 'lr': 1e-3},
                                   {'params': gated.head.parameters(), 'lr': 2e-4}],
                                  weight_decay=1e-4)
    loader = DataLoader(train_set, batch_size, shuffle=True, drop_last=len(train_set) > batch_size,
                        generator=torch.Generator().manual_seed(seed))
    for epoch in range(epochs):
        gated.train()
        sums = np.zeros(2)
        for batch in loader:
            with torch.no_grad():
                features = model.backbone(batch['image'])
            outputs, share = gated.train_forward(features)
            loss, _, _ = head_loss(outputs, {k: batch[k] for k in ('heatmap', 'box', 'cls_map')})
            optimizer.zero_grad(set_to_none=True)
            (loss + alpha * share.mean()).backward()
            optimizer.step()
            sums += [loss.item(), share.mean().item()]
        loss, share = sums / max(1, len(loader))
        log(f'gate alpha {alpha:g} epoch {epoch + 1}/{epochs}: head loss {loss:.4f}, '
            f'expected MAC share {share:.3f}')
    return gated.eval()
