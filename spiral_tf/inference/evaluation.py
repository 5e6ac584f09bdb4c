"""Reconstruction quality of an exported agent against a non-learned baseline with the same budget.

Metric: mean squared error per pixel (over pixels and channels, images in [0, 1]) between the final
canvas and the target, averaged over held-out targets. Lower is better; a blank canvas's error is
reported alongside as the floor every method must beat.

Budget: a *render* is one canvas the renderer produces from a new stroke. The agent paints
`num_samples` episodes of L − 1 strokes per target and keeps the one closest to the target, so it
spends `num_samples · (L − 1)` renders. The baseline, greedy search over random strokes, spends the
same: at each of the L − 1 steps it draws `num_samples` uniformly random actions (over the whole action
spec, like the agent's action space), renders each on top of the canvas so far, and keeps the one with
the lowest error (a move, which leaves the canvas unchanged, wins when no stroke helps). Re-painting the
kept prefix to branch from it repeats canvases already counted, so it is not counted again.

Decoding: the agent samples its actions as in training ('sample'), or takes the most likely value of each
sub-action ('greedy', arg-max; with num_samples > 1 the episodes differ only in their noise samples).
Best-of-N is `num_samples=N`: N episodes per target, the closest one counts.

Usage:
  painter = Painter.from_saved_model(export_dir)
  result = evaluate(painter, targets_uint8, num_samples=4, seed=0)        # best of 4 sampled episodes
  greedy = evaluate(painter, targets_uint8, decoding='greedy')
  result.summary()          # {'agent_mse': ..., 'baseline_mse': ..., 'blank_mse': ..., ...}
  write_grid('grid.png', result, max_columns=16)
"""

import dataclasses
import time

import numpy as np

from spiral_tf.inference import image_io


@dataclasses.dataclass
class EvaluationResult:
  targets: np.ndarray  # uint8 [N, W, W, C]
  agent_canvases: np.ndarray  # float32 [N, W, W, C], the agent's best sample per target
  baseline_canvases: np.ndarray
  agent_mse: np.ndarray  # float64 [N]
  baseline_mse: np.ndarray
  blank_mse: np.ndarray
  num_samples: int
  renders_per_target: int
  seconds: dict
  decoding: str = 'sample'

  def summary(self) -> dict:
    n = len(self.targets)
    stderr = lambda x: float(np.std(x, ddof=1) / np.sqrt(n)) if n > 1 else 0.0
    return {
        'num_targets': n,
        'decoding': self.decoding,
        'num_samples': self.num_samples,
        'renders_per_target': self.renders_per_target,
        'agent_mse': float(np.mean(self.agent_mse)),
        'agent_mse_stderr': stderr(self.agent_mse),
        'baseline_mse': float(np.mean(self.baseline_mse)),
        'baseline_mse_stderr': stderr(self.baseline_mse),
        'blank_mse': float(np.mean(self.blank_mse)),
        'agent_wins': int(np.sum(self.agent_mse < self.baseline_mse)),
        'agent_seconds': round(self.seconds['agent'], 3),
        'baseline_seconds': round(self.seconds['baseline'], 3),
    }


def mse_per_pixel(canvas, target) -> float:
  """Mean over pixels and channels of (canvas − target)², both float in [0, 1]."""
  canvas, target = np.asarray(canvas, np.float64), np.asarray(target, np.float64)
  if canvas.shape != target.shape:
    raise ValueError(f'canvas {canvas.shape} and target {target.shape} differ in shape')
  return float(np.mean(np.square(canvas - target)))


def greedy_search(make_renderer, target, candidates_per_step, rng):
  """Greedy search over random strokes (see module docstring).

  Args:
    make_renderer: () → a fresh dm_env renderer whose observation has a `canvas` (float [W, W, C]).
    target: float [W, W, C] in [0, 1].
    candidates_per_step: random actions tried at each step.
    rng: numpy Generator.

  Returns:
    (final canvas, program (list of action dicts), number of candidate renders).
  """
  if candidates_per_step < 1:
    raise ValueError(f'candidates_per_step must be ≥ 1, got {candidates_per_step}')
  env = make_renderer()
  spec = env.action_spec()
  timestep = env.reset()
  canvas = timestep.observation['canvas']
  program, renders = [], 0
  while not timestep.last():
    best = None
    for c in range(candidates_per_step):
      action = {k: int(rng.integers(s.num_values)) for k, s in spec.items()}
      if c > 0:  # Branch again from the kept prefix.
        env.reset()
        for kept in program:
          env.step(kept)
      candidate = env.step(action)
      renders += 1
      error = mse_per_pixel(candidate.observation['canvas'], target)
      if best is None or error < best[0]:
        best = (error, action, candidate)
    _, action, chosen = best
    program.append(action)
    if chosen is not candidate:  # The env holds the last candidate: bring it to the chosen one.
      env.reset()
      for kept in program[:-1]:
        env.step(kept)
      chosen = env.step(action)
    timestep = chosen
    canvas = timestep.observation['canvas']
  env.close()
  return canvas, program, renders


