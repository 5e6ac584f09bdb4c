"""Tests of the canvas-environment base: the episode contract both renderers inherit, on a fake renderer."""

import collections

import dm_env
from dm_env import specs
import numpy as np
import pytest

from environments import canvas


class _Counter(canvas.CanvasEnvironment):
  """A 'renderer' whose canvas is filled with the number of drawn actions; `skip` 1 has no effect."""

  def __init__(self, episode_length=4):
    spec = collections.OrderedDict(
        [
            ('value', specs.DiscreteArray(3, dtype=np.int32, name='value')),
            ('skip', specs.DiscreteArray(2, dtype=np.int32, name='skip')),
        ]
    )
    super().__init__(episode_length, spec, (2, 2, 1))
    self.drawn = 0
    self.starts = 0

  def _start_episode(self):
    self.drawn = 0
    self.starts += 1

  def _act(self, action):
    if action['skip']:
      return self._mask_of(('skip',))
    self.drawn += 1
    return self._full_mask

  def _canvas(self):
    return np.full(self._canvas_shape, self.drawn / 10, np.float32)


def _action(value=1, skip=0):
  return {'value': value, 'skip': skip}


def test_episode_of_length_4_has_3_actions_then_a_step_resets():
  env = _Counter(episode_length=4)
  first = env.step(_action())  # before any reset: a reset, the action ignored
  assert first.first() and env.starts == 1 and env.program == []
  assert int(first.observation['episode_step']) == 1 and int(first.observation['episode_length']) == 4
  assert all(float(v) == 1.0 for v in first.observation['action_mask'].values())
  steps = [env.step(_action(value=i)) for i in range(3)]
  assert [t.step_type for t in steps] == [dm_env.StepType.MID] * 2 + [dm_env.StepType.LAST]
  assert [int(t.observation['episode_step']) for t in steps] == [2, 3, 4]
  assert [t.reward for t in steps] == [0.0] * 3 and steps[-1].discount == 0.0
  assert env.program == [_action(value=i) for i in range(3)]
  again = env.step(_action())  # after LAST: a reset, not an action
  assert again.first() and env.starts == 2 and env.program == [] and env.drawn == 0


def test_observation_matches_the_spec_and_the_mask_follows_the_action():
  env = _Counter()
  env.reset()
  timestep = env.step(_action(skip=1))
  spec = env.observation_spec()
  assert list(spec['action_mask']) == ['value', 'skip']
  assert timestep.observation['canvas'].shape == spec['canvas'].shape == (2, 2, 1)
  assert {k: float(v) for k, v in timestep.observation['action_mask'].items()} == {'value': 0, 'skip': 1}


def test_numpy_and_zero_d_integers_are_accepted_as_python_ints():
  env = _Counter()
  env.reset()
  env.step({'value': np.int64(2), 'skip': np.array(0, np.int32)})
  assert env.program == [{'value': 2, 'skip': 0}]
  assert all(type(v) is int for v in env.program[0].values())  # pylint: disable=unidiomatic-typecheck


@pytest.mark.parametrize(
    'action,message',
    [
        (_action(value=3), r"action\['value'\] = 3 is outside \[0, 2\]"),
        (_action(value=-1), r"action\['value'\] = -1 is outside \[0, 2\]"),
        (_action(value=True), r"action\['value'\] must be an integer in \[0, 2\]"),
        (_action(value=1.0), r"action\['value'\] must be an integer in \[0, 2\]"),
        (_action(skip=np.array([0])), r"action\['skip'\] must be an integer in \[0, 1\]"),
        ({'value': 1}, r"missing key 'skip' \(an integer in \[0, 1\]\)"),
        (dict(_action(), extra=0), r"unknown keys \['extra'\]; this environment takes \['value', 'skip'\]"),
        ({'value': 1, 'skp': 0}, r"unknown keys \['skp'\]"),  # a misspelt key: named, not just 'missing'
        ((1, 0), r"action must be a mapping with keys \['value', 'skip'\], got tuple"),
    ],
)
def test_invalid_action_names_the_key_and_range_and_changes_nothing(action, message):
  env = _Counter()
  env.reset()
  env.step(_action())
  with pytest.raises(ValueError, match=message):
    env.step(action)
  assert env.program == [_action()] and env.drawn == 1
  assert int(env.step(_action()).observation['episode_step']) == 3  # the rejected action did not count


@pytest.mark.parametrize('episode_length', [1, 0, 2.0, '20'])
def test_episode_length_below_2_or_not_an_integer_raises(episode_length):
  with pytest.raises(ValueError, match='episode_length must be an integer >= 2'):
    _Counter(episode_length=episode_length)
