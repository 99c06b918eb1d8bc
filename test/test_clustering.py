"""Spatial-context clustering: recovers planted contexts, counts per image, deterministic."""

import numpy as np
import pytest

from adaptive_perception.detection import clustering, scenes
from adaptive_perception.detection.clustering import ClusterResult, cluster_classes


@pytest.fixture(scope='module')
def scenes_file(tmp_path_factory):
    return scenes.write_dataset(tmp_path_factory.mktemp('scenes'), 300, seed=0)


def planted():
    ids = {c['name']: c['id'] for c in scenes.categories()}
    contexts = {name: sorted(ids[n] for n in members)
                for name, members in scenes.CONTEXTS.items()}
    return contexts, sorted(ids[n] for n in scenes.COMMON)


def coco(images, num_classes, supercategories=None):
    """Build a COCO dict: ``images`` lists each image's category ids."""
    anns = [{'id': len(images) * 100 + n, 'image_id': i, 'category_id': c}
            for i, ids in enumerate(images) for n, c in enumerate(ids)]
    cats = [{'id': c, 'name': f'c{c}'} for c in range(1, num_classes + 1)]
    for cat, sup in zip(cats, supercategories or [None] * num_classes, strict=True):
        if sup:
            cat['supercategory'] = sup
    return {'images': [{'id': i} for i in range(len(images))], 'annotations': anns,
            'categories': cats}


# Two contexts {1, 2, 3} and {4, 5, 6}; 7 goes with everything.
TWO_CONTEXTS = coco([[1, 2], [2, 3], [1, 3, 7], [1, 2, 3], [4, 5, 7], [5, 6], [4, 6, 7],
                     [4, 5, 6], [2, 7], [6, 7], [1, 2, 7], [4, 5, 7]], 7)


def test_recovers_the_planted_contexts_and_common_classes(scenes_file):
    contexts, common = planted()
    result = cluster_classes(scenes_file, 4)
    assert result.clusters == sorted(contexts.values())
    assert result.common == common
    assert dict(zip(result.cluster_names, result.clusters, strict=True)) == contexts
    assert result.branches()[0] == sorted(result.clusters[0] + common)
    # Only the ~15% mixed scenes put objects outside the dominant context.
    assert 0.0 < result.separability_error < 0.2


def test_same_seed_same_result_and_json_round_trip(scenes_file):
    a = cluster_classes(scenes_file, 4, seed=7)
    b = cluster_classes(scenes_file, 4, seed=7)
    assert a.to_json() == b.to_json()
    assert ClusterResult.from_json(a.to_json()) == a
    assert a.positions != cluster_classes(scenes_file, 4, seed=8).positions


def test_hand_made_dataset_clusters_as_built():
    result = cluster_classes(TWO_CONTEXTS, 2, common_min_count=2)
    assert result.clusters == [[1, 2, 3], [4, 5, 6]]
    assert result.common == [7]
    assert result.cluster_names == ['cluster_0', 'cluster_1']  # no supercategories
    assert result.separability_error == 0.0


def test_cooccurrence_counts_images_not_instance_pairs():
    counts = clustering.cooccurrence([[1, 1, 1, 1, 1, 2], [2]], [1, 2, 3])
    assert counts.tolist() == [[1, 1, 0], [1, 2, 0], [0, 0, 0]]
    result = cluster_classes(coco([[1, 1, 1, 1, 1, 2], [3, 4], [3, 4]], 4), 2,
                             common_min_count=5)
    assert result.cooccurrence[0][1] == result.cooccurrence[1][0] == 1


def test_correlation_is_symmetric(scenes_file):
    corr = cluster_classes(scenes_file, 4).correlation()
    assert np.allclose(corr, corr.T)
    assert np.allclose(np.diag(corr), 1.0)
    assert corr.min() >= 0.0 and corr.max() <= 1.0 + 1e-12


def test_common_thresholds_are_parameters():
    # 7 co-occurs with all 6 others; 3 with 1, 2, 7 and 4, 5 (5 of 6).
    data = coco([[1, 2, 3], [3, 4, 7], [3, 5, 7], [1, 7], [2, 7], [4, 5, 6, 7], [4, 6],
                 [5, 6], [1, 2], [4, 5, 6]], 7)
    assert cluster_classes(data, 2, common_min_count=1, common_share=0.75).common == [3, 7]
    assert cluster_classes(data, 2, common_min_count=1, common_share=0.9).common == [7]
    assert cluster_classes(data, 2, common_min_count=5).common == []


def test_default_common_min_count_scales_with_the_data(scenes_file):
    assert cluster_classes(scenes_file, 4).params['common_min_count'] == 6  # 2% of 300
    assert cluster_classes(TWO_CONTEXTS, 2).params['common_min_count'] == 2


def test_too_few_classes_for_the_clusters_is_refused():
    with pytest.raises(ValueError, match='6 non-common classes cannot form 7 clusters'):
        cluster_classes(TWO_CONTEXTS, 7, common_min_count=2)


def test_cluster_names_use_supercategories_and_stay_unique():
    data = coco([[1, 2], [2, 3], [4, 5], [5, 6], [1, 3], [4, 6]], 6,
                ['food', 'food', 'food', 'food', 'food', 'road'])
    result = cluster_classes(data, 2, common_min_count=2)
    assert result.clusters == [[1, 2, 3], [4, 5, 6]]
    assert result.cluster_names == ['food_0', 'food_1']
    data['categories'][4]['supercategory'] = 'road'
    assert cluster_classes(data, 2, common_min_count=2).cluster_names == ['food', 'road']


def test_controller_targets_and_dominant_cluster():
    result = cluster_classes(TWO_CONTEXTS, 2, common_min_count=2)
    assert clustering.cluster_labels([1, 1, 4, 7], result).tolist() == [1.0, 1.0]
    assert clustering.cluster_labels([5, 7], result).tolist() == [0.0, 1.0]
    assert clustering.dominant_cluster([1, 4, 4, 7, 7, 7], result) == 1
    assert clustering.dominant_cluster([1, 4], result) == 0  # ties: lowest index
    assert clustering.cluster_labels([7, 7], result).tolist() == [0.0, 0.0]  # only common classes
    assert clustering.dominant_cluster([7], result) is None


def test_run_cluster_reports_and_writes_the_knowledge_graph(scenes_file, tmp_path, capsys):
    result = clustering.run_cluster(scenes_file, 4, tmp_path)
    out = capsys.readouterr().out
    assert 'kitchen: cup, plate, bottle, pan' in out
    assert 'common (in every branch): person, bag' in out
    assert f'separability error: {result.separability_error:.1%}' in out
    loaded = ClusterResult.from_json((tmp_path / clustering.CLUSTERS_JSON).read_text())
    assert loaded == result
    png = (tmp_path / clustering.KNOWLEDGE_GRAPH_PNG).read_bytes()
    assert png.startswith(b'\x89PNG') and len(png) > 10_000
