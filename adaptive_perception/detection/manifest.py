"""The contract between training/export (PyTorch) and the runtime (ONNX Runtime).

``export adacon`` writes one ONNX graph per part - backbone, branch controller,
static head, one head per context branch - for every backbone width (nested channel
set, see detection/slimmable.py), and ``manifest.json`` describing them. The runtime
reads only this: it never imports torch.

Graph inputs and outputs (batch size 1, float32, NCHW):

* backbone: ``image`` (1, 3, H, W): the RGB frame letterboxed with :func:`letterbox`,
  scaled to 0..1 and normalised with ``mean``/``std`` -> ``features`` (1, C,
  H/stride, W/stride)
* controller: ``features`` -> ``logits`` (1, K); probability = sigmoid(logits)
* static head and every branch: ``features`` -> ``heatmap`` (1, n, h, w), class
  probabilities after sigmoid, channel ``i`` = the head's ``class_ids[i]``;
  ``box`` (1, 4, h, w) = (dx, dy, w, h): object centre at
  ((col + dx) * stride, (row + dy) * stride), width and height in input pixels.

``int8`` (optional): a calibrated INT8 copy of every graph above, with the same
inputs and outputs (``runtime/quantize.py``): ``graphs`` maps each FP32 file to its
INT8 file, ``reports`` what was quantized and how it was calibrated.
"""

from dataclasses import asdict, dataclass, field
from typing import NamedTuple, Sequence

import numpy as np
from PIL import Image

from adaptive_perception.runtime.manifest import JsonObject, ModelManifest

FORMAT = 'adacon-onnx/2'
# The modes evaluated and benchmarked by default, from full quality to most frugal;
# the detector's default level profile.
DEFAULT_MODES = ('static', 'multi:0.1', 'multi:0.3', 'single')


@dataclass(frozen=True)
class HeadSpec:
    """One detection head graph: which global classes its channels are."""

    name: str
    file: str
    class_ids: list
    macs: int


@dataclass(frozen=True)
class WidthGraphs:
    """The graphs of one backbone width: every part, each reading that width's features."""

    width: float                     # share of the full backbone's channels
    backbone: dict                   # {'file': ..., 'macs': ...}
    controller: dict
    static_head: HeadSpec
    branches: list                   # HeadSpec per context cluster, controller order

    def files(self) -> list:
        """Every graph file of this width."""
        return [self.backbone['file'], self.controller['file'], self.static_head.file,
                *[b.file for b in self.branches]]


@dataclass(frozen=True)
class Manifest(ModelManifest):
    """Everything the runtime needs to run an exported AdaCon model."""

    FORMAT = FORMAT
    KIND = 'exported AdaCon model'

    input_size: list                 # [H, W] the graphs were exported for
    stride: int                      # feature-map cells -> input pixels
    mean: list                       # per channel, on 0..1 RGB
    std: list
    classes: dict                    # global class id (str in JSON) -> name
    common_class_ids: list           # classes every branch also detects
    widths: list                     # WidthGraphs, widest (1.0) first
    format: str = FORMAT
    training: dict = field(default_factory=dict)  # provenance: data, seed, epochs
    int8: dict = field(default_factory=dict)  # {'graphs': {fp32: int8}, 'reports', 'calibration'}

    @property
    def precisions(self) -> tuple[str, ...]:
        """The precisions every graph is there in: ('fp32',) or ('fp32', 'int8')."""
        return ('fp32', 'int8') if self.int8.get('graphs') else ('fp32',)

    def file(self, fp32_file: str, precision: str = 'fp32') -> str:
        """Return the file of graph ``fp32_file`` in ``precision``; ValueError if not there."""
        if precision == 'fp32':
            return fp32_file
        if precision not in self.precisions:
            raise ValueError(f'no {precision} graphs in this model; it has '
                             f'{", ".join(self.precisions)}')
        return self.int8['graphs'][fp32_file]

    def graphs(self, width: float = 1.0) -> WidthGraphs:
        """Return the graphs of ``width``; ValueError naming the widths there are."""
        for graphs in self.widths:
            if graphs.width == width:
                return graphs
        raise ValueError(f'no graphs for width {width:g}; this model has widths '
                         f'{[g.width for g in self.widths]}')

    @property
    def branches(self) -> list:
        """The context branches (the same at every width): names and classes."""
        return self.widths[0].branches

    def to_json(self) -> JsonObject:
        """Return the manifest as JSON values, class ids as text (JSON's keys)."""
        return {**asdict(self), 'classes': {str(k): v for k, v in self.classes.items()}}

    @classmethod
    def from_json(cls, data: dict) -> 'Manifest':
        """Rebuild the per-width graph records and the integer class ids JSON made text."""
        data = {**data, 'widths': [WidthGraphs(**{
            **graphs, 'static_head': HeadSpec(**graphs['static_head']),
            'branches': [HeadSpec(**b) for b in graphs['branches']]})
            for graphs in data['widths']],
            'classes': {int(k): v for k, v in data['classes'].items()}}
        return cls(**data)

    def check(self, model_dir) -> None:
        """Widths widest first, the same branches at each, every graph file there."""
        path, manifest = self.path(model_dir), self
        widths = [g.width for g in manifest.widths]
        if not widths or widths[0] != 1.0 or widths != sorted(set(widths), reverse=True):
            raise ValueError(f'{path}: widths {widths} must be distinct, widest (1.0) first')
        for graphs in manifest.widths:
            if [(b.name, b.class_ids) for b in graphs.branches] != \
                    [(b.name, b.class_ids) for b in manifest.branches]:
                raise ValueError(f'{path}: width {graphs.width:g} has other branches than 1.0')
            for file in graphs.files():
                self.require_files(model_dir, [file])
                for precision in manifest.precisions[1:]:
                    try:
                        other = manifest.file(file, precision)
                    except KeyError:
                        raise ValueError(f'{path}: no {precision} copy of {file}') from None
                    self.require_files(model_dir, [other])


