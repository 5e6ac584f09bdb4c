"""Evaluation: MSE per pixel, greedy-search baseline with the agent's render budget, grid, CLI."""

import json
import types

import numpy as np
from PIL import Image
import pytest

from environments import libmypaint
import export_fixtures as fixtures
from spiral_tf.data import strokes
from spiral_tf.inference import evaluation
from spiral_tf.inference import painter as painter_lib

SETTINGS = dict(episode_length=4, grid_width=16, use_color=False)


def _held_out_targets(count):
  config = fixtures.trained_run().config
  from spiral_tf import components  # pylint: disable=g-import-not-at-top

  images, _ = strokes.render(count, seed=0, split='test', channels=1, **components.dataset_options(config))
  return images


def test_mse_per_pixel():
  rng = np.random.default_rng(0)
  a, b = rng.uniform(size=(2, 8, 8, 3))
  assert evaluation.mse_per_pixel(a, b) == pytest.approx(((a - b) ** 2).sum() / a.size)
  with pytest.raises(ValueError, match='shape'):
    evaluation.mse_per_pixel(a, b[..., :1])


def test_greedy_search_keeps_the_best_candidate_at_every_step():
  target = _held_out_targets(1)[0].astype(np.float32) / 255
  make = lambda: libmypaint.LibMyPaint(**SETTINGS)
  candidates = 3
  canvas, program, renders = evaluation.greedy_search(make, target, candidates, np.random.default_rng(7))
  assert renders == candidates * (SETTINGS['episode_length'] - 1)
  np.testing.assert_array_equal(libmypaint.replay(program, **SETTINGS), canvas)
  # Recompute every step independently: the same random candidates, each replayed from scratch.
  rng = np.random.default_rng(7)
  spec = make().action_spec()
  kept = []
  for step in range(SETTINGS['episode_length'] - 1):
    drawn = [{k: int(rng.integers(s.num_values)) for k, s in spec.items()} for _ in range(candidates)]
    errors = [np.mean((libmypaint.replay(kept + [a], **SETTINGS) - target) ** 2) for a in drawn]
    assert program[step] == drawn[int(np.argmin(errors))]
    kept.append(program[step])


def test_evaluate_agent_against_baseline_on_held_out_targets(tmp_path):
  painter = painter_lib.Painter.from_saved_model(fixtures.exported_model())
  targets = _held_out_targets(3)
  result = evaluation.evaluate(painter, targets, num_samples=2, seed=1)
  steps = fixtures.EPISODE_LENGTH - 1
  assert result.renders_per_target == 2 * steps
  floats = targets.astype(np.float64) / 255
  for i in range(3):
    np.testing.assert_allclose(
        result.agent_mse[i], np.mean((result.agent_canvases[i] - floats[i]) ** 2), rtol=1e-6
    )
    np.testing.assert_allclose(
        result.baseline_mse[i], np.mean((result.baseline_canvases[i] - floats[i]) ** 2), rtol=1e-6
    )
    np.testing.assert_allclose(result.blank_mse[i], np.mean((1 - floats[i]) ** 2), rtol=1e-6)
  summary = result.summary()
  assert summary['agent_mse'] == pytest.approx(np.mean(result.agent_mse))
  assert summary['baseline_mse'] == pytest.approx(np.mean(result.baseline_mse))
  assert summary['agent_wins'] == int(np.sum(result.agent_mse < result.baseline_mse))

  grid = evaluation.grid_image(result, zoom=2)
  cell, gutter = 128, 2
  assert grid.shape == (3 * cell + 4 * gutter, 3 * cell + 4 * gutter, 1)
  for row, images in enumerate([floats, result.agent_canvases, result.baseline_canvases]):
    top, left = gutter + row * (cell + gutter), gutter + 2 * (cell + gutter)
    np.testing.assert_allclose(grid[top : top + cell : 2, left : left + cell : 2], images[2], atol=1e-6)

  # Greedy decoding is deterministic for given noise samples (the seed), and is what evaluate reports.
  greedy = evaluation.evaluate(painter, targets, num_samples=1, seed=1, decoding='greedy')
  again = painter.paint_targets(targets, num_samples=1, seed=1, decoding='greedy')
  np.testing.assert_array_equal(greedy.agent_canvases, np.stack([p[0].canvas for p in again]))
  assert greedy.summary()['decoding'] == 'greedy'
  with pytest.raises(ValueError, match='beam'):
    painter.paint_targets(targets, decoding='beam')
  # A shared baseline is used as given.
  shared = evaluation.greedy_search_baseline(painter, targets, 2, seed=1)
  np.testing.assert_array_equal(shared[1], result.baseline_mse)

  # Only the painter's `conditional` and `source` are read before the refusal.
  unconditional = types.SimpleNamespace(conditional=False, source='an unconditional model')
  with pytest.raises(ValueError, match='unconditional'):
    evaluation.evaluate(unconditional, targets)


def test_evaluate_cli(tmp_path):
  grid = tmp_path / 'grid.png'
  result = fixtures.run_script(
      'evaluate.py',
      f'--model={fixtures.exported_model()}',
      '--num_targets=2',
      '--num_samples=1',
      f'--grid={grid}',
      env={'SPIRAL_CACHE_DIR': str(tmp_path / 'cache')},
  )
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.loads(result.stdout.strip().splitlines()[-1])
  assert summary['num_targets'] == 2 and summary['dataset'] == 'strokes' and summary['split'] == 'test'
  assert summary['renders_per_target'] == fixtures.EPISODE_LENGTH - 1
  assert summary['learner_step'] == fixtures.UPDATES
  assert 0 <= summary['agent_mse'] <= 1 and 0 <= summary['baseline_mse'] <= 1
  # --num_samples=1: sampled and greedy decoding (best-of-1 would repeat the sampled one).
  assert set(summary['decodings']) == {'sample', 'greedy'}
  assert summary['decodings']['greedy']['decoding'] == 'greedy'
  assert summary['decodings']['sample']['agent_mse'] == summary['agent_mse']
  # Both spend 1 × (L − 1) renders, so they share one greedy-search baseline.
  assert summary['decodings']['greedy']['baseline_mse'] == summary['baseline_mse']
  assert Image.open(grid).size == (2 * 128 + 3 * 2, 3 * 128 + 4 * 2)

  missing = fixtures.run_script('evaluate.py', f'--model={tmp_path / "absent"}')
  assert missing.returncode == 1 and 'does not exist' in missing.stderr
  bad = fixtures.run_script('evaluate.py', f'--model={fixtures.exported_model()}', '--decodings=beam')
  assert bad.returncode == 1 and '--decodings=beam' in bad.stderr
