"""Hand-built specs (as the environment contracts define them) and synthetic episodes for network tests.

The specs are written out here rather than taken from the environments, so the network tests depend on
the contract only.
"""

import collections

import dm_env
from dm_env import specs
import numpy as np
import tensorflow as tf

from spiral_tf.networks import agent as agent_lib

# Smaller than 'tiny', so that graphs (and XLA compiles) in tests stay small.
MICRO = agent_lib.AgentSize(
    torso_channels=8,
    torso_res_blocks=1,
    z_dim=32,
    lstm_size=32,
    head_channels=8,
    head_res_blocks=1,
    action_mlp=(16, 16),
    autoregressive_mlp=(16, 16),
)
MICRO_D = (8, 8, 16, 16)


def painter_specs(
    grid=32, width=64, channels=1, use_pressure=True, use_color=False, conditional=False, num_sizes=6
):
  """(action_spec, observation_spec) of LibMyPaint (+ ConditionalTargets) per the shared contract."""
  action = collections.OrderedDict()
  action['control'] = specs.DiscreteArray(grid * grid, name='control')
  action['end'] = specs.DiscreteArray(grid * grid, name='end')
  action['flag'] = specs.DiscreteArray(2, name='flag')
  if use_pressure:
    action['pressure'] = specs.DiscreteArray(10, name='pressure')
  action['size'] = specs.DiscreteArray(num_sizes, name='size')
  if use_color:
    for key in ('red', 'green', 'blue'):
      action[key] = specs.DiscreteArray(20, name=key)
  return action, _observation_spec(action, width, channels, conditional)


def scenes_specs(width=64, conditional=True):
  """(action_spec, observation_spec) of MujocoScenes (+ ConditionalTargets) per the shared contract."""
  action = collections.OrderedDict()
  for key, n in (
      ('type', 4),
      ('location', 256),
      ('size', 3),
      ('red', 4),
      ('green', 4),
      ('blue', 4),
      ('mode', 3),
  ):
    action[key] = specs.DiscreteArray(n, name=key)
  return action, _observation_spec(action, width, 3, conditional)


def _observation_spec(action, width, channels, conditional):
  observation = collections.OrderedDict(
      canvas=specs.Array((width, width, channels), np.float32, name='canvas'),
      episode_step=specs.Array((), np.int32, name='episode_step'),
      episode_length=specs.Array((), np.int32, name='episode_length'),
      action_mask=collections.OrderedDict((k, specs.Array((), np.float32, name=k)) for k in action),
  )
  if conditional:
    observation['target'] = specs.Array((width, width, channels), np.float32, name='target')
  observation['noise_sample'] = specs.Array((10,), np.float32, name='noise_sample')
  return observation


def random_observation(observation_spec, batch, rng, mask=None):
  """A batched observation with random canvases/targets/noise and the given (or all-ones) masks."""
  width, _, channels = observation_spec['canvas'].shape
  obs = {
      'canvas': rng.uniform(size=(batch, width, width, channels)).astype(np.float32),
      'action_mask': mask or {k: np.ones(batch, np.float32) for k in observation_spec['action_mask']},
      'noise_sample': rng.normal(size=(batch, 10)).astype(np.float32),
  }
  if 'target' in observation_spec:
    obs['target'] = rng.uniform(size=(batch, width, width, channels)).astype(np.float32)
  return obs


def painter_mask(flag, keys):
  """The contract's action_mask after an action with this flag [B]: all ones after a paint, else end/flag."""
  flag = np.asarray(flag)
  return {k: (np.ones_like(flag) if k in ('end', 'flag') else (flag == 1)).astype(np.float32) for k in keys}


def sampled_episodes(agent, action_spec, observation_spec, batch, length, seed=0):
  """Episodes acted by `agent` on random canvases, batch-major as Reverb yields them (trajectory.py)."""
  rng = np.random.default_rng(seed)
  keys = list(action_spec)
  state = agent.initial_state(batch)
  core = {k: v.numpy() for k, v in state.core.items()}
  first = random_observation(observation_spec, batch, rng)
  first['canvas'][:] = 1.0  # Blank white paper at FIRST.
  target = first.get('target')
  noise = first['noise_sample']
  obs, steps = first, []
  for t in range(length):
    step_type = np.full(
        batch,
        int(
            dm_env.StepType.FIRST
            if t == 0
            else dm_env.StepType.LAST
            if t == length - 1
            else dm_env.StepType.MID
        ),
        np.int32,
    )
    if t < length - 1:
      output, state = agent.step(tf.constant(step_type), obs, state)
      action = {k: output.action[k].numpy() for k in keys}
      log_prob = {k: output.log_prob[k].numpy() for k in keys}
    else:
      action = {k: np.zeros(batch, np.int32) for k in keys}
      log_prob = {k: np.zeros(batch, np.float32) for k in keys}
    steps.append((step_type, obs, action, log_prob))
    mask = (
        painter_mask(action['flag'], keys)
        if 'flag' in action
        else {k: np.ones(batch, np.float32) for k in keys}
    )
    obs = random_observation(observation_spec, batch, rng, mask)
    obs['noise_sample'] = noise
    if target is not None:
      obs['target'] = target
  stack = lambda *xs: np.stack(xs, axis=1)  # Batch-major [B, L, ...].
  return {
      'step_type': stack(*[s[0] for s in steps]),
      'observation': tf.nest.map_structure(stack, *[{k: v for k, v in s[1].items()} for s in steps]),
      'action': {k: stack(*[s[2][k] for s in steps]).astype(np.int32) for k in keys},
      'behaviour_log_prob': {k: stack(*[s[3][k] for s in steps]).astype(np.float32) for k in keys},
      'core_state': core,
  }
