"""The AdaMTL runtime: every graph and every policy resident in ONNX Runtime, batch 1.

Per frame: resize to the model's input, embed, then per stage ask the level's policy
which blocks run and which tokens each keeps (the running tasks' sub-networks, OR-ed;
plain thresholds, no noise), gather the kept tokens, run the block on them only,
scatter them back, merge, and finally run only the requested task decoders (all of
them as one graph when every task runs). Outputs
are resized back to the input image. A skipped block is never called. The static
model runs its encoder as one graph, as it would be deployed without AdaMTL, so
that the policies are measured against the best the static model can do.

Why ONNX Runtime and not PyTorch: ``bench multitask`` measures both on the same
frames (``runtime_comparison``) - see the model card.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from adaptive_perception.runtime.onnx_sessions import CPU, create_sessions

MANIFEST_FORMAT = 'adaptive_perception.adamtl.manifest/2'
STATIC = 'static'  # run every block on every token: the static model


@dataclass
class MultiTaskResult:
    """One frame's answers at the input size, and what it cost."""

    outputs: dict        # task -> seg. uint8 ids | depth float32 m | normals | saliency uint8
    flops: int
    block_share: float   # blocks run / all blocks
    token_share: float   # tokens processed / tokens of all blocks
    tokens_run: list     # per stage, tokens each block processed (0 = skipped)


class OnnxPolicy:
    """A trained policy: per stage one graph that decides for the running tasks."""

    def __init__(self, name: str, spec: dict, sessions: dict):
        self.name = name
        self.owners = tuple(spec['owners'])
        self.task_aware = spec['task_aware']
        self._sessions = [sessions[stage['graph']] for stage in spec['stages']]
        self._flops = [stage['flops'] for stage in spec['stages']]
        self._owner_masks = {}  # tasks -> which owners count, built once per task set

    def decide(self, stage: int, tokens: np.ndarray, tasks: Sequence[str]) -> tuple:
        """(blocks on (depth,) bool, kept tokens (depth, N) bool, FLOPs spent deciding)."""
        key = tuple(tasks)
        owners = self._owner_masks.get(key)
        if owners is None:
            owners = np.array([not self.task_aware or owner in key for owner in self.owners])
            self._owner_masks[key] = owners
        blocks_on, kept = self._sessions[stage].run(None, {'tokens': tokens, 'owners': owners})
        # Every owner's sub-network is in the graph; all of them ran.
        return blocks_on, kept, self._flops[stage]


class RandomPolicy:
    """The ablation's baseline: blocks and tokens kept at random with fixed shares."""

    def __init__(self, block_share: float, token_share: float, depths: Sequence[int],
                 seed: int = 0):
        self.name = f'random:{block_share:g}/{token_share:g}'
        self.block_share, self.token_share = block_share, token_share
        self.depths = list(depths)  # blocks per stage (the engine's ``depths``)
        self._rng = np.random.default_rng(seed)

    def decide(self, stage: int, tokens: np.ndarray, tasks: Sequence[str]) -> tuple:
        """Random decisions, whatever the tokens say."""
        depth, count = self.depths[stage], tokens.shape[1]
        return (self._rng.random(depth) < self.block_share,
                self._rng.random((depth, count)) < self.token_share, 0)


