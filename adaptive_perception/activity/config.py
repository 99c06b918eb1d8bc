"""AdaSense's training configuration: one dataclass for the CLI, the trainer and the manifest.

Every hyper-parameter is declared once, with its default and help text; ``train
activity``'s options are generated from it (``verb_args.dataclass_args``) and the
exported manifest keeps it as it is (``dataclasses.asdict``, in ``training`` beside
the run's provenance), so a model can be read back and retrained exactly. The
recordings, their label map and units, and the output folder are data, not
settings: they stay the trainer's arguments. Import-light (no torch, no
scikit-learn), as the command line imports it.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from adaptive_perception.activity.sensor import DEFAULT_MODEL, THESIS_PARETO
from adaptive_perception.verb_args import config_from_dict


@dataclass
class ActivityTrainConfig:
    """What ``train_activity`` trains with; the recordings and the paths are its arguments.

    ``states`` are names (``'F50_A16'``), as typed and as the manifest stores them;
    ``sensor.parse_config`` reads them.
    """

    states: list = field(default_factory=lambda: [c.name for c in THESIS_PARETO], metadata={
        'nargs': '+', 'help': 'sensor states to train at, costliest first'})
    synthetic: bool = field(default=True, metadata={
        'flag': '--no-synthetic', 'action': 'store_false',
        'help': 'train on the recordings only'})
    new_labels: bool = field(default=False, metadata={
        'help': 'labels that are not built-in activities (after --labels) become new '
                'classes; without it they are an error'})
    minutes: float = field(default=8.0, metadata={'help': 'synthetic minutes per subject'})
    hidden: int = field(default=64, metadata={'help': 'hidden units'})
    seed: int = field(default=0, metadata={
        'help': 'seed of the synthetic wearers, the state switches and the MLP'})
    noise: float = field(default=DEFAULT_MODEL.single_sample_noise, metadata={
        'help': 'rms noise of one un-averaged low-power sample, m/s^2 (sensor model)'})
    smoke: bool = field(default=False, metadata={'help': 'tiny run for CI'})

    @classmethod
    def from_dict(cls, values: dict) -> 'ActivityTrainConfig':
        """Read a stored configuration; keys it lacks keep their defaults."""
        return config_from_dict(cls, values)

    @classmethod
    def from_manifest(cls, manifest) -> 'ActivityTrainConfig':
        """Return the configuration an exported model was trained with, this layout or older.

        ``manifest`` is an ``ActivityManifest`` or the dict of its ``manifest.json``.
        The older layout kept provenance only: the seed, the noise
        (``single_sample_noise_ms2``), the minutes that ran (at most 2 in a smoke run),
        the hidden units and the states beside ``training``; the states it skipped
        (faster than the recordings, so first in a costliest-first list) are put back
        in front of those it trained, and new labels are read off the class names.
        """
        values = manifest if isinstance(manifest, Mapping) else vars(manifest)
        training = values.get('training', {})
        if {spec.name for spec in fields(cls)} <= set(training):
            return cls.from_dict(training)
        from adaptive_perception.activity.generator import ACTIVITIES
        old = {key: training[key] for key in ('seed', 'smoke') if key in training}
        if 'single_sample_noise_ms2' in training:
            old['noise'] = training['single_sample_noise_ms2']
        if 'synthetic_subjects' in training:
            old['synthetic'] = training['synthetic_subjects'] > 0
        if training.get('minutes_per_subject'):
            old['minutes'] = training['minutes_per_subject']
        if values.get('hidden_units'):
            old['hidden'] = values['hidden_units']
        if values.get('states'):
            old['states'] = [*training.get('states_skipped', {}), *values['states']]
        if 'class_names' in values:
            old['new_labels'] = any(name not in ACTIVITIES for name in values['class_names'])
        return cls.from_dict({**old, **training})
