"""MujocoScenes: spec, episode conventions, and what real MuJoCo renders for each action."""

import os
import subprocess
import sys

import dm_env
import numpy as np
import pytest

from environments import mujoco_scenes  # before mujoco: it selects the headless EGL backend
from environments.mujoco_scenes import ADD
from environments.mujoco_scenes import MODIFY
from environments.mujoco_scenes import MujocoScenes
from environments.mujoco_scenes import SceneObject
from environments.mujoco_scenes import SKIP

mujoco = mujoco_scenes.mujoco

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def env():
  environment = MujocoScenes(episode_length=20, image_width=64)
  yield environment
  environment.close()


def _action(mode=ADD, **values):
  """An action dict: type 0, location 0, size 1, black, unless `values` say otherwise."""
  action = dict(type=0, location=0, size=1, red=0, green=0, blue=0, mode=mode)
  action.update(values)
  return action


def _project(env, point):
  """Pinhole projection of a world point to continuous (row, col), from MuJoCo's camera pose."""
  model, data = env.renderer.model, env.renderer.data
  cam = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, 'view')
  rotation = data.cam_xmat[cam].reshape(3, 3)  # columns: camera x (right), y (up), z (backward)
  p = rotation.T @ (np.asarray(point) - data.cam_xpos[cam])
  width = env.image_width
  focal = (width / 2) / np.tan(np.radians(model.cam_fovy[cam]) / 2)
  return width / 2 - focal * p[1] / -p[2], width / 2 + focal * p[0] / -p[2]


def _object_center(location, type_index, size_index):
  x, y = mujoco_scenes.cell_center(location)
  return x, y, mujoco_scenes.geom_size(type_index, size_index)[1]


def _render_with_xml(objects, width=64):
  """Independent reference: compile the scene with `objects` from MJCF, render it (uint8)."""
  model = mujoco.MjModel.from_xml_string(mujoco_scenes.scene_xml(objects, width))
  data = mujoco.MjData(model)
  mujoco.mj_forward(model, data)
  with mujoco.Renderer(model, width, width) as renderer:
    renderer.update_scene(data, camera='view')
    return renderer.render().copy()


def _assert_same_pixels(canvas, image_uint8):
  np.testing.assert_array_equal(np.rint(canvas * 255.0).astype(np.uint8), image_uint8)
  np.testing.assert_allclose(canvas, image_uint8 / 255.0, rtol=0, atol=1e-6)


def test_spec(env):
  spec = env.action_spec()
  assert list(spec) == ['type', 'location', 'size', 'red', 'green', 'blue', 'mode']
  assert [s.num_values for s in spec.values()] == [4, 256, 3, 4, 4, 4, 3]
  assert all(s.dtype == np.int32 for s in spec.values())
  obs_spec = env.observation_spec()
  assert list(obs_spec) == ['canvas', 'episode_step', 'episode_length', 'action_mask']
  assert obs_spec['canvas'].shape == (64, 64, 3) and obs_spec['canvas'].dtype == np.float32
  assert list(obs_spec['action_mask']) == list(spec)
  timestep = env.reset()
  obs = timestep.observation
  assert obs['canvas'].shape == (64, 64, 3) and obs['canvas'].dtype == np.float32
  assert 0.0 <= obs['canvas'].min() and obs['canvas'].max() <= 1.0
  assert obs['canvas'].std() > 0.0  # the floor is lit, not a blank frame
  for key, value_spec in obs_spec['action_mask'].items():
    value_spec.validate(obs['action_mask'][key])
  obs_spec['episode_step'].validate(obs['episode_step'])


def test_episode_conventions(env):
  timestep = env.reset()
  assert timestep.first() and int(timestep.observation['episode_step']) == 1
  assert all(float(v) == 1.0 for v in timestep.observation['action_mask'].values())
  steps = 0
  while not timestep.last():
    timestep = env.step(_action(location=steps, mode=ADD if steps < 3 else SKIP))
    steps += 1
    assert timestep.reward == 0.0
    assert int(timestep.observation['episode_step']) == steps + 1
  assert steps == 19 and int(timestep.observation['episode_length']) == 20
  assert len(env.objects) == 3 and len(env.program) == 19
  timestep = env.step(_action())  # after LAST: a reset, not an action
  assert timestep.step_type == dm_env.StepType.FIRST
  assert env.objects == [] and env.program == []


def test_step_before_reset_resets():
  with mujoco_scenes.SceneRenderer(1) as renderer:
    empty_floor = renderer.render()
  fresh = MujocoScenes(episode_length=3)
  try:
    timestep = fresh.step(_action(red=3))
    assert timestep.first() and fresh.objects == [] and fresh.program == []
    np.testing.assert_array_equal(np.rint(timestep.observation['canvas'] * 255), empty_floor)
  finally:
    fresh.close()