class MultiTaskEngine:
    """Loads an exported AdaMTL directory once; ``infer`` runs one frame."""

    def __init__(self, model_dir, providers: Sequence[str] = (CPU,), threads: int = 1,
                 warn=None):
        self.model_dir = Path(model_dir)
        path = self.model_dir / 'manifest.json'
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ValueError(f'cannot read the AdaMTL manifest {path}: {error}') from None
        if manifest.get('format') != MANIFEST_FORMAT:
            raise ValueError(f'{path}: format {manifest.get("format")!r}, expected '
                             f'{MANIFEST_FORMAT!r}')
        self.manifest = manifest
        config = manifest['config']
        self.tasks = tuple(config['tasks'])
        self.class_names = tuple(config['class_names'])
        self.input_size = int(manifest['input_size'])
        self._mean, self._std = manifest['mean'], manifest['std']
        loaded = create_sessions({name: self.model_dir / file
                                  for name, file in manifest['graphs'].items()},
                                 providers, threads, warn)
        self.providers = loaded.providers
        sessions = loaded.sessions
        self._embed = sessions['embed']
        self._encoder_static = sessions['encoder_static']
        self._blocks = [[sessions[b['graph']] for b in stage] for stage in manifest['blocks']]
        self._block_flops = [[b['flops'] for b in stage] for stage in manifest['blocks']]
        self.depths = [len(stage) for stage in self._blocks]
        self._merges = [sessions[f'merge_s{s}'] for s in range(len(self._blocks) - 1)]
        self._merge_flops = [manifest['flops'][f'merge_s{s}'] for s in range(len(self._merges))]
        self._decoders = {task: sessions[d['graph']] for task, d in manifest['decoders'].items()}
        self._decoder_flops = {task: d['flops'] for task, d in manifest['decoders'].items()}
        self._all_decoders = sessions['decoders']
        self._policies = {name: OnnxPolicy(name, spec, sessions)
                          for name, spec in manifest['policies'].items()}
        self.policies = (STATIC, *self._policies)
        self.references = manifest.get('references', {})

    def policy(self, name):
        """Look up a resident policy by name (``static`` = None); a policy object passes."""
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

    def infer(self, rgb: np.ndarray, policy=STATIC, tasks: Sequence[str] | None = None,
              resize: bool = True) -> MultiTaskResult:
        """One frame through ``policy`` for ``tasks`` (default: all the model's tasks).

        ``resize`` False keeps the outputs at the model's input size (for scoring).
        """
        tasks = tuple(self.tasks if tasks is None else tasks)
        unknown = [t for t in tasks if t not in self.tasks]
        if unknown:
            raise ValueError(f'tasks {unknown} not in this model ({", ".join(self.tasks)})')
        chooser = self.policy(policy)
        image = self.preprocess(rgb)
        if chooser is None:  # the static model: one graph, every block on every token
            features = self._encoder_static.run(None, {'image': image})
            flops = self.manifest['flops']['encoder_static']
            tokens_run = [[f.shape[1]] * depth for f, depth in
                          zip(features, self.depths, strict=True)]
        else:
            features, tokens_run, flops = self._run_adaptive(image, chooser, tasks)
        feeds = {f'stage{s}': f for s, f in enumerate(features)}
        if set(tasks) == set(self.tasks):  # the usual case: every decoder in one graph
            answers = dict(zip(self.tasks, self._all_decoders.run(None, feeds), strict=True))
            flops += self.manifest['flops']['decoders']
        else:
            answers = {task: self._decoders[task].run(None, feeds)[0] for task in tasks}
            flops += sum(self._decoder_flops[task] for task in tasks)
        outputs = {task: _to_output(task, answers[task][0], rgb.shape[:2] if resize else None)
                   for task in tasks}
        total_blocks = sum(self.depths)
        all_tokens = sum(len(f[0]) * depth
                         for f, depth in zip(features, self.depths, strict=True))
        return MultiTaskResult(
            outputs=outputs, flops=int(flops),
            block_share=sum(c > 0 for stage in tokens_run for c in stage) / total_blocks,
            token_share=sum(sum(stage) for stage in tokens_run) / all_tokens,
            tokens_run=tokens_run)

    def _run_adaptive(self, image: np.ndarray, chooser, tasks) -> tuple:
        """Run the encoder block by block: (stage outputs, tokens run per block, FLOPs).

        Kept tokens are written back in place: every array here is the fresh output
        of a graph that nothing else holds.
        """
        x = self._embed.run(None, {'image': image})[0]
        flops = self.manifest['flops']['embed']
        features, tokens_run = [], []
        for s, blocks in enumerate(self._blocks):
            blocks_on, kept, decide_flops = chooser.decide(s, x, tasks)
            flops += decide_flops
            stage_counts = []
            for j, session in enumerate(blocks):
                index = np.flatnonzero(kept[j]) if blocks_on[j] else np.empty(0, int)
                count = index.size
                a, b = self._block_flops[s][j]
                flops += a * count + b * count * count
                stage_counts.append(int(count))
                if count == x.shape[1]:  # every token: no gather, no scatter
                    x = session.run(None, {'tokens': x})[0]
                elif count >= 2:
                    kept_tokens = np.ascontiguousarray(x[:, index])
                    x[:, index] = session.run(None, {'tokens': kept_tokens})[0]
                elif count == 1:
                    # torch.export specialises sizes 0 and 1, so the graphs take >= 2
                    # tokens; a lone token attends only to itself, and so does each of
                    # two copies of it.
                    pair = np.concatenate([x[:, index], x[:, index]], 1)
                    x[:, index] = session.run(None, {'tokens': pair})[0][:, :1]
            tokens_run.append(stage_counts)
            features.append(x)
            if s < len(self._merges):
                x = self._merges[s].run(None, {'tokens': x})[0]
                flops += self._merge_flops[s]
        return features, tokens_run, flops

    def warm_up(self) -> None:
        """One frame through every policy, so the first real frame is not slow."""
        frame = np.zeros((self.input_size, self.input_size, 3), np.uint8)
        for name in self.policies:
            self.infer(frame, name)


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
