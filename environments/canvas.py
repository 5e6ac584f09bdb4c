"""What both renderers share: the observation spec and the episode bookkeeping of a canvas environment.

The observation, one spec for both renderers:

  canvas          float32 [W, W, C] in [0, 1]  the current picture
  episode_step    int32 []                     1 after reset(), +1 per step
  episode_length  int32 []                     the observation count of an episode (LAST at this step)
  action_mask     {k: float32 []}              per sub-action k of the previous action, 1 if it had an
                                               effect (a pen move ignores `control`, `size`, ...), else 0

The spec is a function of the canvas shape and the action keys only, so a run's specs can be known
without building a renderer (spiral_tf/components.py `environment_specs`).

`CanvasEnvironment` keeps the episode contract (its docstring); a renderer subclasses it and only
renders.

Usage:
  spec = observation_spec((64, 64, 1), action_spec.keys())
"""

import abc
import collections
from typing import Iterable, Mapping

import dm_env
from dm_env import specs
import numpy as np


def observation_spec(canvas_shape: tuple, action_keys: Iterable[str]) -> collections.OrderedDict:
  """The renderers' observation spec (module docstring), `action_mask` in the order of `action_keys`."""
  mask = collections.OrderedDict(
      (k, specs.Array((), np.float32, name=f'action_mask_{k}')) for k in action_keys
  )
  return collections.OrderedDict(
      [
          ('canvas', specs.Array(tuple(canvas_shape), np.float32, name='canvas')),
          ('episode_step', specs.Array((), np.int32, name='episode_step')),
          ('episode_length', specs.Array((), np.int32, name='episode_length')),
          ('action_mask', mask),
      ]
  )


def _scalar(value, dtype):
  array = np.array(value, dtype=dtype)
  array.setflags(write=False)  # shared between observations
  return array