def test_red_object_appears_at_its_projected_cell_only(env):
  empty = env.reset().observation['canvas']
  location = 5 * 16 + 4  # row 5, col 4: left of centre, far half
  canvas = env.step(_action(type=0, location=location, size=2, red=3)).observation['canvas']
  row, col = _project(env, _object_center(location, 0, 2))
  r, c = int(row), int(col)
  red, green, blue = canvas[r, c]
  assert red > 0.5 and red > 3 * green and red > 3 * blue, canvas[r, c]
  changed = np.abs(canvas - empty).max(axis=-1) > 0.02
  rows, cols = np.nonzero(changed)
  assert abs(rows.mean() - row) < 1.5 and abs(cols.mean() - col) < 1.5
  # A 0.17 m sphere covers ~5 pixels here; everything 10 pixels away is exactly as before.
  yy, xx = np.mgrid[:64, :64]
  far = np.hypot(yy + 0.5 - row, xx + 0.5 - col) > 10
  np.testing.assert_array_equal(canvas[far], empty[far])
  assert changed.sum() > 10


@pytest.mark.parametrize('location', [0, 15, 240, 255, 8 * 16 + 8])
def test_location_grid_convention(env, location):
  empty = env.reset().observation['canvas']
  canvas = env.step(_action(type=1, location=location, size=0, green=3)).observation['canvas']
  rows, cols = np.nonzero(np.abs(canvas - empty).max(axis=-1) > 0.02)
  row, col = _project(env, _object_center(location, 1, 0))
  assert abs(rows.mean() - row) < 1.5 and abs(cols.mean() - col) < 1.5
  grid_row, grid_col = divmod(location, 16)
  # Row 0 is the far edge (top of the image), col 0 the left edge.
  assert (row < 32) == (grid_row < 8) and (col < 32) == (grid_col < 8)


def test_sizes_grow_and_types_differ(env):
  empty = env.reset().observation['canvas']
  masks = {}
  for type_index in range(4):
    areas = []
    for size_index in range(3):
      env.reset()
      canvas = env.step(_action(type=type_index, location=8 * 16 + 7, size=size_index, blue=3)).observation[
          'canvas'
      ]
      masks[type_index, size_index] = np.abs(canvas - empty).max(axis=-1) > 0.02
      areas.append(int(masks[type_index, size_index].sum()))
    assert areas[0] < areas[1] < areas[2], (type_index, areas)
  for a in range(4):
    for b in range(a + 1, 4):
      differ = np.logical_xor(masks[a, 2], masks[b, 2]).sum()
      union = np.logical_or(masks[a, 2], masks[b, 2]).sum()
      assert differ > 0.2 * union, (mujoco_scenes.TYPE_NAMES[a], mujoco_scenes.TYPE_NAMES[b])

  # The capsule lies along x: wider than tall on screen; the upright can is taller than wide.
  def extent(mask):
    rows, cols = np.nonzero(mask)
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1

  height, width = extent(masks[3, 2])
  assert width > 1.5 * height
  height, width = extent(masks[2, 2])
  assert height > width


@pytest.mark.parametrize('channel', [0, 1, 2])
def test_colour_bins(env, channel):
  location = 8 * 16 + 8
  row, col = (int(v) for v in _project(env, _object_center(location, 0, 2)))
  values = []
  for level in range(4):
    env.reset()
    colour = [0, 0, 0]
    colour[channel] = level
    canvas = env.step(
        _action(location=location, size=2, red=colour[0], green=colour[1], blue=colour[2])
    ).observation['canvas']
    pixel = canvas[row, col]
    values.append(pixel[channel])
    others = np.delete(pixel, channel)
    assert others.max() < 0.02, pixel  # the other channels stay dark
  assert values[0] < values[1] < values[2] < values[3], values


def test_skip_changes_nothing(env):
  env.reset()
  before = env.step(_action(type=2, location=100, size=1, red=2)).observation['canvas']
  timestep = env.step(_action(type=0, location=30, size=2, green=3, mode=SKIP))
  np.testing.assert_array_equal(timestep.observation['canvas'], before)
  mask = timestep.observation['action_mask']
  assert {k: float(v) for k, v in mask.items()} == {
      'type': 0.0,
      'location': 0.0,
      'size': 0.0,
      'red': 0.0,
      'green': 0.0,
      'blue': 0.0,
      'mode': 1.0,
  }
  assert len(env.objects) == 1 and len(env.program) == 2


