"""COCO evaluation and the detector bench, on the fake model whose answers are known."""

import json

import pytest

import fake_adacon as fake
from adaptive_perception.detection.bench import run_bench_detector
from adaptive_perception.detection.evaluate import dominant_branches, evaluate, run_eval
from adaptive_perception.detection.manifest import Manifest

# The ground truth of every image is the static head's peaks: two cars (street) and a
# cup (home), so the dominant cluster is street (branch 0). Red makes the controller
# pick street, green picks home.
RED, GREEN = (255, 0, 0), (0, 255, 0)
MODES = ['static', 'multi:0.5', 'single']


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp('eval')
    model_dir = fake.build(root / 'model')
    annotations, images_dir = fake.coco_set(root / 'coco', [RED, GREEN])
    return model_dir, annotations, images_dir


def test_evaluate_scores_each_mode_with_pycocotools(dataset):
    report = evaluate(*dataset, modes=MODES)
    assert report['images'] == 2 and report['providers'] == ['CPUExecutionProvider']
    static, multi, single = (report['modes'][m] for m in MODES)
    assert static['map'] == pytest.approx(1.0)  # exactly the ground truth
    assert static['ap50'] == pytest.approx(1.0) and static['ap75'] == pytest.approx(1.0)
    assert single['map'] < 0.5
    assert static['mean_branches'] == 0 and single['mean_branches'] == 1
    assert multi['mean_branches'] == 1  # red: street only; green: home only
    macs = fake.MACS
    assert static['mean_macs'] == macs['backbone'] + macs['static']
    assert single['mean_macs'] == macs['backbone'] + macs['controller'] + (
        macs['branches'][0] + macs['branches'][1]) / 2
    assert report['controller'] == {'top1_accuracy': 0.5, 'images': 2}


def test_dominant_cluster_ignores_common_classes(dataset):
    manifest = Manifest.load(dataset[0])
    assert dominant_branches([2, 2, 5, 1, 1, 1], manifest) == {0}
    assert dominant_branches([2, 5], manifest) == {0, 1}       # a tie: either is right
    assert dominant_branches([3], manifest) == {1, 2}
    assert dominant_branches([1, 1], manifest) == set()        # common only: not scored


def test_run_eval_prints_a_table_and_writes_json(dataset, tmp_path, capsys):
    assert run_eval(*dataset, modes=['static'], out=tmp_path / 'eval.json') == 0
    printed = capsys.readouterr().out
    assert '| static | 1.000 | 1.000 | 1.000 | 0.00 |' in printed
    assert json.loads((tmp_path / 'eval.json').read_text())['modes']['static']['map'] == 1.0


def test_bench_measures_every_mode_side_by_side(dataset, tmp_path, capsys):
    out = tmp_path / 'bench'
    assert run_bench_detector(*dataset, modes=MODES, out_dir=out, repeats=2, warmup=1) == 0
    result = json.loads((out / 'bench_detector.json').read_text())
    assert (out / 'bench_detector_pareto.png').stat().st_size > 1000
    assert list(result['modes']) == MODES
    assert result['frames'] == 2 and result['repeats'] == 2
    for row in result['modes'].values():
        assert row['samples'] == 4 and 0 < row['latency_p50_ms'] <= row['latency_p95_ms']
        assert row['frames_per_s'] > 0
    static, single = result['modes']['static'], result['modes']['single']
    assert static['map'] == pytest.approx(1.0) and static['latency_vs_static'] == 1.0
    assert static['macs_vs_static'] == 1.0 and static['head_macs_vs_static'] == 1.0
    macs = fake.MACS
    head = macs['controller'] + (macs['branches'][0] + macs['branches'][1]) / 2
    assert single['head_macs_vs_static'] == pytest.approx(head / macs['static'])
    assert '| single |' in capsys.readouterr().out


def test_per_class_ap_is_printed_with_class_names(dataset, capsys):
    report = evaluate(*dataset, modes=['static'])
    per_class = report['modes']['static']['per_class']
    assert per_class == {'car': pytest.approx(1.0), 'cup': pytest.approx(1.0)}
    assert run_eval(*dataset, modes=['static', 'single']) == 0
    printed = capsys.readouterr().out
    assert '| class | static | single |' in printed and '| car | 1.000 |' in printed


def test_a_dataset_with_other_categories_is_refused_or_scored_with_a_warning(
        dataset, tmp_path, capsys):
    model_dir, annotations, images_dir = dataset
    document = json.loads(annotations.read_text())
    for category in document['categories']:
        if category['id'] == 2:
            category['name'] = 'truck'          # same id, another name
    document['categories'].append({'id': 90, 'name': 'toothbrush'})  # not the model's
    other = tmp_path / 'other.json'
    other.write_text(json.dumps(document))
    assert run_eval(model_dir, other, images_dir, modes=['static']) == 2
    err = capsys.readouterr().err
    assert "category 2 is 'truck' in the dataset but 'car' in the model" in err
    assert "dataset category 90 ('toothbrush') is not a class of the model" in err
    assert run_eval(model_dir, other, images_dir, modes=['static'],
                    allow_category_mismatch=True) == 0
    captured = capsys.readouterr()
    assert 'WARNING: categories differ' in captured.err and '| static |' in captured.out
