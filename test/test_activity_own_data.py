"""Bring your own data: labels, states and units through train and eval (command line).

Recordings here are synthetic wearers saved as CSV with their own label names:
'walking' and 'lying' are new, 'sit' is built in, 'standing' is mapped to 'stand'
by a label file, and the order of first appearance is not the built-in one. A model
trained on them must name its outputs right (the graph's columns and the manifest's
names come from one list), and only the states the 50 Hz data can give are trained.
"""

import json

import numpy as np
import pytest

from adaptive_perception.activity.classifier import ActivityClassifier
from adaptive_perception.activity.dataset import synthetic_recording
from adaptive_perception.activity.recordings import (
    Recording,
    RecordingError,
    load_label_map,
    load_recording,
    save_csv,
)
from adaptive_perception.activity.sensor import GRAVITY, parse_config
from test_activity_model import cli

RENAME = {'walk': 'walking', 'lie': 'lying', 'stand': 'standing', 'sit': 'sit',
          'upstairs': '', 'downstairs': ''}
CLASSES = ['sit', 'stand', 'lying', 'walking']   # built-in order first, then new ones sorted


def own_recording(subject: int, seed: int) -> Recording:
    recording = synthetic_recording(2.0, 12.0, subject, seed, parse_config('F50_A16'))
    labels = np.array([RENAME[str(a)] for a in recording.labels])
    return Recording(recording.t, recording.acc, labels, f'rec{subject}.csv')


@pytest.fixture(scope='module')
def own_data(tmp_path_factory):
    """Two CSV recordings with own labels, a label map, and a model trained on them."""
    root = tmp_path_factory.mktemp('own')
    files = []
    for subject, seed in ((1003, 1), (1004, 2)):
        recording = own_recording(subject, seed)
        save_csv(recording, root / recording.name)
        files.append(str(root / recording.name))
    labels = root / 'labels.csv'
    labels.write_text('# user label,model label\nstanding,stand\n')
    model = root / 'model'
    result = cli('train', 'activity', '--out', str(model), '--no-synthetic', '--new-labels',
                 '--labels', str(labels), '--recordings', *files)
    assert result.returncode == 0, result.stderr
    return {'root': root, 'files': files, 'labels': str(labels), 'model': model,
            'train_stdout': result.stdout}


def test_model_on_own_labels_names_its_outputs_right(own_data):
    classifier = ActivityClassifier(own_data['model'])
    assert classifier.class_names == CLASSES
    assert classifier.probabilities(np.zeros((1, 17), np.float32)).shape == (1, 4)
    out = own_data['root'] / 'eval.json'
    result = cli('eval', 'activity', '--model-dir', str(own_data['model']), '--labels',
                 own_data['labels'], '--recordings', *own_data['files'], '--out', str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())['recordings']['own rate']['all']
    assert report['accuracy'] >= 0.8, report
    assert set(report['recall']) == set(CLASSES)
    for name in ('stand', 'lying', 'walking'):   # sit has few windows here, like stand
        assert report['recall'][name] >= 0.8, (name, report)
    assert 'accuracy' in result.stdout and 'recall: sit' in result.stdout


def test_train_emulates_only_the_states_the_data_allow(own_data):
    manifest = json.loads((own_data['model'] / 'manifest.json').read_text())
    assert manifest['states'] == ['F50_A16', 'F12.5_A16', 'F12.5_A8']
    assert 'F100_A128' in manifest['training']['states_skipped']
    assert 'state F100_A128 skipped: 100 Hz is above' in own_data['train_stdout']


def test_new_unmapped_labels_are_listed_with_counts_and_nothing_is_written(own_data, tmp_path):
    out = tmp_path / 'model'
    result = cli('train', 'activity', '--out', str(out), '--no-synthetic',
                 '--recordings', *own_data['files'])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in result.stderr, result.stderr
    for label in ('standing', 'walking', 'lying'):
        assert f"'{label}' (" in lines[0]
    assert 'samples, first at rec1003.csv: line' in lines[0]
    assert '--labels' in lines[0] and '--new-labels' in lines[0]
    assert "'sit'" not in lines[0]
    assert not out.exists()
    debug = cli('train', 'activity', '--out', str(out), '--no-synthetic', '--debug',
                '--recordings', *own_data['files'])
    assert debug.returncode != 0 and 'Traceback' in debug.stderr


