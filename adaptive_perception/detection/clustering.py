"""Spatial-context clustering of object classes from any COCO annotation file (thesis 6.3.1).

Classes that appear in the same images belong to the same context, so one detector
branch per context finds most objects of a scene. The steps, including the fixes the
thesis's reference code needed:

1. Co-occurrence counted per image: ``C[a, b]`` = images that contain both a and b
   (however many instances); the diagonal holds the images per class.
2. Common classes (person, bag: they go with everything): binarize ``C`` at
   ``common_min_count``; a class is common if it co-occurs with more than
   ``common_share`` of the other classes. They are removed before clustering and
   every branch detects them too.
3. A symmetric correlation ``C[a, b] / sqrt(n_a * n_b)`` weights a graph whose
   Fruchterman-Reingold layout (seeded) pulls correlated classes together; Ward
   agglomerative clustering of the 2-D positions gives the K contexts.
"""

import json
import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import networkx as nx
import numpy as np
from sklearn.cluster import AgglomerativeClustering

CLUSTERS_JSON = 'clusters.json'
KNOWLEDGE_GRAPH_PNG = 'knowledge_graph.png'
AUTO_MIN_COUNT_SHARE = 0.02  # common_min_count=None: pairs in under 2% of images are chance
LAYOUT_ITERATIONS = 500  # networkx's default 50 can stop before weakly linked contexts part


@dataclass
class ClusterResult:
    """Contexts found in a dataset: what the AdaCon branches and controller are built on."""

    clusters: list          # per cluster the sorted non-common category ids
    common: list            # category ids every branch also detects
    names: dict             # category id -> name, every category
    cluster_names: list     # per cluster: its members' most frequent supercategory
    separability_error: float  # share of non-common objects outside their image's cluster
    positions: dict         # clustered category id -> [x, y] in the knowledge graph
    class_ids: list         # row/column order of ``cooccurrence``
    cooccurrence: list      # images with both classes; diagonal = images per class
    params: dict            # num_clusters, common_min_count, common_share, seed, num_images

    def branches(self) -> list:
        """Per cluster the category ids its branch detects: members plus common classes."""
        return [sorted(members + self.common) for members in self.clusters]

    def correlation(self) -> np.ndarray:
        """Return the symmetric correlation matrix over ``class_ids``."""
        return correlation(np.array(self.cooccurrence))

    def to_json(self) -> str:
        """Serialise (``from_json`` reads it back equal)."""
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> 'ClusterResult':
        """Read what ``to_json`` wrote (JSON keys are strings; ids come back as ints)."""
        data = json.loads(text)
        data['names'] = {int(k): v for k, v in data['names'].items()}
        data['positions'] = {int(k): v for k, v in data['positions'].items()}
        return cls(**data)

    def save(self, out_dir) -> Path:
        """Write ``clusters.json`` and ``knowledge_graph.png`` into ``out_dir``."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / CLUSTERS_JSON
        path.write_text(self.to_json())
        _plot_knowledge_graph(self, out_dir / KNOWLEDGE_GRAPH_PNG)
        return path


def load_coco(annotations) -> dict:
    """Read a COCO dict from an annotation file (a dict passes through)."""
    if isinstance(annotations, dict):
        return annotations
    return json.loads(Path(annotations).read_text())


def objects_per_image(coco: dict) -> dict:
    """Image id -> the category id of each of its annotations (images without any omitted)."""
    per_image = defaultdict(list)
    for ann in coco['annotations']:
        per_image[ann['image_id']].append(ann['category_id'])
    return dict(per_image)


def cooccurrence(image_category_ids, class_ids) -> np.ndarray:
    """Images in which both classes appear, counted once per image, not per instance pair.

    The diagonal is the number of images that contain the class.
    """
    index = {c: i for i, c in enumerate(class_ids)}
    counts = np.zeros((len(class_ids), len(class_ids)), np.int64)
    for ids in image_category_ids:
        present = np.array(sorted({index[c] for c in ids}), np.intp)
        counts[np.ix_(present, present)] += 1
    return counts


def correlation(counts: np.ndarray) -> np.ndarray:
    """Co-occurrence normalised by sqrt(n_a * n_b) (cosine of image incidence); symmetric."""
    n = np.diag(counts).astype(np.float64)
    norm = np.sqrt(np.outer(n, n))
    return np.divide(counts, norm, out=np.zeros(counts.shape), where=norm > 0)


def common_classes(counts: np.ndarray, class_ids, min_count: int, share: float) -> list:
    """Find classes co-occurring at least ``min_count`` times with over ``share`` of the others."""
    partners = (counts >= min_count).sum(axis=1) - (np.diag(counts) >= min_count)
    others = len(class_ids) - 1
    return [c for c, p in zip(class_ids, partners, strict=True) if p > share * others]


def dominant_cluster(image_category_ids, result: ClusterResult):
    """Pick the cluster with most of the image's non-common objects (lowest index on ties).

    None when the image has no non-common object.
    """
    cluster_of = _cluster_of(result)
    votes = Counter(cluster_of[c] for c in image_category_ids if c in cluster_of)
    if not votes:
        return None
    return min(votes, key=lambda k: (-votes[k], k))


def cluster_labels(image_category_ids, result: ClusterResult) -> np.ndarray:
    """Multi-label controller target: 1 for every cluster with a non-common object present.

    Common classes say nothing about the context, so an image with only common
    objects is all zeros (every branch detects common classes anyway).
    """
    labels = np.zeros(len(result.clusters), np.float32)
    cluster_of = _cluster_of(result)
    for c in image_category_ids:
        if c in cluster_of:
            labels[cluster_of[c]] = 1.0
    return labels


def separability_error(per_image, result: ClusterResult) -> float:
    """Share of non-common objects outside their image's dominant cluster."""
    cluster_of = _cluster_of(result)
    outside = total = 0
    for ids in per_image:
        members = [cluster_of[c] for c in ids if c in cluster_of]
        if members:
            dominant = dominant_cluster(ids, result)
            outside += sum(k != dominant for k in members)
            total += len(members)
    return outside / total if total else 0.0