def greedy_search_baseline(painter, targets, num_samples: int = 1, seed: int = 0):
  """Greedy search (`num_samples` candidates per step) on every target: (canvases [N, W, W, C], mse [N]).

  It depends on the renderer settings, the targets, `num_samples` and `seed` only, so agents with the
  same settings can share one (`evaluate(..., baseline=...)`).
  """
  floats = np.asarray(targets).astype(np.float32) / 255.0
  rng = np.random.default_rng([seed, 1])
  canvases, mse, renders = [], [], None
  for target in floats:
    canvas, _, renders = greedy_search(painter.make_renderer, target, num_samples, rng)
    canvases.append(canvas)
    mse.append(mse_per_pixel(canvas, target))
  steps = painter.episode_length - 1
  assert renders == num_samples * steps, (renders, num_samples, steps)
  return np.stack(canvases), np.array(mse, np.float64)


def evaluate(
    painter, targets, num_samples: int = 1, seed: int = 0, decoding: str = 'sample', baseline=None
) -> EvaluationResult:
  """Agent (best of `num_samples` episodes, `decoding` 'sample' or 'greedy') vs greedy search with the
  same renders, per target. `baseline`: a `greedy_search_baseline` result for these targets, `num_samples`
  and `seed`, to reuse instead of searching again."""
  if not painter.conditional:
    raise ValueError(
        f'{painter.source} is unconditional: evaluation measures reconstructions of '
        'targets, which needs a conditional agent'
    )
  targets = np.asarray(targets)
  if len(targets) == 0:
    raise ValueError('evaluate needs at least one target')
  floats = targets.astype(np.float32) / 255.0

  start = time.monotonic()
  agent_canvases, agent_mse = [], []
  for samples in painter.paint_targets(targets, num_samples=num_samples, seed=seed, decoding=decoding):
    best = min(samples, key=lambda p: p.mse)
    agent_canvases.append(best.canvas)
    agent_mse.append(best.mse)
  agent_seconds = time.monotonic() - start

  start = time.monotonic()
  if baseline is None:
    baseline = greedy_search_baseline(painter, targets, num_samples, seed)
  baseline_canvases, baseline_mse = baseline
  if len(baseline_mse) != len(targets):
    raise ValueError(f'baseline has {len(baseline_mse)} results for {len(targets)} targets')
  baseline_seconds = time.monotonic() - start

  steps = painter.episode_length - 1
  return EvaluationResult(
      targets=targets,
      agent_canvases=np.stack(agent_canvases),
      baseline_canvases=baseline_canvases,
      agent_mse=np.array(agent_mse, np.float64),
      baseline_mse=baseline_mse,
      blank_mse=np.array([mse_per_pixel(np.ones_like(t), t) for t in floats]),
      num_samples=num_samples,
      renders_per_target=num_samples * steps,
      seconds={'agent': agent_seconds, 'baseline': baseline_seconds},
      decoding=decoding,
  )


def grid_image(result: EvaluationResult, max_columns: int = 16, zoom: int = 2) -> np.ndarray:
  """float32 image: rows = targets, agent, baseline; one column per target (first `max_columns`).

  A 2-pixel grey gutter separates the cells.
  """
  n = min(len(result.targets), max_columns)
  rows = [
      result.targets[:n].astype(np.float32) / 255.0,
      result.agent_canvases[:n],
      result.baseline_canvases[:n],
  ]
  width, channels = rows[0].shape[1] * zoom, rows[0].shape[-1]
  gutter = 2
  out = np.full((3 * width + 4 * gutter, n * width + (n + 1) * gutter, channels), 0.5, np.float32)
  for r, images in enumerate(rows):
    for c, image in enumerate(images):
      top, left = gutter + r * (width + gutter), gutter + c * (width + gutter)
      out[top : top + width, left : left + width] = image_io.upscale_nearest(image, zoom)
  return out


def write_grid(path, result: EvaluationResult, max_columns: int = 16) -> str:
  return image_io.write_png(path, grid_image(result, max_columns))