class CanvasEnvironment(dm_env.Environment, abc.ABC):
  """A dm_env.Environment whose actions draw on a canvas; the subclass renders, this class keeps the contract.

  The contract, the same for every renderer:
    * reset() returns FIRST with episode_step 1 and an all-ones action_mask, and empties `program`.
    * Each step() adds 1 to episode_step; the step at which episode_step reaches episode_length is LAST
      (so episode_length 20 gives 19 actions). The reward is always 0, the discount 1 (0 at LAST).
    * step() before the first reset(), and step() after LAST, resets: it returns FIRST and ignores the
      action (dm_env's convention).
    * An action is a mapping with exactly the keys of action_spec(), each an integer in
      [0, num_values - 1] (Python or NumPy, a 0-d array too; not a bool). Anything else raises ValueError
      naming the key and its range, before the renderer sees it: the canvas, `program` and episode_step
      stay as they were.
    * `program` lists the episode's accepted actions as {key: int} in spec order (replayable).

  A subclass calls `__init__(episode_length, action_spec, canvas_shape)` and implements
  `_start_episode()` (clear the picture), `_act(action)` (draw one validated action, return its
  action_mask, e.g. `self._mask_of(keys that had an effect)`) and `_canvas()` (the picture now).
  """

  def __init__(
      self, episode_length: int, action_spec: Mapping[str, specs.DiscreteArray], canvas_shape: tuple
  ):
    if not isinstance(episode_length, (int, np.integer)) or episode_length < 2:
      raise ValueError(
          f'episode_length must be an integer >= 2 (it gives episode_length - 1 '
          f'actions), got {episode_length!r}'
      )
    self._episode_length = int(episode_length)
    self._action_spec = action_spec
    self._canvas_shape = tuple(canvas_shape)
    self._limits = [(key, s.num_values) for key, s in action_spec.items()]
    # Read-only scalars built once: an observation shares them instead of allocating its own.
    self._steps = [_scalar(i, np.int32) for i in range(self._episode_length + 1)]
    self._length = _scalar(self._episode_length, np.int32)
    self._one, self._zero = _scalar(1.0, np.float32), _scalar(0.0, np.float32)
    self._full_mask = self._mask_of(action_spec)
    self._prev_step_type = None
    self._episode_step = 0
    self.program = []

  # --- the renderer's part --------------------------------------------------------------------

  @abc.abstractmethod
  def _start_episode(self):
    """Clears the picture and the renderer's per-episode state."""

  @abc.abstractmethod
  def _act(self, action: dict) -> Mapping[str, np.ndarray]:
    """Draws one validated action ({key: int}); returns its action_mask."""

  @abc.abstractmethod
  def _canvas(self) -> np.ndarray:
    """The current picture, a new float32 array of `canvas_shape` in [0, 1]."""

  # --- dm_env.Environment ---------------------------------------------------------------------

  def action_spec(self):
    return self._action_spec

  def observation_spec(self):
    return observation_spec(self._canvas_shape, self._action_spec)

  def reset(self):
    self._start_episode()
    self.program = []
    self._episode_step = 1
    self._prev_step_type = dm_env.StepType.FIRST
    return dm_env.restart(self._observation(self._full_mask))

  def step(self, action):
    """Executes one action; the first call, and any call after LAST, resets instead."""
    if self._prev_step_type is None or self._prev_step_type == dm_env.StepType.LAST:
      return self.reset()
    action = self._validated(action)
    mask = self._act(action)
    self.program.append(action)
    self._episode_step += 1
    observation = self._observation(mask)
    if self._episode_step >= self._episode_length:
      self._prev_step_type = dm_env.StepType.LAST
      return dm_env.termination(0.0, observation)
    self._prev_step_type = dm_env.StepType.MID
    return dm_env.transition(0.0, observation)

  # --- for subclasses -------------------------------------------------------------------------

  def _mask_of(self, effective_keys: Iterable[str]) -> collections.OrderedDict:
    """An action_mask in spec order: 1 for the keys in `effective_keys`, 0 for the others."""
    effective = set(effective_keys)
    return collections.OrderedDict(
        (k, self._one if k in effective else self._zero) for k in self._action_spec
    )

  # --- internals ------------------------------------------------------------------------------

  def _validated(self, action):
    """Returns {key: int} in spec order, or raises ValueError naming the key and its range."""
    try:
      keys = action.keys()
    except AttributeError:
      raise ValueError(
          f'action must be a mapping with keys {list(self._action_spec)}, ' f'got {type(action).__name__}'
      ) from None
    # Every step comes here: the set arithmetic runs only when the key count already says something is off.
    if len(keys) != len(self._limits) and self._unknown_keys(keys):
      raise ValueError(self._unknown_keys(keys))
    out = {}
    for key, num_values in self._limits:
      try:
        value = action[key]
      except KeyError:
        # A renamed key: the unknown name says more than the missing one.
        raise ValueError(
            self._unknown_keys(keys)
            or f'action is missing key {key!r} (an integer in ' f'[0, {num_values - 1}])'
        ) from None
      if type(value) is not int:  # pylint: disable=unidiomatic-typecheck  # the common case, fast
        try:
          if isinstance(value, (bool, np.bool_)) or np.ndim(value) != 0:
            raise TypeError
          value = int(value.__index__())
        except (TypeError, AttributeError):
          raise ValueError(
              f'action[{key!r}] must be an integer in [0, {num_values - 1}], got ' f'{value!r}'
          ) from None
      if not 0 <= value < num_values:
        raise ValueError(f'action[{key!r}] = {value} is outside [0, {num_values - 1}]')
      out[key] = value
    return out

  def _unknown_keys(self, keys):
    """The error message for keys outside the spec, or '' when there are none."""
    unknown = sorted(set(keys) - set(self._action_spec), key=str)
    if not unknown:
      return ''
    return f'action has unknown keys {unknown}; this environment takes {list(self._action_spec)}'

  def _observation(self, mask):
    return collections.OrderedDict(
        [
            ('canvas', self._canvas()),
            ('episode_step', self._steps[self._episode_step]),
            ('episode_length', self._length),
            ('action_mask', collections.OrderedDict(mask)),
        ]
    )