def cluster_classes(annotations, num_clusters: int, common_min_count: int | None = None,
                    common_share: float = 0.75, seed: int = 0) -> ClusterResult:
    """Cluster the dataset's classes into ``num_clusters`` spatial contexts.

    ``annotations`` is a COCO annotation file or dict. ``common_min_count=None``
    uses 2% of the annotated images (at least 2). The same inputs and seed give the same result.
    """
    coco = load_coco(annotations)
    cats = sorted(coco['categories'], key=lambda c: c['id'])
    class_ids = [c['id'] for c in cats]
    per_image = list(objects_per_image(coco).values())
    if common_min_count is None:
        common_min_count = max(2, round(AUTO_MIN_COUNT_SHARE * len(per_image)))
    counts = cooccurrence(per_image, class_ids)
    common = common_classes(counts, class_ids, common_min_count, common_share)
    keep = [i for i, c in enumerate(class_ids) if c not in common]
    if len(keep) < num_clusters:
        raise ValueError(f'{len(keep)} non-common classes cannot form {num_clusters} clusters '
                         f'({len(common)} of {len(class_ids)} classes are common; '
                         'raise common_share or common_min_count)')
    corr = correlation(counts)
    graph = nx.Graph()
    graph.add_nodes_from(class_ids[i] for i in keep)
    graph.add_weighted_edges_from((class_ids[i], class_ids[j], corr[i, j])
                                  for n, i in enumerate(keep) for j in keep[n + 1:]
                                  if corr[i, j] > 0)
    layout = nx.spring_layout(graph, weight='weight', seed=seed,
                              iterations=LAYOUT_ITERATIONS)
    nodes = [class_ids[i] for i in keep]
    xy = np.array([layout[c] for c in nodes])
    labels = AgglomerativeClustering(n_clusters=num_clusters, linkage='ward').fit_predict(xy)
    clusters = sorted(sorted(c for c, k in zip(nodes, labels, strict=True) if k == label)
                      for label in set(labels))
    result = ClusterResult(
        clusters=clusters, common=common, names={c['id']: c['name'] for c in cats},
        cluster_names=_cluster_names(clusters, cats), separability_error=0.0,
        positions={c: [float(v) for v in layout[c]] for c in nodes}, class_ids=class_ids,
        cooccurrence=counts.tolist(),
        params={'num_clusters': num_clusters, 'common_min_count': common_min_count,
                'common_share': common_share, 'seed': seed, 'num_images': len(per_image)})
    result.separability_error = separability_error(per_image, result)
    return result


