"""Procedural strokes: targets painted by our own libmypaint painter from random programs.

The embedded default dataset — no download — and one the agent can reconstruct perfectly: each image
is the final canvas of a random program of `episode_length - 1` actions run by `LibMyPaint` with the
same painter settings the agent uses (pass them through). Every action is uniform over the action
spec, except that it paints with probability `paint_probability` (else it moves the pen) and its brush
is drawn from the sizes up to `max_brush_size` pixels: uniform over all six default sizes, two thirds
of the strokes would be 8–24 px blobs and most canvases would be black.

Splits are by seed: image i of a split is painted from the random stream
`numpy.random.default_rng([seed, split_id, i])` (train = 0, test = 1), so splits never share a
program, a split's images do not depend on how many are asked for, and a seed always gives the same
images. Grey (channels=1) paints black ink (use_color=False); colour (channels=3) uses the colour
actions. Rendered at 64×64 natively, so no resize.

Usage:
  targets = load('train', channels=1, episode_length=10)          # uint8 [10000, 64, 64, 1], cached
  images, programs = render(16, seed=0, split='test', channels=1)  # programs replay exactly
"""

import concurrent.futures
import os

import numpy as np

from spiral_tf.data import cache
from spiral_tf.data import images as image_ops

SPLITS = {'train': 0, 'test': 1}
COUNTS = {'train': 10000, 'test': 1000}
# Painter settings that shape the targets; anything else LibMyPaint takes is rejected (a typo there
# would silently give targets the agent cannot reproduce).
PAINTER_OPTIONS = (
    'episode_length',
    'canvas_width',
    'grid_width',
    'brush_type',
    'brush_sizes',
    'use_pressure',
    'brushes_basedir',
    'render_width',
)
PAINTER_DEFAULTS = {
    'episode_length': 10,
    'canvas_width': 64,
    'grid_width': 32,
    'brush_type': 'classic/dry_brush',
    'brush_sizes': (1, 2, 4, 8, 12, 24),
    'use_pressure': True,
}
_VERSION = 2


def load(
    split='train',
    channels=1,
    seed=0,
    num_images=None,
    limit=None,
    cache_dir=None,
    paint_probability=0.6,
    max_brush_size=4.0,
    **painter,
):
  """uint8 [N, W, W, channels] targets of `split` (N = num_images or COUNTS[split]), cached."""
  if split not in SPLITS:
    raise ValueError(f'strokes split must be one of {tuple(SPLITS)}, got {split!r}')
  count = COUNTS[split] if num_images is None else num_images
  if limit is not None:
    count = min(count, limit)
  settings = _painter_settings(channels, painter)
  key = {
      'version': _VERSION,
      'seed': seed,
      'count': count,
      'p': paint_probability,
      'max_brush_size': max_brush_size,
      'painter': settings,
      'code': cache.fingerprint(_painter_files(settings)),
  }
  name = f'strokes-{split}-{channels}'
  build = lambda: render(count, seed, split, channels, paint_probability, max_brush_size, **painter)[0]
  return cache.cached(name, key, build, cache_dir)


def render(
    num_images, seed=0, split='train', channels=1, paint_probability=0.6, max_brush_size=4.0, **painter
):
  """Paints `num_images` random programs: (uint8 [N, W, W, channels], [program per image])."""
  # Lazy: the painter's engine only when painting; a cached set needs none (nor does the supervisor).
  from environments import libmypaint  # pylint: disable=g-import-not-at-top

  if split not in SPLITS:
    raise ValueError(f'strokes split must be one of {tuple(SPLITS)}, got {split!r}')
  if not isinstance(num_images, (int, np.integer)) or num_images < 0:
    raise ValueError(f'num_images must be a non-negative integer, got {num_images!r}')
  if not 0.0 <= paint_probability <= 1.0:
    raise ValueError(f'paint_probability must be in [0, 1], got {paint_probability!r}')
  settings = _painter_settings(channels, painter)
  small = [i for i, s in enumerate(settings['brush_sizes']) if s <= max_brush_size]
  if len(settings['brush_sizes']) > 1 and not small:
    raise ValueError(
        f'max_brush_size={max_brush_size} is below every brush size ' f'{settings["brush_sizes"]}'
    )
  width = settings.get('canvas_width', 64)
  out = np.empty((num_images, width, width, channels), np.uint8)
  programs = [None] * num_images

  def paint(block):
    env = libmypaint.LibMyPaint(**settings)
    spec = env.action_spec()
    keys = list(spec)
    highs = np.array([spec[k].num_values for k in keys])
    for i in block:
      rng = np.random.default_rng([seed, SPLITS[split], i])
      actions = _random_actions(rng, keys, highs, settings['episode_length'] - 1, paint_probability, small)
      env.reset()
      for action in actions:
        timestep = env.step(action)
      out[i] = image_ops.to_uint8(timestep.observation['canvas'] * 255.0)
      programs[i] = actions
    env.close()

  # The painter releases the GIL while it paints, so one painter per thread uses every core.
  workers = max(1, min(os.cpu_count() or 1, num_images // 64))
  blocks = np.array_split(np.arange(num_images), workers)
  with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
    list(pool.map(paint, blocks))  # list(): re-raises a worker's exception
  return out, programs


def _random_actions(rng, keys, highs, length, paint_probability, small):
  """`length` action dicts: uniform sub-actions, flag = paint with paint_probability, small brushes."""
  values = rng.integers(highs, size=(length, len(keys)))
  flags = rng.random(length) < paint_probability
  sizes = rng.choice(small, size=length) if small else None
  actions = []
  for t in range(length):
    action = dict(zip(keys, values[t].tolist()))
    action['flag'] = int(flags[t])
    if 'size' in action:
      action['size'] = int(sizes[t])
    actions.append(action)
  return actions


def _painter_settings(channels, painter):
  if channels not in (1, 3):
    raise ValueError(f'strokes channels must be 1 (grey) or 3 (colour), got {channels!r}')
  unknown = sorted(set(painter) - set(PAINTER_OPTIONS))
  if unknown:
    raise ValueError(f'unknown strokes painter option(s) {unknown}; allowed: {PAINTER_OPTIONS}')
  settings = dict(PAINTER_DEFAULTS)
  settings.update(painter)
  settings['brush_sizes'] = tuple(float(s) for s in settings['brush_sizes'])
  settings['use_color'] = channels == 3
  return settings


def _painter_files(settings):
  """The files the rendering depends on: the painter's code and the brush."""
  from environments import _mypaint  # pylint: disable=g-import-not-at-top  (as above)
  from environments import libmypaint  # pylint: disable=g-import-not-at-top  (as above)

  brush = libmypaint.find_brush(settings['brush_type'], settings.get('brushes_basedir'))
  return [libmypaint.__file__, _mypaint.__file__, brush]