def test_modify_changes_the_last_object_only(env):
  env.reset()
  first = _action(type=1, location=2 * 16 + 3, size=2, red=3)
  second = _action(type=0, location=12 * 16 + 12, size=1, blue=3)
  env.step(first)
  before = env.step(second).observation['canvas']
  modified = _action(type=3, location=6 * 16 + 9, size=2, green=3, mode=MODIFY)
  timestep = env.step(modified)
  canvas = timestep.observation['canvas']
  assert all(float(v) == 1.0 for v in timestep.observation['action_mask'].values())
  as_objects = [SceneObject(**{k: a[k] for k in SceneObject._fields}) for a in (first, modified)]
  assert env.objects == as_objects
  _assert_same_pixels(canvas, _render_with_xml(as_objects))
  assert np.abs(canvas - before).max() > 0.5
  # The first object's pixels are untouched.
  row, col = (int(v) for v in _project(env, _object_center(first['location'], 1, 2)))
  np.testing.assert_array_equal(
      canvas[row - 2 : row + 3, col - 2 : col + 3], before[row - 2 : row + 3, col - 2 : col + 3]
  )


def test_modify_with_no_object_is_a_no_op(env):
  empty = env.reset().observation['canvas']
  timestep = env.step(_action(type=1, location=40, size=2, red=3, mode=MODIFY))
  np.testing.assert_array_equal(timestep.observation['canvas'], empty)
  assert float(timestep.observation['action_mask']['location']) == 0.0
  assert float(timestep.observation['action_mask']['mode']) == 1.0
  assert env.objects == []


def test_in_place_slots_match_a_model_compiled_from_xml(env):
  rng = np.random.default_rng(3)
  env.reset()
  timestep = None
  for _ in range(8):
    timestep = env.step({k: int(rng.integers(s.num_values)) for k, s in env.action_spec().items()})
  assert env.objects, 'seed 3 adds objects'
  _assert_same_pixels(timestep.observation['canvas'], _render_with_xml(env.objects))


def test_same_program_same_image_and_replay(env):
  rng = np.random.default_rng(7)
  env.reset()
  timestep = None
  for _ in range(19):
    timestep = env.step({k: int(rng.integers(s.num_values)) for k, s in env.action_spec().items()})
  canvas = timestep.observation['canvas']
  np.testing.assert_array_equal(mujoco_scenes.replay(env.program, image_width=64), canvas)
  big = mujoco_scenes.replay(env.program, image_width=256)
  assert big.shape == (256, 256, 3) and big.dtype == np.float32
  # The 256² render, averaged over 4x4 blocks, is the 64² picture up to edge anti-aliasing.
  small = big.reshape(64, 4, 64, 4, 3).mean(axis=(1, 3))
  assert np.abs(small - canvas).mean() < 0.01
  assert np.abs(small - canvas).max() < 0.5


@pytest.mark.parametrize(
    'action, message',
    [
        (_action(location=256), r"action\['location'\] = 256 is outside \[0, 255\]"),
        (_action(type=-1), r"action\['type'\] = -1 is outside \[0, 3\]"),
        (_action(mode=3), r"action\['mode'\] = 3 is outside \[0, 2\]"),
        (_action(red=1.5), r"action\['red'\] must be an integer in \[0, 3\]"),
        (_action(size=True), r"action\['size'\] must be an integer in \[0, 2\]"),
        (_action(blue=np.array([1])), r"action\['blue'\] must be an integer in \[0, 3\]"),
        ({k: v for k, v in _action().items() if k != 'size'}, r"missing key 'size'.*\[0, 2\]"),
        (dict(_action(), colour=1), r"unknown keys \['colour'\]"),
        ([1, 2, 3], r'action must be a mapping'),
    ],
)
def test_invalid_actions_raise(env, action, message):
  env.reset()
  with pytest.raises(ValueError, match=message):
    env.step(action)


def test_numpy_integer_actions_are_accepted(env):
  env.reset()
  timestep = env.step({k: np.int32(1) for k in env.action_spec()})
  assert env.objects == [] and float(timestep.observation['action_mask']['mode']) == 1.0


@pytest.mark.parametrize(
    'kwargs, message',
    [
        (dict(episode_length=1), 'episode_length'),
        (dict(image_width=0), 'image_width'),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
  with pytest.raises(ValueError, match=message):
    MujocoScenes(**kwargs)


def test_missing_gl_backend_names_the_packages():
  # PyOpenGL refuses EGL when PYOPENGL_PLATFORM names another platform: the same failure as a
  # machine without libEGL, reached at context creation.
  code = (
      'from environments import mujoco_scenes\n'
      'try:\n  mujoco_scenes.MujocoScenes()\n'
      'except RuntimeError as e:\n  print(e)\n'
  )
  environ = dict(os.environ, MUJOCO_GL='egl', PYOPENGL_PLATFORM='osmesa', PYTHONPATH=ROOT)
  result = subprocess.run(
      [sys.executable, '-c', code], env=environ, capture_output=True, text=True, timeout=120, check=True
  )
  assert 'libegl1 libegl-mesa0 libgl1-mesa-dri' in result.stdout
  assert "MUJOCO_GL='egl'" in result.stdout
