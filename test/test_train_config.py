"""Each family's training configuration: one dataclass behind the CLI and the checkpoint."""

import argparse
import json
from dataclasses import asdict, fields, replace

import pytest
import torch

from adaptive_perception.activity.classifier import ActivityManifest
from adaptive_perception.activity.cli import _TrainActivity
from adaptive_perception.activity.config import ActivityTrainConfig
from adaptive_perception.activity.train import train_activity
from adaptive_perception.detection import train as adacon_train
from adaptive_perception.detection.cli import _TrainAdacon
from adaptive_perception.detection.config import AdaconTrainConfig
from adaptive_perception.multitask import train as adamtl_train
from adaptive_perception.multitask.cli import _TrainAdamtl
from adaptive_perception.multitask.config import AdamtlTrainConfig, Schedule
from adaptive_perception.training import load_checkpoint, save_checkpoint
from adaptive_perception.verb_args import config_from_args, config_from_dict, dataclass_args
from ros_harness import REPO

ADACON_DATA = ['--train-annotations', 'a.json', '--train-images', 'a', '--val-annotations',
               'b.json', '--val-images', 'b', '--out', 'o']


def _parse(verb, argv: list) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    verb.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize('verb, cls, argv', [
    (_TrainAdacon(), AdaconTrainConfig, ADACON_DATA),
    (_TrainAdamtl(), AdamtlTrainConfig, ['--out', 'o']),
    (_TrainActivity(), ActivityTrainConfig, ['--out', 'o'])])
def test_the_cli_defaults_are_the_dataclass_defaults(verb, cls, argv):
    assert config_from_args(cls, _parse(verb, argv)) == cls()
    for spec in fields(cls):  # every field has its help; the CLI offers all but a few
        assert spec.metadata.get('help'), spec.name


def test_cli_values_reach_the_config():
    adacon = config_from_args(AdaconTrainConfig, _parse(_TrainAdacon(), ADACON_DATA + [
        '--clusters', '3', '--widths', '1', '0.5', '--branch-scale-at', '0.5=1', '--smoke']))
    assert adacon == AdaconTrainConfig(clusters=3, widths=[1.0, 0.5],
                                       branch_scale_at=[(0.5, 1.0)], smoke=True)
    adamtl = config_from_args(AdamtlTrainConfig, _parse(_TrainAdamtl(), [
        '--out', 'o', '--no-single-task', '--efficiency-weights', 'width', '--image-size', '32',
        '--targets', 'low=0.7/0.6', '--epochs-static', '3']))
    assert adamtl == AdamtlTrainConfig(single_task=False, efficiency_weights='width',
                                       image_size=32, targets=['low=0.7/0.6'], epochs_static=3)
    assert adamtl.schedule == Schedule(static=3)
    assert replace(adamtl, smoke=True).schedule == Schedule.smoke()
    activity = config_from_args(ActivityTrainConfig, _parse(_TrainActivity(), [
        '--out', 'o', '--states', 'F50_A8', 'F25_A8', '--no-synthetic', '--new-labels',
        '--minutes', '2.5', '--hidden', '16', '--seed', '7', '--noise', '1.5', '--smoke',
        '--recordings', 'a.csv']))
    assert activity == ActivityTrainConfig(states=['F50_A8', 'F25_A8'], synthetic=False,
                                           new_labels=True, minutes=2.5, hidden=16, seed=7,
                                           noise=1.5, smoke=True)


def test_dataclass_args_skips_fields_kept_off_the_command_line():
    parser = argparse.ArgumentParser()
    dataclass_args(parser, AdaconTrainConfig)
    options = {o for action in parser._actions for o in action.option_strings}
    assert '--lr' not in options and '--batch-size' not in options
    assert '--epochs-static' in options


def test_a_stored_config_tolerates_keys_it_does_not_know_or_lacks():
    stored = {**asdict(AdaconTrainConfig(seed=5)), 'from_the_future': 1}
    del stored['lr']
    assert config_from_dict(AdaconTrainConfig, stored) == AdaconTrainConfig(seed=5)


@pytest.mark.parametrize('cls, fmt, config', [
    (AdaconTrainConfig, adacon_train.CHECKPOINT_FORMATS,
     AdaconTrainConfig(seed=2, widths=[1.0, 0.5], branch_scale_at=[(0.5, 1.0)], lr=1e-3)),
    (AdamtlTrainConfig, adamtl_train.CHECKPOINT_FORMATS,
     AdamtlTrainConfig(seed=2, targets=['low=0.7/0.6'], single_task=False, decoder_dim=8)),
])
def test_a_config_round_trips_through_a_checkpoint(cls, fmt, config, tmp_path):
    path = save_checkpoint({'format': fmt[0], 'train_config': asdict(config)},
                           tmp_path / 'c.pt')
    assert cls.from_checkpoint(load_checkpoint(path, fmt, 'test')) == config


