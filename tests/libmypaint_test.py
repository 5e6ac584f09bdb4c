"""Tests of the libmypaint painter against the real libmypaint (Debian 1.6.0) and dry_brush."""

import collections
import os
import shutil
import threading

import dm_env
import numpy as np
import pytest

from environments import libmypaint
from environments.libmypaint import LibMyPaint
from environments.libmypaint import replay

NOTEBOOK_KEYS = ['control', 'end', 'flag', 'pressure', 'size', 'red', 'green', 'blue']
GRID = 32
WIDTH = 64


def _index(row, col, grid=GRID):
  return row * grid + col


def _paint(end, control, pressure=9, size=3, rgb=(0, 0, 0), **extra):
  action = dict(
      control=control, end=end, flag=1, pressure=pressure, size=size, red=rgb[0], green=rgb[1], blue=rgb[2]
  )
  action.update(extra)
  return action


def _move(end):
  return dict(control=0, end=end, flag=0, pressure=0, size=0, red=0, green=0, blue=0)


def _ink(canvas):
  """Darkness per pixel on white paper: 0 for white, 1 for black."""
  return 1.0 - canvas.mean(axis=-1)


def _bezier(p_s, p_c, p_e, n=2001):
  t = np.linspace(0.0, 1.0, n)[:, None]
  return (1 - t) ** 2 * np.array(p_s) + 2 * (1 - t) * t * np.array(p_c) + t**2 * np.array(p_e)


def _random_program(env, rng, n):
  spec = env.action_spec()
  return [{k: int(rng.integers(s.num_values)) for k, s in spec.items()} for _ in range(n)]


def _run(env, program):
  timestep = env.reset()
  for action in program:
    timestep = env.step(action)
  return timestep


