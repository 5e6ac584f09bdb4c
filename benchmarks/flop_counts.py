r"""Floating-point operations of a training config: per actor frame and per learner step.

The machine-independent half of sizing a run (docs/full_scale.md): a device's time per learner step is
these FLOPs over the FLOP/s it sustains on the model. Builds the agent and D of the config as training
does (spiral_tf/components.py, specs from the config, as every process has them) and counts, with
TensorFlow's profiler on the traced graphs (nothing is executed):
  * policy: one batched `agent.step` (batch 16), per frame — what an actor runs;
  * learner: the gradients of one update on `batch_size` episodes of `episode_length` observations (the
    agent unrolled forward and backward, D on reals, fakes and the penalty's interpolates), per step and
    per frame. The optimiser's elementwise updates are left out (a few MFLOP).

  .venv/bin/python benchmarks/flop_counts.py --flagfile=configs/celeba.cfg

The last printed line is one JSON object.
"""

import json
import os

from absl import app
from absl import flags
import dm_env
import numpy as np

from spiral_tf import config as config_lib

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # Before TensorFlow loads (lazily, below).

config_lib.define_flags()
FLAGS = flags.FLAGS
POLICY_BATCH = 16


def graph_flops(concrete_function) -> int:
  # TensorFlow loads once TF_CPP_MIN_LOG_LEVEL, set below the top-level imports, is in the environment.
  import tensorflow as tf

  options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  options['output'] = 'none'
  return tf.compat.v1.profiler.profile(concrete_function.graph, options=options).total_float_ops


def _random(spec, shape, rng):
  """Random values of a spec's dtype: uniform floats, zero integers (counters, flags)."""
  if np.issubdtype(np.dtype(spec.dtype.as_numpy_dtype), np.floating):
    return rng.uniform(size=shape).astype(spec.dtype.as_numpy_dtype)
  return np.zeros(shape, spec.dtype.as_numpy_dtype)


def random_episodes(trajectory_spec, action_spec, batch, rng):
  """A batch-major batch of episodes with the stored structure, valid step types and actions."""
  # TensorFlow loads once TF_CPP_MIN_LOG_LEVEL, set below the top-level imports, is in the environment.
  import tensorflow as tf

  episodes = tf.nest.map_structure(lambda s: _random(s, (batch,) + tuple(s.shape), rng), trajectory_spec)
  length = trajectory_spec['step_type'].shape[0]
  step_type = np.full([batch, length], int(dm_env.StepType.MID), np.int32)
  step_type[:, 0], step_type[:, -1] = int(dm_env.StepType.FIRST), int(dm_env.StepType.LAST)
  episodes['step_type'] = step_type
  episodes['action'] = {
      k: rng.integers(0, s.num_values, size=[batch, length]).astype(np.int32) for k, s in action_spec.items()
  }
  return tf.nest.map_structure(tf.constant, episodes)


def count(config, rng) -> dict:
  # TensorFlow loads once TF_CPP_MIN_LOG_LEVEL, set below the top-level imports, is in the environment.
  import tensorflow as tf

  # components loads TensorFlow too.
  from spiral_tf import components

  action_spec, observation_spec = components.environment_specs(config)
  agent = components.make_agent(config)
  discriminator = components.make_discriminator(config)
  trajectory_spec, _ = components.specs(config)

  observation = tf.nest.map_structure(
      lambda s: _random(tf.TensorSpec.from_spec(s), (POLICY_BATCH,) + tuple(s.shape), rng), observation_spec
  )
  observation = tf.nest.map_structure(tf.constant, observation)
  step_type = tf.fill([POLICY_BATCH], int(dm_env.StepType.MID))
  policy = tf.function(agent.step).get_concrete_function(
      step_type, observation, agent.initial_state(POLICY_BATCH)
  )
  policy_flops = graph_flops(policy) / POLICY_BATCH

  learner = components.make_learner_update(config, agent, discriminator, tf.distribute.get_strategy())
  episodes = random_episodes(trajectory_spec, action_spec, config.batch_size, rng)
  real = tf.constant(
      rng.uniform(size=(config.batch_size,) + tuple(observation_spec['canvas'].shape)).astype(np.float32)
  )
  gradients = tf.function(learner.gradients).get_concrete_function(
      episodes, real, None, learner.draw_noise(config.batch_size)
  )
  learner_flops = graph_flops(gradients)
  frames = config.batch_size * config.frames_per_episode
  return {
      'agent_parameters': agent.num_parameters(),
      'd_parameters': discriminator.num_parameters(),
      'policy_flops_per_frame': policy_flops,
      'frames_per_learner_step': frames,
      'learner_flops_per_step': learner_flops,
      'learner_flops_per_frame': learner_flops / frames,
  }


def main(argv):
  del argv
  config = config_lib.from_flags(FLAGS)
  result = {
      'environment': config.environment,
      'dataset': config.dataset,
      'network_size': config.network_size,
      'episode_length': config.episode_length,
      'channels': config.channels,
      'conditional': config.conditional,
      'batch_size': config.batch_size,
  }
  result.update(count(config, np.random.default_rng(0)))
  print(
      f'{config.dataset} ({config.environment}, {config.network_size}, L={config.episode_length}, '
      f'{config.channels} ch, batch {config.batch_size}): '
      f'policy {result["policy_flops_per_frame"] / 1e6:.1f} '
      f'MFLOP/frame; learner {result["learner_flops_per_step"] / 1e9:.1f} GFLOP/step '
      f'({result["frames_per_learner_step"]} frames, {result["learner_flops_per_frame"] / 1e6:.0f} '
      f'MFLOP/frame)',
      flush=True,
  )
  print(json.dumps(result))


if __name__ == '__main__':
  app.run(main)
