"""Tests of ConditionalTargets around the real libmypaint painter."""

import dm_env
import numpy as np
import pytest

from environments import targets
from environments.libmypaint import LibMyPaint

LENGTH = 3


def _images(n, channels=1):
  # Image i is filled with the value i, so a target tells which image it came from.
  return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 64, 64, channels)).copy()


def _env(channels=1):
  return LibMyPaint(episode_length=LENGTH, grid_width=8, use_color=channels == 3)


def _action(env):
  return {k: 0 for k in env.action_spec()}


def test_specs():
  env = targets.ConditionalTargets(_env(), _images(5), seed=0)
  spec = env.observation_spec()
  base = _env().observation_spec()
  assert list(spec) == list(base) + ['target', 'noise_sample']
  assert spec['target'].shape == (64, 64, 1) and spec['target'].dtype == np.float32
  assert spec['noise_sample'].shape == (10,) and spec['noise_sample'].dtype == np.float32
  assert env.action_spec() == _env().action_spec()
  timestep = env.reset()
  for key, array_spec in spec.items():
    if key != 'action_mask':
      array_spec.validate(timestep.observation[key])
  unconditional = targets.ConditionalTargets(_env(), conditional=False, seed=0)
  assert 'target' not in unconditional.observation_spec()
  assert 'target' not in unconditional.reset().observation
  assert unconditional.reset().observation['noise_sample'].shape == (10,)


def test_target_and_noise_are_fixed_within_an_episode_and_redrawn_for_the_next():
  images = _images(200)
  env = targets.ConditionalTargets(_env(), images, seed=1)
  seen, noises = [], []
  timestep = env.reset()
  for _ in range(12):  # 12 episodes, through the wrapped env's own reset after LAST
    index = env.target_index
    np.testing.assert_array_equal(timestep.observation['target'], images[index] / np.float32(255))
    noise = timestep.observation['noise_sample']
    steps = 1
    while not timestep.last():
      timestep = env.step(_action(env))
      steps += 1
      np.testing.assert_array_equal(timestep.observation['target'], images[index] / np.float32(255))
      np.testing.assert_array_equal(timestep.observation['noise_sample'], noise)
      assert timestep.observation['canvas'].shape == (64, 64, 1)
    assert steps == LENGTH
    seen.append(index)
    noises.append(noise)
    timestep = env.step(_action(env))  # after LAST: a new episode
    assert timestep.step_type == dm_env.StepType.FIRST
  assert len(set(seen)) > 6  # drawn anew (200 images, 12 episodes)
  assert len({n.tobytes() for n in noises}) == 12
  samples = np.concatenate(
      [
          targets.ConditionalTargets(_env(), images, seed=s).reset().observation['noise_sample']
          for s in range(100)
      ]
  )
  assert abs(samples.mean()) < 0.1 and abs(samples.std() - 1) < 0.1  # N(0, 1)


def test_seeded_and_sequential():
  images = _images(50)
  runs = []
  for _ in range(2):
    env = targets.ConditionalTargets(_env(), images, seed=4)
    runs.append([(env.reset(), env.target_index)[1] for _ in range(5)])
  assert runs[0] == runs[1]
  env = targets.ConditionalTargets(_env(), images[:3], seed=4, sequential=True)
  assert [(env.reset(), env.target_index)[1] for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]


def test_colour_targets_and_passthrough():
  images = _images(4, channels=3)
  env = targets.ConditionalTargets(_env(channels=3), images, seed=0)
  timestep = env.reset()
  assert timestep.observation['target'].shape == (64, 64, 3)
  env.step(_action(env))
  assert len(env.program) == 1 and env.stats['strokes'] == 0  # the wrapped env's extras
  assert isinstance(env.environment, LibMyPaint)


def test_bad_images_are_named():
  with pytest.raises(ValueError, match=r'\(64, 64, 3\).*canvas is \(64, 64, 1\)'):
    targets.ConditionalTargets(_env(), _images(2, channels=3))
  with pytest.raises(ValueError, match='uint8'):
    targets.ConditionalTargets(_env(), _images(2).astype(np.float32))
  with pytest.raises(ValueError, match='needs target images'):
    targets.ConditionalTargets(_env(), None)