def _block_mean(image, k):
  h, w, c = image.shape
  return image.reshape(h // k, k, w // k, k, c).mean(axis=(1, 3))


# --- specs -------------------------------------------------------------------------------------


def test_action_spec_matches_deepmind_keys_order_and_sizes():
  spec = LibMyPaint().action_spec()
  assert isinstance(spec, collections.OrderedDict)
  assert list(spec) == NOTEBOOK_KEYS
  expected = dict(control=1024, end=1024, flag=2, pressure=10, size=6, red=20, green=20, blue=20)
  for key, s in spec.items():
    assert isinstance(s, dm_env.specs.DiscreteArray)
    assert s.num_values == expected[key], key
    assert s.dtype == np.int32 and s.shape == ()


def test_action_spec_drops_disabled_features():
  assert list(LibMyPaint(use_pressure=False).action_spec()) == [
      'control',
      'end',
      'flag',
      'size',
      'red',
      'green',
      'blue',
  ]
  assert list(LibMyPaint(use_color=False).action_spec()) == ['control', 'end', 'flag', 'pressure', 'size']
  assert list(LibMyPaint(brush_sizes=[3]).action_spec()) == [
      'control',
      'end',
      'flag',
      'pressure',
      'red',
      'green',
      'blue',
  ]
  assert LibMyPaint(grid_width=8).action_spec()['end'].num_values == 64


@pytest.mark.parametrize(
    'use_color,use_alpha,channels', [(True, False, 3), (True, True, 4), (False, False, 1), (False, True, 1)]
)
def test_observation_spec_and_observation_agree(use_color, use_alpha, channels):
  env = LibMyPaint(canvas_width=32, grid_width=16, use_color=use_color, use_alpha=use_alpha)
  spec = env.observation_spec()
  assert list(spec) == ['canvas', 'episode_step', 'episode_length', 'action_mask']
  assert spec['canvas'].shape == (32, 32, channels) and spec['canvas'].dtype == np.float32
  assert spec['episode_step'].shape == () and spec['episode_step'].dtype == np.int32
  assert spec['episode_length'].dtype == np.int32
  assert list(spec['action_mask']) == list(env.action_spec())
  timestep = env.reset()
  for action in _random_program(env, np.random.default_rng(1), 3):
    timestep = env.step(action)
    spec['canvas'].validate(timestep.observation['canvas'])
    spec['episode_step'].validate(timestep.observation['episode_step'])
    spec['episode_length'].validate(timestep.observation['episode_length'])
    for key, s in spec['action_mask'].items():
      s.validate(timestep.observation['action_mask'][key])


# --- episode semantics ---------------------------------------------------------------------------


def test_episode_of_length_20_has_19_actions_and_a_step_after_last_resets():
  env = LibMyPaint(episode_length=20)
  first = env.step(_move(5))  # a step before any reset is a reset
  assert first.step_type == dm_env.StepType.FIRST and env.program == []
  assert int(first.observation['episode_step']) == 1
  rng = np.random.default_rng(0)
  step_types, steps = [], []
  for action in _random_program(env, rng, 19):
    timestep = env.step(action)
    assert timestep.reward == 0.0
    step_types.append(timestep.step_type)
    steps.append(int(timestep.observation['episode_step']))
  assert step_types == [dm_env.StepType.MID] * 18 + [dm_env.StepType.LAST]
  assert steps == list(range(2, 21))
  assert timestep.discount == 0.0
  assert int(timestep.observation['episode_length']) == 20
  assert len(env.program) == 19
  again = env.step(_paint(end=40, control=50))
  assert again.step_type == dm_env.StepType.FIRST
  assert env.program == [] and np.all(again.observation['canvas'] == 1.0)


def test_action_mask_describes_previous_action():
  env = LibMyPaint()
  first = env.reset()
  assert all(float(v) == 1.0 for v in first.observation['action_mask'].values())
  after_move = env.step(_move(_index(3, 3))).observation['action_mask']
  assert {k: float(v) for k, v in after_move.items()} == {
      k: float(k in ('end', 'flag')) for k in NOTEBOOK_KEYS
  }
  after_paint = env.step(_paint(end=_index(10, 10), control=_index(3, 10))).observation['action_mask']
  assert all(float(v) == 1.0 for v in after_paint.values())


def test_stats_and_program_record_the_episode():
  env = LibMyPaint()
  env.reset()
  actions = [
      _paint(_index(5, 5), _index(0, 5)),
      _paint(_index(10, 20), _index(5, 20)),
      _move(_index(25, 25)),
      _paint(_index(30, 30), _index(25, 30)),
      _move(_index(1, 1)),
  ]
  for action in actions:
    env.step(action)
  assert env.stats == {'strokes': 3, 'disjoint_strokes': 2}
  assert env.program == actions
  assert all(type(v) is int for a in env.program for v in a.values())  # pylint: disable=unidiomatic-typecheck


# --- painting --------------------------------------------------------------------------------------


def test_paint_step_follows_the_analytic_bezier_curve():
  env = LibMyPaint(use_pressure=True)
  env.reset()
  start, control, end = (6, 4), (4, 28), (26, 14)  # (row, col) on the 32 grid: a strongly bent curve
  env.step(_move(_index(*start)))
  # Lowest pressure: dry_brush scatters its dabs by up to 1.4 radii at full pressure, 0.14 here.
  canvas = env.step(_paint(end=_index(*end), control=_index(*control), size=1, pressure=0)).observation[
      'canvas'
  ]
  ink = _ink(canvas)
  to_pixel = lambda rc: (WIDTH * rc[0] / GRID, WIDTH * rc[1] / GRID)  # (y, x)
  curve = _bezier(to_pixel(start), to_pixel(control), to_pixel(end))  # [n, (y, x)]
  # Every inked pixel lies near the curve (pixel centres at +0.5; radius 2 plus dry_brush jitter).
  ys, xs = np.nonzero(ink > 0.05)
  assert len(ys) > 60
  centres = np.stack([ys + 0.5, xs + 0.5], axis=1)
  distance = np.min(np.linalg.norm(centres[:, None, :] - curve[None, ::10, :], axis=-1), axis=1)
  assert distance.max() < 6.0, distance.max()
  # ... and the curve is inked along its whole length (away from the pen-down point).
  for y, x in curve[100::100]:
    window = ink[max(int(y) - 2, 0) : int(y) + 3, max(int(x) - 2, 0) : int(x) + 3]
    assert window.max() > 0.3, (y, x)
  # The straight chord's middle is far from the curve and stays blank.
  mid_y, mid_x = (np.array(to_pixel(start)) + np.array(to_pixel(end))) / 2
  assert ink[int(mid_y) - 2 : int(mid_y) + 3, int(mid_x) - 2 : int(mid_x) + 3].max() < 0.02


def test_a_move_paints_nothing():
  env = LibMyPaint()
  blank = env.reset().observation['canvas']
  after_moves = blank
  for end in (_index(10, 10), _index(31, 0), _index(20, 25)):
    after_moves = env.step(_move(end)).observation['canvas']
  np.testing.assert_array_equal(after_moves, blank)
  painted = env.step(_paint(_index(5, 5), _index(20, 5))).observation['canvas']
  assert _ink(painted).max() > 0.3
  moved = env.step(_move(_index(30, 30))).observation['canvas']
  np.testing.assert_array_equal(moved, painted)


def test_the_stroke_starts_at_the_moved_pen_position():
  env = LibMyPaint()
  env.reset()
  env.step(_move(_index(20, 4)))  # pen to y = 40, x = 8
  action = _paint(end=_index(20, 28), control=_index(20, 16), size=1, pressure=0)
  ink = _ink(env.step(action).observation['canvas'])
  rows = np.nonzero(ink.max(axis=1) > 0.05)[0]
  cols = np.nonzero(ink.max(axis=0) > 0.05)[0]
  assert 34 <= rows.min() and rows.max() <= 46  # a horizontal line at y = 40 (not x = y)
  assert 4 <= cols.min() <= 10 and 54 <= cols.max() <= 60


def test_red_stroke_is_red():
  env = LibMyPaint()
  env.reset()
  canvas = env.step(_paint(_index(16, 30), _index(2, 16), rgb=(19, 0, 0))).observation['canvas']
  inked = _ink(canvas) > 0.2
  assert inked.sum() > 50
  red, green, blue = (canvas[..., c][inked].mean() for c in range(3))
  assert red > 0.9 and green < red - 0.4 and blue < red - 0.4


def test_stroke_colour_matches_the_requested_rgb():
  env = LibMyPaint()
  env.reset()
  rgb_index = (4, 12, 19)  # (0.21, 0.63, 1.0)
  canvas = env.step(_paint(_index(16, 28), _index(16, 16), size=4, rgb=rgb_index)).observation['canvas']
  expected = libmypaint.COLOR_VALUES[list(rgb_index)]
  # Where the dabs overlap most (the darkest pixels), the paint converges to the brush colour.
  darkest = _ink(canvas) >= np.quantile(_ink(canvas), 0.99)
  np.testing.assert_allclose(canvas[darkest].mean(axis=0), expected, atol=0.06)


def _ink_amount(**action_kwargs):
  env = LibMyPaint()
  env.reset()
  env.step(_move(_index(8, 4)))
  canvas = env.step(_paint(_index(24, 28), _index(4, 24), **action_kwargs)).observation['canvas']
  ink = _ink(canvas)
  return ink.sum(), (ink > 0.1).sum()


def test_larger_size_and_higher_pressure_paint_more():
  small_total, small_area = _ink_amount(size=1, pressure=9)
  large_total, large_area = _ink_amount(size=4, pressure=9)
  assert large_area > 2 * small_area and large_total > 2 * small_total
  light_total, light_area = _ink_amount(size=3, pressure=0)
  heavy_total, heavy_area = _ink_amount(size=3, pressure=9)
  assert heavy_total > 1.5 * light_total and heavy_area > light_area


def test_canvas_stays_in_unit_range_and_reset_clears():
  env = LibMyPaint(episode_length=12)
  rng = np.random.default_rng(3)
  for _ in range(3):
    timestep = _run(env, _random_program(env, rng, 11))
    canvas = timestep.observation['canvas']
    assert canvas.dtype == np.float32 and canvas.shape == (64, 64, 3)
    assert canvas.min() >= 0.0 and canvas.max() <= 1.0
    assert canvas.min() < 0.9  # something was painted
  np.testing.assert_array_equal(env.reset().observation['canvas'], np.ones((64, 64, 3), np.float32))


def test_transparent_background_gives_alpha_and_clears_to_zero():
  env = LibMyPaint(background='transparent', use_alpha=True, canvas_width=64)
  blank = env.reset().observation['canvas']
  np.testing.assert_array_equal(blank, np.zeros((64, 64, 4), np.float32))
  canvas = env.step(_paint(_index(16, 30), _index(2, 16), rgb=(0, 19, 0))).observation['canvas']
  alpha = canvas[..., 3]
  assert alpha.max() > 0.9
  painted = alpha > 0.2
  # Green, un-premultiplied.
  assert canvas[..., 1][painted].min() > 0.9 and canvas[..., 0][painted].max() < 0.1
  np.testing.assert_array_equal(env.reset().observation['canvas'], blank)


def _reference_canvas(raw, scale, channels):
  """Independent read-back: area-sum premultiplied fix15 RGBA, un-premultiply, alpha to [0, 1]."""
  raw = _block_mean(raw.astype(np.float64), scale)
  alpha = raw[..., 3:]
  rgb = np.where(alpha > 0, raw[..., :3] / np.where(alpha > 0, alpha, 1.0), 0.0)
  return np.concatenate([np.minimum(rgb, 1.0), alpha / 2**15], axis=-1)[..., :channels]


@pytest.mark.parametrize('background,use_alpha', [('white', False), ('transparent', True)])
@pytest.mark.parametrize('width,render_width', [(64, None), (96, None), (48, 96), (32, 128)])
def test_canvas_is_the_unpremultiplied_fix15_surface(background, use_alpha, width, render_width):
  env = LibMyPaint(
      background=background,
      use_alpha=use_alpha,
      canvas_width=width,
      render_width=render_width,
      grid_width=16,
      episode_length=12,
  )
  canvas = _run(env, _random_program(env, np.random.default_rng(width), 11)).observation['canvas']
  full = render_width or width
  raw = np.empty((full, full, 4), np.uint16)
  env._painter.read_raw_into(raw)  # pylint: disable=protected-access
  assert (raw[..., 3] < 2**15).any() if background == 'transparent' else (raw[..., 3] == 2**15).all()
  assert canvas.min() < 0.5 if background == 'white' else canvas.max() > 0.5  # something painted
  np.testing.assert_allclose(canvas, _reference_canvas(raw, full // width, canvas.shape[-1]), atol=1e-5)


def test_grey_canvas_is_one_channel_of_black_ink():
  env = LibMyPaint(use_color=False)
  env.reset()
  action = {'control': _index(2, 16), 'end': _index(16, 30), 'flag': 1, 'pressure': 9, 'size': 3}
  canvas = env.step(action).observation['canvas']
  assert canvas.shape == (64, 64, 1)
  assert canvas.min() < 0.2 and canvas.max() == 1.0


# --- resolution: render width and replay ------------------------------------------------------------


def test_render_width_is_an_area_average_of_the_full_resolution_render():
  rng = np.random.default_rng(11)
  small = LibMyPaint(canvas_width=32, grid_width=16, render_width=128, episode_length=8)
  program = _random_program(small, rng, 7)
  observed = _run(small, program).observation['canvas']
  assert observed.shape == (32, 32, 3)
  full = LibMyPaint(
      canvas_width=128, grid_width=16, episode_length=8, brush_sizes=[4 * s for s in (1, 2, 4, 8, 12, 24)]
  )
  rendered = _run(full, program).observation['canvas']
  assert rendered.min() < 0.5
  np.testing.assert_allclose(observed, _block_mean(rendered, 4), atol=1e-5)


def test_replay_at_scale_1_reproduces_the_episode_exactly():
  env = LibMyPaint(episode_length=10)
  rng = np.random.default_rng(5)
  program = _random_program(env, rng, 9)
  canvas = _run(env, program).observation['canvas']
  _run(env, _random_program(env, rng, 9))  # other episodes in between do not matter
  np.testing.assert_array_equal(replay(program, scale=1, episode_length=10), canvas)
  np.testing.assert_array_equal(_run(env, program).observation['canvas'], canvas)


def test_replay_at_8x_matches_a_downsample_of_itself():
  # Moderate pressure: dry_brush's random dab offsets differ between resolutions, so only the
  # picture (not each dab) can match; at full pressure the scatter is several radii.
  program = [
      _move(_index(4, 4)),
      _paint(_index(24, 26), _index(4, 26), size=1, pressure=3),
      _paint(_index(28, 6), _index(28, 24), size=2, pressure=3, rgb=(19, 0, 5)),
      _move(_index(16, 2)),
      _paint(_index(8, 16), _index(18, 16), size=0, pressure=3, rgb=(0, 10, 19)),
  ]
  env = LibMyPaint(episode_length=8)
  canvas = _run(env, program).observation['canvas']
  big = replay(program, scale=8, episode_length=8)
  assert big.shape == (512, 512, 3)
  small = _block_mean(big, 8)
  assert np.abs(small - canvas).mean() < 0.05
  assert np.corrcoef(_ink(small).ravel(), _ink(canvas).ravel())[0, 1] > 0.9
  assert 0.75 < _ink(small).sum() / _ink(canvas).sum() < 1.25


def test_environments_in_threads_paint_what_they_paint_alone():
  # stroke() releases the GIL inside libmypaint; painters must not share state.
  rng = np.random.default_rng(13)
  envs = [LibMyPaint(episode_length=10) for _ in range(2)]
  programs = [_random_program(envs[0], rng, 9) for _ in envs]
  alone = [_run(env, program).observation['canvas'] for env, program in zip(envs, programs)]
  results = [None, None]

  def work(i):
    for _ in range(5):
      results[i] = _run(envs[i], programs[i]).observation['canvas']

  threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  for expected, got in zip(alone, results):
    np.testing.assert_array_equal(got, expected)


# --- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    'change,message',
    [
        (lambda a: a.pop('pressure'), "missing key 'pressure'.*\\[0, 9\\]"),
        (lambda a: a.update(end=1024), r"action\['end'\] = 1024 is outside \[0, 1023\]"),
        (lambda a: a.update(red=-1), r"action\['red'\] = -1 is outside \[0, 19\]"),
        (lambda a: a.update(size=2.0), r"action\['size'\] must be an integer in \[0, 5\]"),
        (lambda a: a.update(extra=1), r"unknown keys \['extra'\]"),
    ],
)
def test_invalid_action_raises_and_paints_nothing(change, message):
  env = LibMyPaint()
  env.reset()
  before = env.step(_paint(_index(5, 5), _index(1, 20))).observation
  action = _paint(_index(30, 30), _index(20, 5), size=5)
  change(action)
  with pytest.raises(ValueError, match=message):
    env.step(action)
  assert len(env.program) == 1 and env.stats['strokes'] == 1
  after = env.step(_move(0)).observation  # the canvas is as it was before the rejected action
  np.testing.assert_array_equal(after['canvas'], before['canvas'])
  assert int(after['episode_step']) == int(before['episode_step']) + 1


def test_numpy_integer_actions_are_accepted():
  env = LibMyPaint()
  env.reset()
  action = {k: np.int32(v) for k, v in _paint(_index(9, 9), _index(1, 9)).items()}
  action['end'] = np.array(_index(9, 9))
  assert env.step(action).step_type == dm_env.StepType.MID
  assert env.program[0]['end'] == _index(9, 9)


@pytest.mark.parametrize(
    'kwargs,message',
    [
        (dict(episode_length=1), 'episode_length'),
        (dict(canvas_width=0), 'canvas_width'),
        (dict(render_width=100), 'render_width'),
        (dict(brush_sizes=[]), 'brush_sizes'),
        (dict(background='black'), 'background'),
    ],
)
def test_invalid_constructor_arguments_raise(kwargs, message):
  with pytest.raises(ValueError, match=message):
    LibMyPaint(**kwargs)


# --- brushes -----------------------------------------------------------------------------------------


def test_missing_brush_directory_is_a_clear_error(tmp_path):
  missing = tmp_path / 'no_such_dir'
  with pytest.raises(FileNotFoundError) as error:
    LibMyPaint(brushes_basedir=str(missing))
  text = str(error.value)
  assert 'classic/dry_brush' in text and 'does not exist' in text
  assert str(missing / 'brushes' / 'classic' / 'dry_brush.myb') in text


def test_missing_brush_names_where_it_looked():
  with pytest.raises(FileNotFoundError, match='classic/no_such_brush.*/usr/share/mypaint-data/1.0/brushes'):
    LibMyPaint(brush_type='classic/no_such_brush')


def test_brushes_directory_from_environment_variable(tmp_path, monkeypatch):
  source = libmypaint.find_brush('classic/dry_brush')
  (tmp_path / 'brushes' / 'mine').mkdir(parents=True)
  shutil.copy(source, tmp_path / 'brushes' / 'mine' / 'brush.myb')
  monkeypatch.setenv(libmypaint.BRUSHES_DIR_ENV, str(tmp_path))
  assert libmypaint.find_brush('mine/brush') == os.path.join(str(tmp_path), 'brushes', 'mine', 'brush.myb')
  env = LibMyPaint(brush_type='mine/brush')
  canvas = env.reset().observation['canvas']
  assert canvas.shape == (64, 64, 3)
  with pytest.raises(FileNotFoundError, match=str(tmp_path)):
    LibMyPaint()  # classic/dry_brush is not in the overriding directory


def test_unparsable_brush_file_names_the_file(tmp_path):
  (tmp_path / 'brushes').mkdir()
  (tmp_path / 'brushes' / 'bad.myb').write_text('{"version": 3, "settings": 7')
  with pytest.raises(ValueError, match='bad.myb'):
    LibMyPaint(brush_type='bad', brushes_basedir=str(tmp_path))
