"""ConditionalTargets: a dm_env wrapper that gives each episode a target image and a noise sample.

The renderers stay pure (a canvas and nothing else); this wrapper adds to every observation
  target        float32 [H, W, C] in [0, 1]  the image to reconstruct, drawn anew for each episode
                                             (only when conditional)
  noise_sample  float32 [10] ~ N(0, 1)       fixed for the episode; DeepMind's agent consumes it
                                             (always, so conditional and unconditional agents match)
Targets are drawn uniformly with replacement, or in order (`sequential=True`, for evaluating on a
held-out split exactly once per image). The same `seed` gives the same targets and noise.

Usage:
  env = ConditionalTargets(LibMyPaint(use_color=False), load_images('mnist', 'test'), seed=1)
  spec = observation_spec(renderer_spec, target_shape=(64, 64, 1))   # the same, without images
  timestep = env.reset()       # timestep.observation['target'], ['noise_sample'], ['canvas'], ...
  env.target_index             # which image this episode reconstructs
"""

import collections

import dm_env
from dm_env import specs
import numpy as np

NOISE_DIM = 10


def observation_spec(base_spec, target_shape=None) -> collections.OrderedDict:
  """The wrapper's observation spec over a renderer's `base_spec`.

  target_shape: [H, W, C] of the targets (conditional; the canvas's shape), None when unconditional.
  Without images, so a run's specs can be known without loading its dataset (spiral_tf/components.py).
  """
  for key in ('target', 'noise_sample'):
    if key in base_spec:
      raise ValueError(f'the wrapped environment already has an observation {key!r}')
  spec = collections.OrderedDict(base_spec)
  if target_shape is not None:
    spec['target'] = specs.Array(tuple(int(d) for d in target_shape), np.float32, 'target')
  spec['noise_sample'] = specs.Array((NOISE_DIM,), np.float32, 'noise_sample')
  return spec


class ConditionalTargets(dm_env.Environment):
  """Adds 'target' (if conditional) and 'noise_sample' to a dm_env's observations (see module doc)."""

  def __init__(self, env, images_uint8=None, conditional=True, seed=None, sequential=False):
    self._env = env
    self._conditional = bool(conditional)
    self._sequential = bool(sequential)
    self._rng = np.random.default_rng(seed)
    self._episodes = 0
    self.target_index = None
    self._target = None
    self._noise = None
    base_spec = env.observation_spec()
    observation_spec(base_spec)  # Refuses a renderer that already has the wrapper's keys.
    self._images = self._checked_images(images_uint8, base_spec) if self._conditional else None
    self._observation_spec = observation_spec(
        base_spec, self._images.shape[1:] if self._conditional else None
    )

  # --- dm_env.Environment ---------------------------------------------------------------------

  def reset(self):
    self._new_episode()
    return self._augmented(self._env.reset())

  def step(self, action):
    timestep = self._env.step(action)
    if timestep.first() or self._noise is None:  # the wrapped env reset itself after LAST
      self._new_episode()
    return self._augmented(timestep)

  def observation_spec(self):
    return self._observation_spec

  def action_spec(self):
    return self._env.action_spec()

  def reward_spec(self):
    return self._env.reward_spec()

  def discount_spec(self):
    return self._env.discount_spec()

  def close(self):
    self._env.close()

  # --- extras ---------------------------------------------------------------------------------

  @property
  def environment(self):
    """The wrapped environment."""
    return self._env

  @property
  def target(self):
    """float32 [H, W, C] target of the current episode (None before reset or if unconditional)."""
    return self._target

  def __getattr__(self, name):
    # Everything else (program, stats, canvas_width, ...) is the wrapped environment's.
    if name.startswith('_'):
      raise AttributeError(name)
    return getattr(self._env, name)

  # --- internals ------------------------------------------------------------------------------

  @staticmethod
  def _checked_images(images, base_spec):
    if images is None:
      raise ValueError('ConditionalTargets(conditional=True) needs target images (uint8 [N, H, W, C])')
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or len(images) == 0:
      raise ValueError(
          f'target images must be a non-empty uint8 array [N, H, W, C], got ' f'{images.dtype} {images.shape}'
      )
    canvas = base_spec.get('canvas')
    if canvas is not None and tuple(canvas.shape) != images.shape[1:]:
      raise ValueError(
          f'target images are {images.shape[1:]} but the canvas is {tuple(canvas.shape)}; '
          f'load targets with the canvas size and channels (load_images(..., '
          f'channels={canvas.shape[-1]}))'
      )
    return images

  def _new_episode(self):
    if self._conditional:
      if self._sequential:
        self.target_index = self._episodes % len(self._images)
      else:
        self.target_index = int(self._rng.integers(len(self._images)))
      target = self._images[self.target_index].astype(np.float32) / 255.0
      target.setflags(write=False)  # shared by every observation of the episode
      self._target = target
    noise = self._rng.standard_normal(NOISE_DIM).astype(np.float32)
    noise.setflags(write=False)
    self._noise = noise
    self._episodes += 1

  def _augmented(self, timestep):
    observation = collections.OrderedDict(timestep.observation)
    if self._conditional:
      observation['target'] = self._target
    observation['noise_sample'] = self._noise
    return timestep._replace(observation=observation)
