"""Helpers of tests/multi_worker_test.py: a deterministic two-worker update, run as real processes.

`write_problem(path)` writes a fixed problem (the micro networks' initial weights, a global batch of 4
episodes and 4 real images) and `reference(path, steps)` trains it in this process with the default
strategy on the whole batch. Run as a script (`python multi_worker_fixtures.py PROBLEM OUT STEPS`, with
TF_CONFIG naming this worker), this file trains the same problem as one worker of a
MultiWorkerMirroredStrategy: its share of the global batch comes from `distribute_datasets_from_function`
(input pipeline i takes examples 2i and 2i + 1), and it writes its weights and what its `Workers` decided to
OUT. The update is spiral_tf/learning/learner_step.py's, unconditional with the SN-GAN loss, so it draws
no random numbers: one worker on the whole batch and two on halves see the same inputs. Both run their
functions eagerly: tracing the update costs tens of seconds of a loaded 2-core machine, and the arithmetic
compared here is the same.

Usage:
  write_problem(problem); expected = reference(problem, STEPS)
  subprocess.run([sys.executable, __file__, problem, out, str(STEPS)], env={..., 'TF_CONFIG': ...})
"""

import os
import pickle
import sys

sys.path[:0] = [
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    os.path.dirname(os.path.abspath(__file__)),
]

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import network_fixtures as nf  # noqa: E402
from spiral_tf import config as config_lib  # noqa: E402
from spiral_tf.learning import learner_step  # noqa: E402
from spiral_tf.learning import strategy as strategy_lib  # noqa: E402
from spiral_tf.networks import agent as agent_lib  # noqa: E402
from spiral_tf.networks import discriminator as d_lib  # noqa: E402

BATCH, LENGTH, WIDTH = 4, 3, 16
# The worker that votes to stop, and after how many steps (the other must stop at the same step).
STOP_VOTER, STOP_AFTER = 1, 2


def _build(strategy):
  action_spec, obs_spec = nf.painter_specs(grid=8, width=WIDTH, conditional=False)
  with strategy.scope():
    agent = agent_lib.Agent(action_spec, obs_spec, size=nf.MICRO)
    d = d_lib.Discriminator(channels=nf.MICRO_D, input_shape=[WIDTH, WIDTH, 1], spectral_norm=True)
  config = config_lib.LearnerConfig(
      reward='spiral', d_loss='sn-gan', policy_learning_rate=1e-3, d_learning_rate=1e-3
  )
  learner = learner_step.LearnerUpdate(
      agent, d, config, conditional=False, strategy=strategy, jit_compile=False
  )
  return agent, d, learner, (action_spec, obs_spec)


def _weights(agent, d):
  return [v.numpy() for v in agent.variables + d.variables]


def write_problem(path):
  agent, d, _, (action_spec, obs_spec) = _build(tf.distribute.get_strategy())
  episodes = nf.sampled_episodes(agent, action_spec, obs_spec, BATCH, LENGTH, seed=1)
  real = np.random.default_rng(2).uniform(size=(BATCH, WIDTH, WIDTH, 1)).astype(np.float32)
  with open(path, 'wb') as f:
    pickle.dump({'weights': _weights(agent, d), 'episodes': episodes, 'real': real}, f)


def _load(path, agent, d):
  with open(path, 'rb') as f:
    problem = pickle.load(f)
  for v, w in zip(agent.variables + d.variables, problem['weights']):
    v.assign(w)
  return problem


def reference(path, steps):
  """The weights after `steps` updates of one worker on the whole batch."""
  eager = tf.config.functions_run_eagerly()
  tf.config.run_functions_eagerly(True)
  try:
    agent, d, learner, _ = _build(tf.distribute.get_strategy())
    problem = _load(path, agent, d)
    for _ in range(steps):
      learner.step(problem['episodes'], problem['real'])
  finally:
    tf.config.run_functions_eagerly(eager)
  return _weights(agent, d)


def _worker(problem_path, out_path, steps):
  tf.config.run_functions_eagerly(True)
  strategy = strategy_lib.make_strategy('multi_worker')
  workers = strategy_lib.Workers(strategy)
  agent, d, learner, _ = _build(strategy)
  problem = _load(problem_path, agent, d)
  per_replica = BATCH // strategy.num_replicas_in_sync

  def shard(context):
    # This worker's own examples (no autosharding: the learner reads its share of a queue the same way).
    data = tf.data.Dataset.from_tensor_slices((problem['episodes'], problem['real']))
    return data.shard(context.num_input_pipelines, context.input_pipeline_id).batch(per_replica).repeat()

  batches = iter(strategy.distribute_datasets_from_function(shard))
  index = int(workers.task.split(':')[1])
  done, stopped_after = 0, None
  while done < steps:
    (stop,) = workers.any_of(index == STOP_VOTER and done == STOP_AFTER)
    if stop:
      stopped_after = done
      break
    learner.step(*next(batches))
    done += 1
  result = {
      'task': workers.task,
      'is_chief': workers.is_chief,
      'num_workers': workers.num_workers,
      'replicas': strategy.num_replicas_in_sync,
      'stopped_after': stopped_after,
      'chief_value': workers.broadcast_from_chief(100.0 + index),
      'weights': _weights(agent, d),
  }
  with open(out_path, 'wb') as f:
    pickle.dump(result, f)


if __name__ == '__main__':
  _worker(sys.argv[1], sys.argv[2], int(sys.argv[3]))
