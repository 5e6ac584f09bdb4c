"""The observation both renderers share, as one spec: a canvas and what the agent needs to read it.

  canvas          float32 [W, W, C] in [0, 1]  the current picture
  episode_step    int32 []                     1 after reset(), +1 per step
  episode_length  int32 []                     the observation count of an episode (LAST at this step)
  action_mask     {k: float32 []}              per sub-action k of the previous action, 1 if it had an
                                               effect (a pen move ignores `control`, `size`, ...), else 0

The spec is a function of the canvas shape and the action keys only, so a run's specs can be known
without building a renderer (spiral_tf/components.py `environment_specs`).

Usage:
  spec = observation_spec((64, 64, 1), action_spec.keys())
"""
import collections
from typing import Iterable

from dm_env import specs
import numpy as np


def observation_spec(canvas_shape: tuple, action_keys: Iterable[str]) -> collections.OrderedDict:
  """The renderers' observation spec (module docstring), `action_mask` in the order of `action_keys`."""
  mask = collections.OrderedDict(
      (k, specs.Array((), np.float32, name=f'action_mask_{k}')) for k in action_keys)
  return collections.OrderedDict([
      ('canvas', specs.Array(tuple(canvas_shape), np.float32, name='canvas')),
      ('episode_step', specs.Array((), np.int32, name='episode_step')),
      ('episode_length', specs.Array((), np.int32, name='episode_length')),
      ('action_mask', mask),
  ])
