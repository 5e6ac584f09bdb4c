"""Throughput of the libmypaint painter at DeepMind's notebook settings, one process.

Usage:
  .venv/bin/python benchmarks/env_throughput.py [--steps 2000] [--repeats 5]

Settings: 64² canvas, grid 32, classic/dry_brush, sizes [1, 2, 4, 8, 12, 24], colour and pressure on,
episode_length 20. Each repeat steps the environment `--steps` times with uniformly random values for
every sub-action (paint-only forces flag = 1, move-only flag = 0); the step after LAST is the reset
that dm_env semantics ask for and is counted as a step, as in DeepMind's measurement. Actions are
drawn before the clock starts.

Also measured: reset() after a painted episode; reading the canvas back after a paint (dirty tile) and
after a move (nothing to convert); and the time spent inside libmypaint itself per paint step
(the C extension times its stroke_to and end_atomic calls), which is the floor for a paint step.
The last printed line is one JSON object.
"""

import argparse
import json
import os
import statistics
import time

import numpy as np

from environments.libmypaint import LibMyPaint

NOTEBOOK = dict(
    episode_length=20,
    canvas_width=64,
    grid_width=32,
    brush_type='classic/dry_brush',
    brush_sizes=[1, 2, 4, 8, 12, 24],
    use_color=True,
    use_pressure=True,
)
DEEPMIND = dict(
    random_steps_per_s=1165, paint_steps_per_s=862, move_steps_per_s=1932, reset_ms=0.49, canvas_read_ms=0.36
)  # docs/design.md §7, DeepMind's env on these machines


def _actions(env, rng, n, flag):
  spec = env.action_spec()
  columns = {k: rng.integers(s.num_values, size=n).tolist() for k, s in spec.items()}
  if flag is not None:
    columns['flag'] = [flag] * n
  return [{k: columns[k][i] for k in spec} for i in range(n)]


def _steps_per_second(env, rng, steps, repeats, flag):
  rates, libmypaint_ms, paints = [], [], []
  for _ in range(repeats):
    actions = _actions(env, rng, steps, flag)
    env.reset()
    inside_before = env.libmypaint_seconds
    painted = 0
    start = time.perf_counter()
    for action in actions:
      timestep = env.step(action)
      painted += action['flag'] == 1 and not timestep.first()
    elapsed = time.perf_counter() - start
    rates.append(steps / elapsed)
    paints.append(painted)
    if painted:
      libmypaint_ms.append(1e3 * (env.libmypaint_seconds - inside_before) / painted)
  median_ms = statistics.median(libmypaint_ms) if libmypaint_ms else 0.0
  return statistics.median(rates), rates, median_ms


def _reset_ms(env, rng, repeats=300):
  times = []
  for _ in range(repeats):
    env.reset()
    for action in _actions(env, rng, 5, flag=1):
      env.step(action)
    start = time.perf_counter()
    env.reset()
    times.append(time.perf_counter() - start)
  return 1e3 * statistics.median(times)


def _canvas_read_ms(env, rng, repeats=500):
  """Median read-back time after a paint (tile to convert) and after a move (cached)."""
  painter = env._painter  # pylint: disable=protected-access
  canvas = np.empty(env.observation_spec()['canvas'].shape, np.float32)
  dirty, clean = [], []
  env.reset()
  for action in _actions(env, rng, repeats, flag=1):
    if env.step(action).last():
      env.reset()
    # step() already read the canvas; paint once more without reading, then time the read.
    painter.stroke(10.0, 10.0, 30.0, 40.0, 50.0, 20.0, 0.5, 0.5, 1.0, 0.2, 0.4, 0.6, False)
    start = time.perf_counter()
    painter.read_into(canvas)
    dirty.append(time.perf_counter() - start)
    start = time.perf_counter()
    painter.read_into(canvas)
    clean.append(time.perf_counter() - start)
  return 1e3 * statistics.median(dirty), 1e3 * statistics.median(clean)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--steps', type=int, default=2000, help='steps per repeat (>= 2000 for the record)')
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args()
  if args.steps < 1 or args.repeats < 1:
    parser.error('--steps and --repeats must be positive')

  rng = np.random.default_rng(args.seed)
  env = LibMyPaint(**NOTEBOOK)
  print(f'load average before: {os.getloadavg()[0]:.2f} (2 cores; other jobs make figures noisy)')
  results = {}
  for name, flag in (('random', None), ('paint', 1), ('move', 0)):
    median, rates, inside_ms = _steps_per_second(env, rng, args.steps, args.repeats, flag)
    results[f'{name}_steps_per_s'] = round(median, 1)
    if name == 'paint':
      results['libmypaint_ms_per_paint_step'] = round(inside_ms, 4)
    print(
        f'{name:>6}: median {median:9.1f} steps/s over {args.repeats} x {args.steps} steps '
        f'(each: {", ".join(f"{r:.0f}" for r in rates)}); DeepMind: {DEEPMIND[name + "_steps_per_s"]}'
    )
  results['reset_ms'] = round(_reset_ms(env, rng), 4)
  dirty_ms, clean_ms = _canvas_read_ms(env, rng)
  results['canvas_read_ms'] = round(dirty_ms, 4)
  results['canvas_read_clean_ms'] = round(clean_ms, 4)
  paint_ms = 1e3 / results['paint_steps_per_s']
  results['env_overhead_ms_per_paint_step'] = round(paint_ms - results['libmypaint_ms_per_paint_step'], 4)
  print(f' reset: {results["reset_ms"]:.3f} ms (DeepMind {DEEPMIND["reset_ms"]} ms)')
  print(
      f'  read: {dirty_ms:.4f} ms after a paint, {clean_ms:.4f} ms after a move '
      f'(DeepMind converts in numpy: {DEEPMIND["canvas_read_ms"]} ms every step)'
  )
  print(
      f' paint: {paint_ms:.3f} ms per step, of which libmypaint itself '
      f'{results["libmypaint_ms_per_paint_step"]:.3f} ms (brush dynamics + dabs), environment '
      f'{results["env_overhead_ms_per_paint_step"]:.3f} ms'
  )

  # SPIRAL++: render at 256², observe an area-averaged 64².
  big = LibMyPaint(render_width=256, **NOTEBOOK)
  median, _, inside_ms = _steps_per_second(big, rng, max(args.steps // 4, 1), 3, None)
  results['random_steps_per_s_render256'] = round(median, 1)
  print(
      f'render 256 -> observe 64, random: {median:.1f} steps/s '
      f'(libmypaint {inside_ms:.3f} ms per paint step)'
  )
  results['load_average_after'] = round(os.getloadavg()[0], 2)
  print(json.dumps(results))


if __name__ == '__main__':
  main()
