"""The AdaMTL runtime: every graph and every policy resident in ONNX Runtime, batch 1.

Per frame: resize to the model's input, run the encoder graph of the level's policy
(one call: inside it, per stage, the running tasks' sub-networks decide - OR-ed, plain
thresholds, no noise - which blocks run and which tokens each keeps, and each block
runs on its kept tokens only), then only the requested task decoders (all of them as
one graph when every task runs). Outputs are resized back to the input image. The
static model runs its own encoder graph, every block on every token, as it would be
deployed without AdaMTL, so that the policies are measured against the best the
static model can do.

Every graph may also be there as a calibrated INT8 copy (``export adamtl`` writes
them; ``runtime/quantize.py``): both precisions stay resident and a frame names the
one it runs in, so a level change between them loads nothing.

Why ONNX Runtime and not PyTorch: ``bench multitask`` measures both on the same
frames (``runtime_comparison``) - see the model card.

An engine serves one thread at a time: the encoder graphs' unchanging inputs are
bound to them once (``BoundGraph``), and a binding is not shared safely.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Sequence

import cv2
import numpy as np
from scipy.linalg import block_diag

from adaptive_perception.multitask.manifest import MultitaskManifest
from adaptive_perception.runtime.onnx_sessions import CPU, BoundGraph, create_sessions

STATIC = 'static'  # run every block on every token: the static model


@dataclass
class MultiTaskResult:
    """One frame's answers at the input size, and what it cost."""

    outputs: dict        # task -> seg. uint8 ids | depth float32 m | normals | saliency uint8
    flops: int
    block_share: float   # blocks run / all blocks
    token_share: float   # tokens processed / tokens of all blocks
    tokens_run: list     # per stage, tokens each block processed (0 = skipped)
    precision: str = 'fp32'  # the graphs the frame ran in


class Encoded(NamedTuple):
    """One frame through an encoder graph, before the decoders."""

    features: list       # per stage, the encoder's output (the decoders' inputs)
    tokens_run: list     # per stage, tokens each block processed (0 = skipped)
    flops: int           # of the encoder and the policy's decisions


POLICY_PATHS = ('token', 'block')


def policy_inputs(stacked: dict, counted: Sequence[int]) -> dict:
    """Turn a policy's stacked arrays into the policy graph's inputs for ``counted`` owners.

    ``stacked`` holds, per path (``token``, ``block``) and stage, each owner's layers
    with the owners first: ``<path>_w1_s<stage>`` (O, C, H), ``_b1`` (O, 1, H), ``_w2``
    (O, H, depth), ``_b2`` (O, 1, depth). The graph multiplies 2-D matrices (batched
    products of small matrices cost ONNX Runtime more): layer 1 of the K counted
    owners side by side, (C, K*H), and layer 2 block-diagonal, (K*H, K*depth), so
    that the owners' logits come out side by side.
    """
    inputs = {}
    for key in stacked:
        path, layer, stage = key.split('_')
        if layer != 'w1':
            continue
        first, second = stacked[key][counted], stacked[f'{path}_w2_{stage}'][counted]
        inputs[key] = np.concatenate(list(first), axis=1)
        inputs[f'{path}_b1_{stage}'] = stacked[f'{path}_b1_{stage}'][counted].reshape(-1)
        inputs[f'{path}_w2_{stage}'] = block_diag(*second).astype(second.dtype)
        inputs[f'{path}_b2_{stage}'] = stacked[f'{path}_b2_{stage}'][counted].reshape(-1)
    return inputs


class OnnxPolicy:
    """A trained policy: its arrays, fed to the one policy encoder graph, decide inside it."""

    graph = 'encoder_policy'

    def __init__(self, name: str, spec: dict, model_dir: Path):
        self.name = name
        self.owners = tuple(spec['owners'])
        self.task_aware = spec['task_aware']
        self._flops = spec['flops_by_owner_count']  # [k - 1]: deciding with k owners
        path = model_dir / spec['arrays']
        try:
            with np.load(path, allow_pickle=False) as arrays:
                self._stacked = {key: arrays[key] for key in arrays.files}
        except (OSError, ValueError) as error:
            raise ValueError(f'cannot read policy {name!r} from {path}: {error}') from None
        self._feeds = {}  # tasks -> (graph inputs, FLOPs deciding), built once per task set
        self._bound = {}  # tasks -> (the policy graph with those inputs bound, FLOPs deciding)

    def feeds(self, tasks: Sequence[str], layout: Sequence[tuple]) -> tuple:
        """Return the graph's inputs for ``tasks`` (the running tasks' networks only), FLOPs."""
        key = tuple(tasks)
        if key not in self._feeds:
            counted = [i for i, owner in enumerate(self.owners)
                       if not self.task_aware or owner in key]
            self._feeds[key] = (policy_inputs(self._stacked, counted),
                                self._flops[len(counted) - 1])
        return self._feeds[key]

    def run(self, session, image: np.ndarray, tasks: Sequence[str],
            layout: Sequence[tuple]) -> tuple:
        """Decide and encode ``image``: (stage tokens then ``runs_s<stage>``, FLOPs deciding).

        The arrays are the same on every frame for a task set, so they are bound once.
        """
        key = (tuple(tasks), id(session))  # one binding per task set and precision
        if key not in self._bound:
            inputs, flops = self.feeds(key[0], layout)
            self._bound[key] = (BoundGraph(session, inputs), flops)
        graph, flops = self._bound[key]
        return graph.run({'image': image}), flops