PRECISIONS = ('fp32', 'int8')
MARGINS = ('context', 'score')


@dataclass(frozen=True)
class Mode:
    """How the detector runs a frame: which heads, at which backbone width and precision.

    ``static``: the static head over all classes. ``multi:T``: every branch whose
    controller probability is at least T (the top-scoring one if none is).
    ``single``: only the top-scoring branch. ``width``: the backbone's channel set
    (1.0 = all channels); written ``@0.5`` after the mode, omitted at 1.0.
    ``precision``: which copy of the graphs runs, written ``/int8`` last, omitted
    for fp32.

    ``cascade``: run ``cheap``; when its confidence margin (``margin``: ``context``
    = the controller's top-1 minus top-2 probability, ``score`` = how far the
    frame's detection scores are from undecided) is at least ``threshold``, publish
    it, else run ``costly`` too and publish that. Written
    ``cascade:<margin>=<D0>:<cheap>><costly>``, e.g.
    ``cascade:context=0.3:single@0.5/int8>static/int8``.
    """

    kind: str
    threshold: float = 0.0
    width: float = 1.0
    precision: str = 'fp32'
    margin: str = 'context'
    cheap: 'Mode | None' = None
    costly: 'Mode | None' = None

    def __str__(self) -> str:
        if self.kind == 'cascade':
            return f'cascade:{self.margin}={self.threshold:g}:{self.cheap}>{self.costly}'
        text = f'multi:{self.threshold:g}' if self.kind == 'multi' else self.kind
        text = text if self.width == 1.0 else f'{text}@{self.width:g}'
        return text if self.precision == 'fp32' else f'{text}/{self.precision}'

    def steps(self) -> tuple['Mode', ...]:
        """Return the plain modes this one may run: itself, or a cascade's cheap and costly."""
        return (self,) if self.kind != 'cascade' else (self.cheap, self.costly)


def _parse_plain(text: str) -> Mode:
    head, slash, precision = text.partition('/')
    precision = precision.strip() if slash else 'fp32'
    head, at, width_text = head.partition('@')
    width = -1.0
    try:
        width = float(width_text) if at else 1.0
    except ValueError:
        pass
    kind, _, value = head.strip().partition(':')
    threshold = 0.0
    if kind == 'multi':
        try:
            threshold = float(value)
        except ValueError:
            threshold = -1.0
    elif value:
        kind = ''
    if (kind in ('static', 'single', 'multi') and 0.0 <= threshold <= 1.0
            and 0.0 < width <= 1.0 and precision in PRECISIONS):
        return Mode(kind, threshold, width, precision)
    raise ValueError(f"mode {text!r}: expected 'static', 'single' or 'multi:<0..1>', "
                     "optionally with '@<width in (0, 1]>' and then '/fp32' or '/int8'")


def parse_mode(text: str) -> Mode:
    """Parse a mode (see ``Mode``); ValueError says what is expected.

    ``static``, ``single`` or ``multi:<0..1>``, optionally ``@<width in (0, 1]>`` and
    ``/<fp32|int8>``; or ``cascade:<margin>=<D0>:<cheap>><costly>``.
    """
    text = str(text).strip()
    if not text.startswith('cascade'):
        return _parse_plain(text)
    expected = (f"cascade {text!r}: expected 'cascade:<margin>=<0..1>:<cheap mode>><costly "
                f"mode>' with margin one of {', '.join(MARGINS)}")
    _, _, rest = text.partition(':')
    rule, _, pair = rest.partition(':')
    margin, equals, value = rule.partition('=')
    cheap, arrow, costly = pair.partition('>')
    try:
        threshold = float(value)
    except ValueError:
        raise ValueError(expected) from None
    if not equals or margin not in MARGINS or not 0.0 <= threshold <= 1.0 or not arrow:
        raise ValueError(expected)
    cheap, costly = _parse_plain(cheap), _parse_plain(costly)
    if cheap == costly:
        raise ValueError(f'cascade {text!r}: the cheap and the costly mode are the same')
    if margin == 'context' and cheap.kind == 'static':
        raise ValueError(f'cascade {text!r}: the context margin needs a cheap mode that runs '
                         f'the controller (multi or single), not static')
    return Mode('cascade', threshold, costly.width, costly.precision, margin, cheap, costly)


class Letterbox(NamedTuple):
    """A frame fitted into the model input: the padded canvas and the scale applied."""

    canvas: np.ndarray
    scale: float


def letterbox(rgb: np.ndarray, size: Sequence[int], mean: Sequence[float]) -> Letterbox:
    """Fit ``rgb`` into (H, W) keeping its aspect, padded right and bottom; (canvas, scale).

    Training and the runtime both call this, so they cannot drift apart: bilinear
    resampling, padding in the mean colour (zero after normalisation), and a box maps
    back with ``original = input / scale``.
    """
    height, width = size
    scale = min(height / rgb.shape[0], width / rgb.shape[1])
    new_w = max(1, round(rgb.shape[1] * scale))
    new_h = max(1, round(rgb.shape[0] * scale))
    if (new_h, new_w) != rgb.shape[:2]:
        rgb = np.asarray(Image.fromarray(rgb).resize((new_w, new_h), Image.BILINEAR))
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[...] = [round(255 * m) for m in mean]
    canvas[:new_h, :new_w] = rgb
    return Letterbox(canvas, scale)