def test_a_failed_train_leaves_an_existing_model_folder_as_it_was(own_data, tmp_path):
    out = tmp_path / 'model'
    out.mkdir()
    (out / 'manifest.json').write_text('old')
    result = cli('train', 'activity', '--out', str(out), '--no-synthetic',
                 '--recordings', *own_data['files'])
    assert result.returncode == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ['model']
    assert [p.name for p in out.iterdir()] == ['manifest.json']
    assert (out / 'manifest.json').read_text() == 'old'


def test_eval_names_an_unknown_label_with_its_file_and_line(own_data):
    result = cli('eval', 'activity', '--model-dir', str(own_data['model']),
                 '--recordings', *own_data['files'])
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    assert "'standing' (" in result.stderr and 'rec1003.csv: line' in result.stderr
    assert '--labels' in result.stderr


def test_eval_scores_every_allowed_state_per_file_and_summed(own_data, tmp_path):
    out = tmp_path / 'eval.json'
    result = cli('eval', 'activity', '--model-dir', str(own_data['model']), '--labels',
                 own_data['labels'], '--states', 'F100_A128', 'F50_A16', 'F12.5_A8',
                 '--recordings', *own_data['files'], '--out', str(out))
    assert result.returncode == 0, result.stderr
    assert 'rec1003.csv: F100_A128 not scored: 100 Hz is above' in result.stdout
    assert 'all 2 recordings at F50_A16' in result.stdout
    assert 'all 2 recordings at F12.5_A8' in result.stdout
    report = json.loads(out.read_text())['recordings']
    assert set(report) == {'F100_A128', 'F50_A16', 'F12.5_A8'}
    assert report['F100_A128']['files'] == {} and report['F100_A128']['all']['windows'] == 0
    for state in ('F50_A16', 'F12.5_A8'):
        files = report[state]['files']
        assert set(files) == {'rec1003.csv', 'rec1004.csv'}
        summed = np.sum([f['confusion'] for f in files.values()], axis=0)
        assert report[state]['all']['confusion'] == summed.tolist()
        assert report[state]['all']['accuracy'] == pytest.approx(
            np.trace(summed) / summed.sum())


def test_units_in_g_and_stamps_in_ms_are_refused_with_the_fix_and_converted(own_data, tmp_path):
    original = load_recording(own_data['files'][0])
    path = tmp_path / 'g_ms.csv'
    save_csv(Recording(original.t * 1000.0, original.acc / GRAVITY, original.labels, 'x'), path)
    with pytest.raises(RecordingError, match='look like ms.*--time-units ms'):
        load_recording(path)
    with pytest.raises(RecordingError, match='look like g.*--units g'):
        load_recording(path, time_units='ms')
    converted = load_recording(path, units='g', time_units='ms')
    np.testing.assert_allclose(converted.t, original.t, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(converted.acc, original.acc, rtol=1e-12, atol=1e-12)
    result = cli('eval', 'activity', '--model-dir', str(own_data['model']), '--labels',
                 own_data['labels'], '--recordings', str(path))
    assert result.returncode == 2 and '--time-units ms' in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = cli('eval', 'activity', '--model-dir', str(own_data['model']), '--labels',
                 own_data['labels'], '--recordings', str(path), '--units', 'g',
                 '--time-units', 'ms')
    assert result.returncode == 0, result.stderr


def test_label_map_file_errors_name_the_line(tmp_path):
    path = tmp_path / 'map.csv'
    path.write_text('standing,stand\n\n# comment\nStand,stand\n')
    assert load_label_map(path) == {'standing': 'stand', 'Stand': 'stand'}
    path.write_text('standing,stand\nstanding,sit\n')
    with pytest.raises(RecordingError, match='line 2.*already mapped'):
        load_label_map(path)
    path.write_text('standing\n')
    with pytest.raises(RecordingError, match='line 1.*user_label,model_label'):
        load_label_map(path)