def run_cluster(annotations, num_clusters: int, out_dir, common_min_count: int | None = None,
                common_share: float = 0.75, seed: int = 0) -> ClusterResult:
    """``adaptive-perception cluster``: cluster, save, print a short report."""
    result = cluster_classes(annotations, num_clusters, common_min_count, common_share, seed)
    path = result.save(out_dir)
    p = result.params
    print(f'{len(result.class_ids)} classes, {p["num_images"]} annotated images -> '
          f'{num_clusters} clusters (common: co-occurs >= {p["common_min_count"]} times '
          f'with > {common_share:.0%} of the others; seed {seed})')
    for name, members in zip(result.cluster_names, result.clusters, strict=True):
        print(f'  {name}: {", ".join(result.names[c] for c in members)}')
    print(f'  common (in every branch): {", ".join(result.names[c] for c in result.common)}'
          if result.common else '  common: none')
    print(f'separability error: {result.separability_error:.1%} of non-common objects lie '
          "outside their image's dominant cluster")
    print(f'wrote {path} and {path.parent / KNOWLEDGE_GRAPH_PNG}')
    return result


def _cluster_of(result: ClusterResult) -> dict:
    return {c: k for k, members in enumerate(result.clusters) for c in members}


def _cluster_names(clusters, cats) -> list:
    """Name each cluster by its members' most frequent supercategory, else ``cluster_i``.

    Repeated names get the cluster index appended so that every name is unique.
    """
    supercategory = {c['id']: c.get('supercategory') for c in cats}
    names = []
    for k, members in enumerate(clusters):
        votes = Counter(supercategory[c] for c in members if supercategory[c])
        names.append(min(votes, key=lambda s: (-votes[s], s)) if votes else f'cluster_{k}')
    return [f'{n}_{k}' if names.count(n) > 1 else n for k, n in enumerate(names)]


def _plot_knowledge_graph(result: ClusterResult, path: Path) -> None:
    """Nodes at their layout positions coloured by cluster, edges by correlation."""
    from matplotlib import colormaps  # only saving needs matplotlib
    from matplotlib.figure import Figure

    positions = dict(result.positions)
    centre = np.mean(list(positions.values()), axis=0)
    for n, c in enumerate(result.common):  # not in the layout: a small ring at its centre
        angle = 2 * math.pi * n / len(result.common)
        positions[c] = list(centre + 0.12 * np.array([math.cos(angle), math.sin(angle)]))
    corr = result.correlation()
    index = {c: i for i, c in enumerate(result.class_ids)}
    fig = Figure(figsize=(8, 8))
    ax = fig.add_subplot()
    for n, a in enumerate(result.class_ids):
        for b in result.class_ids[n + 1:]:
            r = corr[index[a], index[b]]
            if r > 0 and a in positions and b in positions:
                (xa, ya), (xb, yb) = positions[a], positions[b]
                ax.plot([xa, xb], [ya, yb], color='grey', alpha=float(min(1.0, 0.1 + r)),
                        linewidth=0.3 + 3 * r, zorder=1)
    colours = colormaps['tab10']
    for k, (name, members) in enumerate(zip(result.cluster_names, result.clusters, strict=True)):
        xy = np.array([positions[c] for c in members])
        ax.scatter(xy[:, 0], xy[:, 1], s=220, color=colours(k % 10), label=name, zorder=2)
    if result.common:
        xy = np.array([positions[c] for c in result.common])
        ax.scatter(xy[:, 0], xy[:, 1], s=300, marker='*', color='black',
                   label='common (every branch)', zorder=2)
    for c, (x, y) in positions.items():
        ax.annotate(result.names[c], (x, y), textcoords='offset points', xytext=(0, 9),
                    ha='center', fontsize=8, zorder=3)
    ax.set_title(f'{len(result.clusters)} contexts; separability error '
                 f'{result.separability_error:.1%}')
    ax.legend(loc='best', fontsize=8)
    ax.set_axis_off()
    fig.savefig(path, dpi=100, bbox_inches='tight')