def test_an_adacon_checkpoint_of_the_previous_format_still_loads(tmp_path):
    """Format /2 kept the settings in ``training``, the head's in the model config."""
    scales = [[1.0, 1.5], [0.5, 1.0]]
    old = {'format': 'adacon-checkpoint/2',
           'config': {'num_classes': 18, 'head_width': 96, 'branch_classes': [[0], [1], [2]],
                      'branch_scale': 1.5},
           'widths': [1.0, 0.5], 'branch_scales': scales, 'state_dict': {},
           'branch_ids': [[1], [2], [3]], 'input_size': [96, 96],
           'training': {'data': {}, 'seed': 3, 'epochs_static': 1, 'epochs_branches': 1,
                        'batch_size': 16, 'lr': 1e-3, 'smoke': True, 'widths': [1.0, 0.5],
                        'branch_scales': scales, 'init_from': None, 'stage1_from': None,
                        'command': 'adaptive-perception train adacon'}}
    torch.save(old, tmp_path / 'old.pt')
    checkpoint = load_checkpoint(tmp_path / 'old.pt', adacon_train.MODEL_FORMATS, 'AdaCon')
    assert AdaconTrainConfig.from_checkpoint(checkpoint) == AdaconTrainConfig(
        clusters=3, seed=3, epochs_static=1, epochs_branches=1, input_size=96, head_width=96,
        branch_scale=1.5, branch_scale_at=[(0.5, 1.0)], widths=[1.0, 0.5], smoke=True,
        batch_size=16, lr=1e-3)


def test_an_adamtl_checkpoint_of_the_previous_format_still_loads(tmp_path):
    """Format /1 kept the settings as top-level keys beside stage 1's settings."""
    settings = {'config': {}, 'seed': 4, 'batch_size': 16, 'lr': 1e-3, 'static_epochs': 1,
                'skip_rate': 0.1, 'train': '', 'val': ''}
    old = {'format': 'adaptive_perception.adamtl/1', 'config': {}, 'state_dict': {},
           'references': {}, 'efficiency_weights': 'width', 'static': {'settings': settings},
           'provenance': {}, 'history': {}, 'seconds': {}, 'seed': 4,
           'schedule': Schedule.smoke().__dict__, 'alpha': 2.0, 'distill': 0.5, 'lr': 1e-3,
           'batch_size': 16}
    torch.save(old, tmp_path / 'old.pt')
    checkpoint = adamtl_train.read_checkpoint(tmp_path / 'old.pt', with_stage1=True)
    assert AdamtlTrainConfig.from_checkpoint(checkpoint) == AdamtlTrainConfig(
        seed=4, epochs_static=1, policy_init=1, alternating_rounds=1, epochs_fine_tune=1,
        alpha=2.0, skip_rate=0.1, efficiency_weights='width', distill=0.5, batch_size=16,
        lr=1e-3)
    # A stage-1 file of that format holds stage 1's settings only.
    stage1 = {'format': 'adaptive_perception.adamtl/1', 'static': {'settings': settings}}
    assert AdamtlTrainConfig.from_checkpoint(stage1) == AdamtlTrainConfig(
        seed=4, epochs_static=1, skip_rate=0.1, batch_size=16, lr=1e-3)


def test_an_activity_config_round_trips_through_the_written_manifest(tmp_path):
    """The manifest's ``training`` holds the config beside the run's provenance."""
    config = ActivityTrainConfig(states=['F50_A16', 'F12.5_A8'], minutes=0.5, hidden=8,
                                 seed=2, noise=1.5, smoke=True)
    train_activity(config, tmp_path / 'model', command='test', log=lambda _: None)
    manifest = ActivityManifest.load(tmp_path / 'model')
    assert ActivityTrainConfig.from_manifest(manifest) == config
    stored = json.loads((tmp_path / 'model' / 'manifest.json').read_text())
    assert ActivityTrainConfig.from_manifest(stored) == config
    assert stored['training']['command'] == 'test'
    assert stored['training']['states_skipped'] == {}
    assert stored['training']['minutes_per_subject'] == 0.5
    assert manifest.hidden_units == 8 and manifest.states == config.states


def test_the_shipped_activity_manifest_of_the_older_layout_reads_as_a_config():
    """Its ``training`` holds provenance only; the settings are gathered from it."""
    shipped = ActivityManifest.load(REPO / 'models' / 'activity')
    assert 'hidden' not in shipped.training   # the layout before the config
    assert ActivityTrainConfig.from_manifest(shipped) == ActivityTrainConfig(
        states=['F100_A128', 'F50_A8', 'F25_A8', 'F12.5_A8'], minutes=8.0, hidden=64,
        seed=0, noise=2.0)


def test_an_older_activity_manifest_gives_back_skipped_states_and_new_labels():
    old = {'class_names': ['sit', 'stand', 'walking'], 'states': ['F50_A16'],
           'hidden_units': 32,
           'training': {'seed': 4, 'smoke': False, 'synthetic_subjects': 0,
                        'minutes_per_subject': 0, 'single_sample_noise_ms2': 1.0,
                        'states_skipped': {'F100_A128': 'above the rate'},
                        'from_the_future': 1}}
    assert ActivityTrainConfig.from_manifest(old) == ActivityTrainConfig(
        states=['F100_A128', 'F50_A16'], synthetic=False, new_labels=True, hidden=32,
        seed=4, noise=1.0)
    assert ActivityTrainConfig.from_manifest({}) == ActivityTrainConfig()
