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

In a process, an episode is recorded as L `Step`s of K environments at once (the actor's batched policy
calls); `batch_major` stacks them into the record above with a leading batch dimension (what the learner's
datasets yield), and `writer_columns` / `queue_item` are how the actor writes one environment's episode
through a Reverb TrajectoryWriter (the per-episode fields once, at step 0, referenced by the item).

Usage:
  spec = trajectory_spec(env.observation_spec(), env.action_spec(), lstm_size=256, episode_length=20)
  episodes = batch_major(steps, core_state, policy_step)          # {field: [K, L, ...]}
  writer.append(writer_columns(step, i, core_state, policy_step))  # per step t (per-episode fields at 0)
  writer.create_item('queue', 1.0, queue_item(writer.history, L, action_keys))
"""

from typing import Any, Mapping, NamedTuple, Sequence

from dm_env import specs
import numpy as np
import tensorflow as tf

# The fields of a step (time dimension L in the record) and of an episode (no time dimension).
STEP_FIELDS = ('step_type', 'observation', 'action', 'behaviour_log_prob')
EPISODE_FIELDS = ('core_state', 'policy_step')


class Step(NamedTuple):
  """One time step of K environments: the observation, then the action taken after it (LAST: zeros)."""

  step_type: np.ndarray  # int32 [K]
  observation: Mapping[str, Any]  # nest of [K, ...]
  action: Mapping[str, np.ndarray]  # {k: int32 [K]}
  behaviour_log_prob: Mapping[str, np.ndarray]  # {k: float32 [K]}


def plain_dicts(nest):
  """Nested (Ordered)Dicts as plain dicts, so every process flattens them the same (sorted) way."""
  return {k: plain_dicts(v) for k, v in nest.items()} if isinstance(nest, Mapping) else nest


def _tensor_spec(spec: specs.Array, leading=()) -> tf.TensorSpec:
  return tf.TensorSpec(tuple(leading) + tuple(spec.shape), tf.as_dtype(spec.dtype), name=spec.name or None)


def trajectory_spec(
    observation_spec: Mapping[str, Any],
    action_spec: Mapping[str, specs.Array],
    lstm_size: int,
    episode_length: int,
) -> dict:
  """Nested tf.TensorSpec of one stored episode (see module docstring)."""
  length = (episode_length,)
  return {
      'step_type': tf.TensorSpec(length, tf.int32, 'step_type'),
      'observation': tf.nest.map_structure(lambda s: _tensor_spec(s, length), plain_dicts(observation_spec)),
      'action': {k: tf.TensorSpec(length, tf.int32, k) for k in action_spec},
      'behaviour_log_prob': {k: tf.TensorSpec(length, tf.float32, k) for k in action_spec},
      'core_state': {
          'h': tf.TensorSpec((lstm_size,), tf.float32, 'h'),
          'c': tf.TensorSpec((lstm_size,), tf.float32, 'c'),
      },
      'policy_step': tf.TensorSpec((), tf.int64, 'policy_step'),
  }


def fake_spec(canvas_spec: specs.Array, conditional: bool) -> dict:
  """One item of the `fakes` table: a final render (and the target it was painted for)."""
  spec = {'canvas': _tensor_spec(canvas_spec)}
  if conditional:
    spec['target'] = _tensor_spec(canvas_spec)
  return spec


def batch_major(steps: Sequence[Step], core_state: Mapping[str, np.ndarray], policy_step) -> dict:
  """The K episodes of `steps` as records with a leading batch dimension: {field: [K, L, ...]}.

  core_state: {'h', 'c': [K, lstm_size]} before step 0; policy_step: int64 [K] (or a scalar for all).
  """
  batch = len(steps[0].step_type)
  stack = lambda xs: np.stack(xs, axis=1)  # time after batch
  return {
      'step_type': stack([s.step_type for s in steps]),
      'observation': tf.nest.map_structure(
          lambda *xs: stack(xs), *[plain_dicts(s.observation) for s in steps]
      ),
      'action': {k: stack([s.action[k] for s in steps]) for k in steps[0].action},
      'behaviour_log_prob': {
          k: stack([s.behaviour_log_prob[k] for s in steps]) for k in steps[0].behaviour_log_prob
      },
      'core_state': {k: np.asarray(v) for k, v in core_state.items()},
      'policy_step': np.broadcast_to(np.asarray(policy_step, np.int64), (batch,)).copy(),
  }


def writer_columns(step: Step, i: int, core_state=None, policy_step=None) -> dict:
  """Environment i's columns of `step` for TrajectoryWriter.append; the episode fields when given (t = 0)."""
  columns = {
      'step_type': step.step_type[i],
      'observation': tf.nest.map_structure(lambda x: x[i], plain_dicts(step.observation)),
      'action': {k: v[i] for k, v in step.action.items()},
      'behaviour_log_prob': {k: v[i] for k, v in step.behaviour_log_prob.items()},
  }
  if core_state is not None:
    columns['core_state'] = {k: v[i] for k, v in core_state.items()}
    columns['policy_step'] = np.int64(policy_step)
  return columns


def queue_item(history, length: int, action_keys: Sequence[str]) -> dict:
  """The queue item over the last `length` appended steps of a TrajectoryWriter's `history`."""
  span = slice(-length, None)
  return {
      'step_type': history['step_type'][span],
      'observation': tf.nest.map_structure(lambda column: column[span], history['observation']),
      'action': {k: history['action'][k][span] for k in action_keys},
      'behaviour_log_prob': {k: history['behaviour_log_prob'][k][span] for k in action_keys},
      'core_state': {k: history['core_state'][k][-length] for k in ('h', 'c')},
      'policy_step': history['policy_step'][-length],
  }
