"""What an exported FastestDet model folder holds, read by the runtime (no torch).

``manifest.json`` with ``"family": "fastestdet"``: the COCO classes (category id ->
name, in the order of the graph's class channels), how a frame becomes the graph's
input, how scores are made, and one entry per level graph (input size, precision,
file, MACs). Every graph takes ``image`` (1, 3, H, W) and gives ``prediction``
(1, 5 + classes, H/16, W/16); see model.py for their meaning.

Level entries in the detector's ``level_modes`` read ``static@<size>`` (e.g.
``static@224``; plain ``static`` = the largest size), optionally ``/int8`` for the
INT8 copy of that size's graph where the folder has one (``static@224/int8``).
FastestDet has a single head: ``static`` is its only mode kind.
"""

from dataclasses import asdict, dataclass, field

from adaptive_perception.runtime.manifest import JsonObject, ModelManifest

FAMILY = 'fastestdet'
FORMAT = 'fastestdet-onnx/1'
PRECISIONS = ('fp32', 'int8')


@dataclass(frozen=True)
class LevelGraph:
    """One resident graph: square input size, precision, file, MACs per frame."""

    size: int
    precision: str
    file: str
    macs: int


@dataclass(frozen=True)
class FastestDetManifest(ModelManifest):
    """Everything the runtime needs to run an exported FastestDet folder."""

    FORMAT = FORMAT
    KIND = 'exported model'

    classes: dict                     # COCO category id -> name, in class-channel order
    graphs: list                      # LevelGraph, largest size first
    stride: int = 16
    train_size: int = 352             # input size the weights were trained at (box sizes)
    channel_order: str = 'bgr'        # the graph's input channels (upstream trained on BGR)
    obj_power: float = 0.6            # score = obj ** obj_power * cls ** cls_power
    cls_power: float = 0.4
    family: str = FAMILY
    format: str = FORMAT
    source: dict = field(default_factory=dict)  # provenance: weights, upstream, exporter

    @property
    def sizes(self) -> list:
        """Input sizes there are graphs for, largest first."""
        return sorted({g.size for g in self.graphs}, reverse=True)

    @property
    def modes(self) -> list[str]:
        """The level entry of every graph ('static@224', 'static@224/int8'), in graph order."""
        return [str(SizeMode(g.size, g.precision)) for g in self.graphs]

    def graph(self, size: int, precision: str = 'fp32') -> LevelGraph:
        """Return the graph for (size, precision); ValueError naming what there is."""
        for g in self.graphs:
            if g.size == size and g.precision == precision:
                return g
        raise ValueError(f'no {precision} graph at {size}; this model has '
                         f'{", ".join(f"{g.size}:{g.precision}" for g in self.graphs)}')

    def to_json(self) -> JsonObject:
        """Return the manifest as JSON values, category ids as text (JSON's keys)."""
        return {**asdict(self), 'classes': {str(k): v for k, v in self.classes.items()}}

    @classmethod
    def from_json(cls, data: dict) -> 'FastestDetManifest':
        """Rebuild the graph records and the integer category ids JSON made text."""
        return cls(**{**data, 'graphs': [LevelGraph(**g) for g in data['graphs']],
                      'classes': {int(k): v for k, v in data['classes'].items()}})

    def check(self, model_dir) -> None:
        """Sizes multiples of 32 in a known precision, every graph file there."""
        path, manifest = self.path(model_dir), self
        if not manifest.graphs:
            raise ValueError(f'{path}: no graphs')
        for g in manifest.graphs:
            if g.precision not in PRECISIONS or g.size % 32:
                raise ValueError(f'{path}: graph {g.file}: size {g.size} must be a multiple '
                                 f'of 32, precision one of {PRECISIONS}')
            self.require_files(model_dir, [g.file])
        if manifest.channel_order not in ('bgr', 'rgb'):
            raise ValueError(f'{path}: channel_order must be bgr or rgb')


@dataclass(frozen=True, repr=False)
class SizeMode:
    """A FastestDet level entry: the input size and precision of the graph a frame runs.

    ``kind`` and ``width`` are what the detector publishes for every family
    (DetectionArray.mode, .width): FastestDet has one head and one channel set.
    """

    size: int
    precision: str = 'fp32'
    kind: str = 'static'
    width: float = 1.0
    threshold: float = 0.0

    def __str__(self) -> str:
        return f'static@{self.size}' + ('' if self.precision == 'fp32' else f'/{self.precision}')

    __repr__ = __str__  # logs name the entry as it is written in level_modes


def parse_size_mode(text: str, sizes: list, precisions: dict | None = None) -> SizeMode:
    """Parse 'static', 'static@<size>' or 'static@<size>/int8' against what the model has.

    ``sizes``: the model's input sizes, largest first; ``precisions``: size -> the
    precisions there are graphs for (default: fp32 only). ValueError otherwise.
    """
    text = str(text).strip()
    kind, at, rest = text.partition('@')
    size_text, colon, precision = rest.partition('/')
    precision = precision if colon else 'fp32'
    expected = (f"mode {text!r}: expected 'static' or 'static@<size>[/int8]' with a size of "
                f"this model ({', '.join(str(s) for s in sizes)})")
    if kind != 'static' or (at and not size_text.isdigit()) or (colon and not at):
        raise ValueError(expected)
    size = int(size_text) if at else sizes[0]
    if size not in sizes:
        raise ValueError(expected)
    available = (precisions or {}).get(size, ['fp32'])
    if precision not in available:
        raise ValueError(f'mode {text!r}: precision {precision!r} not available at {size} '
                         f'(this model has {", ".join(available)})')
    return SizeMode(size, precision)