class RandomPolicy:
    """The ablation's baseline: blocks and tokens kept at random with fixed shares."""

    graph = 'encoder_decided'

    def __init__(self, block_share: float, token_share: float, seed: int = 0):
        self.name = f'random:{block_share:g}/{token_share:g}'
        self.block_share, self.token_share = block_share, token_share
        self._rng = np.random.default_rng(seed)

    def feeds(self, tasks: Sequence[str], layout: Sequence[tuple]) -> tuple:
        """Random decisions for ``layout`` ((blocks, tokens) per stage), whatever the frame."""
        feeds = {}
        for s, (depth, count) in enumerate(layout):
            blocks_on = self._rng.random(depth) < self.block_share
            feeds[f'runs_s{s}'] = (self._rng.random((count, depth)) < self.token_share) \
                & blocks_on
        return feeds, 0

    def run(self, session, image: np.ndarray, tasks: Sequence[str],
            layout: Sequence[tuple]) -> tuple:
        """Draw this frame's decisions and encode: (stage tokens then the decisions, 0)."""
        feeds, flops = self.feeds(tasks, layout)
        runs = [feeds[f'runs_s{s}'] for s in range(len(layout))]
        return [*session.run(None, {'image': image, **feeds}), *runs], flops


class MultiTaskEngine:
    """Loads an exported AdaMTL directory once; ``infer`` runs one frame."""

    def __init__(self, model_dir, providers: Sequence[str] = (CPU,), threads: int = 1,
                 warn=None):
        self.model_dir = Path(model_dir)
        self.manifest = manifest = MultitaskManifest.load(self.model_dir)
        self.tasks = manifest.tasks
        self.class_names = manifest.class_names
        self.input_size = int(manifest.input_size)
        self._mean, self._std = manifest.mean, manifest.std
        int8 = manifest.int8.get('graphs', {})  # every graph has a copy (manifest check)
        self.precisions = manifest.precisions
        paths = {name: self.model_dir / file for name, file in manifest.graphs.items()}
        paths.update({f'{name}/int8': self.model_dir / int8[name] for name in int8})
        loaded = create_sessions(paths, providers, threads, warn)
        self.providers = loaded.providers
        sessions = loaded.sessions
        # encoder_static, encoder_decided, encoder_policy, decoders (+ '<name>/int8')
        self._sessions = sessions
        self._static = {precision: BoundGraph(sessions[_name('encoder_static', precision)], {})
                        for precision in self.precisions}  # the policies' call path
        self._block_flops = [[b['flops'] for b in stage] for stage in manifest.blocks]
        self.depths = [len(stage) for stage in self._block_flops]
        grid = self.input_size // manifest.config['patch']
        # (blocks, tokens) per stage
        self.layout = [(depth, (grid // 2 ** s) ** 2) for s, depth in enumerate(self.depths)]
        self._fixed_flops = manifest.flops['embed'] + sum(
            manifest.flops[f'merge_s{s}'] for s in range(len(self.depths) - 1))
        self._decoders = {(task, precision): sessions[_name(d['graph'], precision)]
                          for task, d in manifest.decoders.items()
                          for precision in self.precisions}
        self._decoder_flops = {task: d['flops'] for task, d in manifest.decoders.items()}
        self._all_decoders = {precision: sessions[_name('decoders', precision)]
                              for precision in self.precisions}
        self.precision_runs = dict.fromkeys(self.precisions, 0)
        self._policies = {name: OnnxPolicy(name, spec, self.model_dir)
                          for name, spec in manifest.policies.items()}
        self.policies = (STATIC, *self._policies)
        self.references = manifest.references

    def policy(self, name):
        """Look up a resident policy by name (``static`` = None).

        An object passes as it is: it names its encoder ``graph`` and ``run``s it, as
        ``OnnxPolicy`` and ``RandomPolicy`` do.
        """
        if name == STATIC or name is None:
            return None
        if isinstance(name, str):
            try:
                return self._policies[name]
            except KeyError:
                raise ValueError(f'unknown policy {name!r}; this model has '
                                 f'{", ".join(self.policies)}') from None
        return name

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """RGB uint8 (H, W, 3) -> normalised (1, 3, S, S) float32 at the model's size."""
        size = self.input_size
        if rgb.shape[:2] != (size, size):
            rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
        image = (rgb.astype(np.float32) / 255.0 - self._mean) / self._std
        return np.ascontiguousarray(image.transpose(2, 0, 1)[None])

    def check_precision(self, precision: str) -> str:
        """Return ``precision`` if this model has its graphs; ValueError otherwise."""
        if precision not in self.precisions:
            raise ValueError(f'no {precision} graphs in {self.model_dir} (it has '
                             f'{", ".join(self.precisions)}); export them with '
                             f'`adaptive-perception export adamtl --int8-only`')
        return precision

    def infer(self, rgb: np.ndarray, policy=STATIC, tasks: Sequence[str] | None = None,
              resize: bool = True, precision: str = 'fp32') -> MultiTaskResult:
        """One frame through ``policy`` for ``tasks`` (default: all the model's tasks).

        ``resize`` False keeps the outputs at the model's input size (for scoring).
        ``precision``: which copy of the graphs runs ('fp32' or 'int8').
        """
        tasks = tuple(self.tasks if tasks is None else tasks)
        unknown = [t for t in tasks if t not in self.tasks]
        if unknown:
            raise ValueError(f'tasks {unknown} not in this model ({", ".join(self.tasks)})')
        self.check_precision(precision)
        features, tokens_run, flops = self.encode(self.preprocess(rgb), policy, tasks,
                                                  precision)
        self.precision_runs[precision] += 1
        feeds = {f'stage{s}': f for s, f in enumerate(features)}
        if set(tasks) == set(self.tasks):  # the usual case: every decoder in one graph
            answers = dict(zip(self.tasks, self._all_decoders[precision].run(None, feeds),
                               strict=True))
            flops += self.manifest.flops['decoders']
        else:
            answers = {task: self._decoders[task, precision].run(None, feeds)[0]
                       for task in tasks}
            flops += sum(self._decoder_flops[task] for task in tasks)
        outputs = {task: _to_output(task, answers[task][0], rgb.shape[:2] if resize else None)
                   for task in tasks}
        total_blocks = sum(self.depths)
        all_tokens = sum(count * depth for depth, count in self.layout)
        return MultiTaskResult(
            outputs=outputs, flops=int(flops),
            block_share=sum(c > 0 for stage in tokens_run for c in stage) / total_blocks,
            token_share=sum(sum(stage) for stage in tokens_run) / all_tokens,
            tokens_run=tokens_run, precision=precision)

    def encode(self, image: np.ndarray, policy=STATIC, tasks: Sequence[str] | None = None,
               precision: str = 'fp32') -> 'Encoded':
        """Run one encoder graph: its stage outputs, tokens run per block, FLOPs so far.

        ``image`` as ``preprocess`` returns it. The static model runs every block on
        every token; a policy runs its graph, which decides for ``tasks``.
        """
        chooser = self.policy(policy)
        if chooser is None:
            features = self._static[precision].run({'image': image})
            tokens_run = [[count] * depth for depth, count in self.layout]
            return Encoded(features, tokens_run, self.manifest.flops['encoder_static'])
        outputs, flops = chooser.run(self._sessions[_name(chooser.graph, precision)], image,
                                     tuple(self.tasks if tasks is None else tasks), self.layout)
        stages = len(self.layout)
        features, runs = outputs[:stages], outputs[stages:]
        flops += self._fixed_flops
        tokens_run = []
        for stage, decided in zip(self._block_flops, runs, strict=True):
            counts = [int(n) for n in np.count_nonzero(decided, axis=0)]
            flops += sum(a * n + b * n * n for (a, b), n in zip(stage, counts, strict=True))
            tokens_run.append(counts)
        return Encoded(features, tokens_run, flops)

    def warm_up(self) -> None:
        """One frame through every policy in every precision, so no first frame is slow."""
        frame = np.zeros((self.input_size, self.input_size, 3), np.uint8)
        for name in self.policies:
            for precision in self.precisions:
                self.infer(frame, name, precision=precision)
        self.precision_runs = dict.fromkeys(self.precisions, 0)


def _name(graph: str, precision: str) -> str:
    """Session name of ``graph`` in ``precision``."""
    return graph if precision == 'fp32' else f'{graph}/{precision}'


def _to_output(task: str, answer: np.ndarray, size) -> np.ndarray:
    """Turn a decoder's answer into the published array, resized to ``size`` (H, W) if given."""
    if task == 'saliency':
        answer = np.clip(answer * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if size is None or answer.shape[:2] == tuple(size):
        return answer
    height, width = size
    nearest = task == 'segmentation'
    resized = cv2.resize(answer, (width, height),
                         interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR)
    if task == 'normals':
        resized /= np.maximum(np.linalg.norm(resized, axis=-1, keepdims=True), 1e-6)
    return resized
