"""The unit of experience: one whole episode, as actors write it to Reverb and the learner reads it.

An episode of `episode_length` L has L observations (FIRST … LAST) and L − 1 actions. Everything is stored
with a time dimension of L, so the learner can unroll the agent over all observations and bootstrap from
the LAST one; the action at the LAST step is a zero placeholder whose log-probability is never used.

  step_type           int32   [L]          dm_env.StepType of each observation
  observation         nest    [L, ...]     the environment's (wrapped) observations, canvas included
  action              {k: int32 [L]}       action taken after observation t (t = L − 1: zeros)
  behaviour_log_prob  {k: float32 [L]}     log μ of each sub-action a_t[k] given the history and the
                                           sub-actions before it (t = L − 1: 0); the learner masks
                                           sub-actions that had no effect with observation t+1's action_mask
  core_state          {'h', 'c': float32 [lstm_size]}  the agent's LSTM state before observation 0
  policy_step         int64   []           learner step of the weights that acted (for the policy lag)

Usage:
  spec = trajectory_spec(env.observation_spec(), env.action_spec(), lstm_size=256)
  # Reverb signature: tf.nest.map_structure(tf.TensorSpec.from_spec, spec)
"""
from typing import Any, Mapping

from dm_env import specs
import tensorflow as tf


def plain_dicts(nest):
  """Nested (Ordered)Dicts as plain dicts, so every process flattens them the same (sorted) way."""
  return {k: plain_dicts(v) for k, v in nest.items()} if isinstance(nest, Mapping) else nest


def _tensor_spec(spec: specs.Array, leading=()) -> tf.TensorSpec:
  return tf.TensorSpec(tuple(leading) + tuple(spec.shape), tf.as_dtype(spec.dtype), name=spec.name or None)


def trajectory_spec(observation_spec: Mapping[str, Any], action_spec: Mapping[str, specs.Array],
                    lstm_size: int, episode_length: int) -> dict:
  """Nested tf.TensorSpec of one stored episode (see module docstring)."""
  length = (episode_length,)
  return {
      'step_type': tf.TensorSpec(length, tf.int32, 'step_type'),
      'observation': tf.nest.map_structure(lambda s: _tensor_spec(s, length),
                                           plain_dicts(observation_spec)),
      'action': {k: tf.TensorSpec(length, tf.int32, k) for k in action_spec},
      'behaviour_log_prob': {k: tf.TensorSpec(length, tf.float32, k) for k in action_spec},
      'core_state': {'h': tf.TensorSpec((lstm_size,), tf.float32, 'h'),
                     'c': tf.TensorSpec((lstm_size,), tf.float32, 'c')},
      'policy_step': tf.TensorSpec((), tf.int64, 'policy_step'),
  }


def fake_spec(canvas_spec: specs.Array, conditional: bool) -> dict:
  """One item of the `fakes` table: a final render (and the target it was painted for)."""
  spec = {'canvas': _tensor_spec(canvas_spec)}
  if conditional:
    spec['target'] = _tensor_spec(canvas_spec)
  return spec
