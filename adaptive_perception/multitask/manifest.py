"""What an exported AdaMTL model folder holds, read by the runtime (no torch).

``manifest.json``: the model's settings (``config``: its tasks, class names, patch
size, the policies' targets), how a frame becomes the encoder's input (``input_size``,
``mean``, ``std``), one file per graph (``graphs``: the static, decided and policy
encoders, a decoder per task and ``decoders``, all tasks in one graph), the FLOPs the
runtime adds up per frame (``flops``, per block ``a*n + b*n^2`` in ``blocks``, per
decoder in ``decoders``), the resident policies (their arrays and FLOPs per number of
running tasks), the single-task references, where the weights came from, and
optionally stage 1's settings, the single-task references trained so far (while
they are being trained) and the INT8 copies (``int8``: ``graphs`` maps a graph
name to its INT8 file).

The tasks of a model are its own (``config['tasks']``): the node publishes those.
"""

from dataclasses import dataclass, field

from adaptive_perception.runtime.manifest import JsonObject, ModelManifest

FORMAT = 'adaptive_perception.adamtl.manifest/3'
# Written only when they hold something, as the exporter always did.
OPTIONAL = ('static_settings', 'single_task_progress', 'int8')


@dataclass(frozen=True)
class MultitaskManifest(ModelManifest):
    """Everything the runtime needs to run an exported AdaMTL folder."""

    FORMAT = FORMAT
    KIND = 'AdaMTL'

    config: dict                     # ModelConfig.to_json(): tasks, class_names, patch, ...
    input_size: int                  # square input the graphs take
    mean: float                      # on 0..1 RGB, every channel
    std: float
    graphs: dict                     # graph name -> file
    flops: dict                      # encoder_static, embed, merge_s<i>, decoders
    blocks: list                     # per stage, per block {'flops': [a, b]}
    policies: dict                   # name -> arrays, owners, FLOPs by owner count, targets
    decoders: dict                   # task -> {'graph': name, 'flops': ...}
    references: dict = field(default_factory=dict)  # single-task scores to compare with
    provenance: dict = field(default_factory=dict)
    static_settings: dict = field(default_factory=dict)  # how stage 1 was trained
    # single-task references trained so far, while ``train adamtl-references`` runs
    single_task_progress: dict = field(default_factory=dict)
    int8: dict = field(default_factory=dict)  # {'graphs': {name: file}, 'reports', 'calibration'}
    format: str = FORMAT

    @property
    def tasks(self) -> tuple[str, ...]:
        """The model's tasks, in its decoders' order."""
        return tuple(self.config['tasks'])

    @property
    def class_names(self) -> tuple[str, ...]:
        """Names of the segmentation classes, by id."""
        return tuple(self.config['class_names'])

    @property
    def precisions(self) -> tuple[str, ...]:
        """The precisions there are graphs for: ('fp32',) or ('fp32', 'int8')."""
        return ('fp32', 'int8') if self.int8.get('graphs') else ('fp32',)

    @classmethod
    def missing(cls, path, model_dir) -> str:
        """Say that ``model_dir`` has no manifest, in the words the CLIs have always used."""
        return f'cannot read the AdaMTL manifest {path}: no such file'

    def to_json(self) -> JsonObject:
        """Return the manifest as JSON values, ``format`` first, empty optional entries out."""
        data = {'format': self.format}
        for key, value in super().to_json().items():
            if key != 'format' and not (key in OPTIONAL and not value):
                data[key] = value
        return data

    def check(self, model_dir) -> None:
        """Tasks named, a decoder per task, INT8 copies of every graph, every graph file there."""
        path = self.path(model_dir)
        if not self.tasks:
            raise ValueError(f'{path}: no tasks')
        lacking = [task for task in self.tasks if task not in self.decoders]
        if lacking:
            raise ValueError(f'{path}: no decoder for {", ".join(lacking)}')
        int8 = self.int8.get('graphs', {})
        missing = [name for name in self.graphs if int8 and name not in int8]
        if missing:
            raise ValueError(f'{model_dir}: no INT8 copy of {", ".join(missing)}')
        self.require_files(model_dir, [*self.graphs.values(), *int8.values()])


def read_manifest(model_dir) -> JsonObject:
    """Read and check ``manifest.json``; its JSON values, for code that edits them in place."""
    return MultitaskManifest.load(model_dir).to_json()


def write_manifest(manifest: JsonObject, model_dir) -> None:
    """Write JSON values ``read_manifest`` gave (edited) back, whole, as the base saves."""
    MultitaskManifest.from_json(manifest).save(model_dir)
