"""Tests of the procedural strokes dataset, rendered by the real libmypaint painter."""

import numpy as np
import pytest

from environments import libmypaint
from spiral_tf.data import strokes

PAINTER = {'episode_length': 6, 'grid_width': 16}


def test_shapes_range_and_ink_on_white():
  images, programs = strokes.render(24, seed=3, split='train', channels=1, **PAINTER)
  assert images.shape == (24, 64, 64, 1) and images.dtype == np.uint8
  assert len(programs) == 24 and all(len(p) == PAINTER['episode_length'] - 1 for p in programs)
  assert np.median(images) > 200  # mostly white paper
  painted = [any(a['flag'] for a in p) for p in programs]
  dark = (images < 128).mean(axis=(1, 2, 3)) > 0
  np.testing.assert_array_equal(dark, painted)  # ink exactly where something was painted
  colour, _ = strokes.render(8, seed=3, split='train', channels=3, **PAINTER)
  assert colour.shape == (8, 64, 64, 3)
  assert (np.ptp(colour.astype(int), axis=-1) > 30).any()  # coloured ink, not grey


def test_programs_replay_to_their_images():
  images, programs = strokes.render(5, seed=1, split='test', channels=1, **PAINTER)
  for image, program in zip(images, programs):
    canvas = libmypaint.replay(program, use_color=False, **PAINTER)
    np.testing.assert_array_equal(image, np.clip(np.rint(canvas * 255), 0, 255).astype(np.uint8))


def test_programs_respect_the_sampling_rules():
  _, programs = strokes.render(
      40, seed=0, split='train', channels=1, paint_probability=0.5, max_brush_size=4.0, **PAINTER
  )
  actions = [a for p in programs for a in p]
  sizes = {a['size'] for a in actions}
  assert sizes <= {0, 1, 2} and len(sizes) == 3  # radii 1, 2, 4 px only
  assert 0.35 < np.mean([a['flag'] for a in actions]) < 0.65


def test_deterministic_for_a_seed_and_split():
  a, _ = strokes.render(6, seed=7, split='train', channels=1, **PAINTER)
  b, _ = strokes.render(6, seed=7, split='train', channels=1, **PAINTER)
  prefix, _ = strokes.render(3, seed=7, split='train', channels=1, **PAINTER)
  other_seed, _ = strokes.render(6, seed=8, split='train', channels=1, **PAINTER)
  test, _ = strokes.render(6, seed=7, split='test', channels=1, **PAINTER)
  np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(prefix, a[:3])  # image i does not depend on the count
  for other in (other_seed, test):
    assert not any(np.array_equal(x, y) for x in a for y in other)


def test_load_caches_and_counts(tmp_path):
  first = strokes.load('test', channels=1, num_images=10, cache_dir=str(tmp_path), **PAINTER)
  rendered, _ = strokes.render(10, seed=0, split='test', channels=1, **PAINTER)
  np.testing.assert_array_equal(first, rendered)
  assert len(list(tmp_path.glob('strokes-test-1-*.npy'))) == 1
  np.testing.assert_array_equal(
      strokes.load('test', channels=1, num_images=10, cache_dir=str(tmp_path), **PAINTER), first
  )
  assert strokes.load(
      'test', channels=1, num_images=10, limit=4, cache_dir=str(tmp_path), **PAINTER
  ).shape == (4, 64, 64, 1)
  assert strokes.COUNTS == {'train': 10000, 'test': 1000}


def test_bad_options_are_named():
  with pytest.raises(ValueError, match='use_colour'):
    strokes.render(1, use_colour=True)
  with pytest.raises(ValueError, match='channels'):
    strokes.render(1, channels=4)
  with pytest.raises(ValueError, match='max_brush_size'):
    strokes.render(1, max_brush_size=0.5)
  with pytest.raises(ValueError, match='split'):
    strokes.load('validation')


def test_threaded_rendering_matches_the_programs():
  small = {'episode_length': 3, 'grid_width': 8}
  images, programs = strokes.render(130, seed=5, split='train', channels=1, **small)  # 2 threads
  again, _ = strokes.render(130, seed=5, split='train', channels=1, **small)
  prefix, _ = strokes.render(3, seed=5, split='train', channels=1, **small)  # 1 thread
  np.testing.assert_array_equal(images, again)
  np.testing.assert_array_equal(images[:3], prefix)
  for i in (0, 64, 65, 129):  # both sides of the block boundary
    canvas = libmypaint.replay(programs[i], use_color=False, **small)
    np.testing.assert_array_equal(images[i], np.clip(np.rint(canvas * 255), 0, 255).astype(np.uint8))
