"""spiral_tf/distributed/actor.py against a real, in-process Reverb server: what the actor writes is what
the learner reads.

Real parts throughout: two libmypaint environments with procedural-stroke targets, a tiny agent, the
run's own Reverb tables (spiral_tf/replay/tables.py) on a server in this process, and the learner's way of
pushing weights and of reading episodes. The checks are independent of the actor's code: replaying the
stored actions in a fresh environment gives the stored observations; the learner's teacher-forced unroll
of the stored episode gives the stored behaviour log-probabilities (ρ = 1 with the same weights); the
`fakes` item is the episode's final render and target; the weights that acted are the learner's.
"""

import time

import dm_env
import numpy as np
import pytest
import reverb
import tensorflow as tf
from tf_agents.experimental.distributed import reverb_variable_container

from spiral_tf import components
from spiral_tf import config as config_lib
from spiral_tf.data import strokes
from spiral_tf.distributed import actor as actor_lib
from spiral_tf.replay import tables as replay
from spiral_tf.replay import trajectory

LENGTH = 4
NUM_ENVS = 2


@pytest.fixture(scope='module')
def run(tmp_path_factory):
  """The parts of one actor and one learner, a server with the run's tables, and weights pushed at step 7."""
  config = config_lib.validate(
      config_lib.Config(
          root_dir=str(tmp_path_factory.mktemp('run')),
          dataset='strokes',
          conditional=True,
          episode_length=LENGTH,
          grid_width=16,
          network_size='tiny',
          batch_size=NUM_ENVS,
          use_color=False,
          jit_compile=False,
      )
  )
  images, _ = strokes.render(6, seed=0, split='train', channels=1, **components.dataset_options(config))
  make_envs = lambda: [components.make_environment(config, images=images, seed=i) for i in range(NUM_ENVS)]
  envs = make_envs()
  learner_agent = components.make_agent(config)
  actor_agent = components.make_agent(config)
  trajectory_spec, fake_spec = components.specs(config)
  server = reverb.Server(
      replay.make_tables(
          trajectory_spec,
          fake_spec,
          learner_agent.variables,
          learner_agent.variables[:1],
          queue_size=4 * NUM_ENVS,
          fakes_size=4 * NUM_ENVS,
      ),
      port=None,
  )
  address = f'localhost:{server.port}'
  container = reverb_variable_container.ReverbVariableContainer(
      address, table_names=[replay.POLICY_VARIABLES]
  )
  push = lambda step: container.push(
      {'learner_step': tf.constant(step, tf.int64), 'weights': learner_agent.variables},
      replay.POLICY_VARIABLES,
  )
  assert not all(
      np.array_equal(a.numpy(), b.numpy()) for a, b in zip(learner_agent.variables, actor_agent.variables)
  )  # different inits
  push(7)
  weights = actor_lib.WeightPuller(address, actor_agent.variables, interval_s=0.2, timeout_s=30)
  actor = actor_lib.Actor(
      envs, actor_agent, reverb.Client(address), weights, conditional=True, episode_length=LENGTH
  )
  yield dict(
      config=config,
      make_envs=make_envs,
      learner_agent=learner_agent,
      actor_agent=actor_agent,
      address=address,
      push=push,
      weights=weights,
      actor=actor,
      spec=trajectory_spec,
  )
  weights.stop()
  server.stop()


def _read(address, table, count):
  """`count` items of `table`, read as the learner reads them (TrajectoryDataset from the signature)."""
  dataset = reverb.TrajectoryDataset.from_table_signature(
      address, table, max_in_flight_samples_per_worker=1, rate_limiter_timeout_ms=10_000
  )
  return [tf.nest.map_structure(lambda x: x.numpy(), sample.data) for sample in dataset.take(count)]


def _leaves_equal(got, want):
  tf.nest.assert_same_structure(got, want)
  for a, b in zip(tf.nest.flatten(got), tf.nest.flatten(want)):
    np.testing.assert_array_equal(a, b)


def test_weights_are_the_learners_from_the_first_episode(run):
  assert run['weights'].learner_step == 7
  for a, b in zip(run['actor_agent'].variables, run['learner_agent'].variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_episodes_in_the_queue_replay_and_unroll_to_what_was_stored(run):
  run['actor'].run(num_episodes=1)
  assert (run['actor'].episodes, run['actor'].frames) == (NUM_ENVS, NUM_ENVS * (LENGTH - 1))
  episodes = _read(run['address'], replay.QUEUE, NUM_ENVS)
  fakes = _read(run['address'], replay.FAKES, 20)
  keys = list(run['make_envs']()[0].action_spec())
  for env, episode in zip(run['make_envs'](), episodes):  # environment order, FIFO
    tf.nest.assert_same_structure(episode, run['spec'])
    assert episode['step_type'].tolist() == [int(dm_env.StepType.FIRST)] + [int(dm_env.StepType.MID)] * (
        LENGTH - 2
    ) + [int(dm_env.StepType.LAST)]
    assert int(episode['policy_step']) == 7
    _leaves_equal(
        episode['core_state'], {k: np.zeros(run['actor_agent'].lstm_size, np.float32) for k in ('h', 'c')}
    )
    # Observation t, then the action taken after it: a fresh environment of the same seed replays them.
    timestep = env.reset()
    for t in range(LENGTH):
      _leaves_equal(
          tf.nest.map_structure(lambda x: x[t], episode['observation']),
          trajectory.plain_dicts(timestep.observation),
      )
      if t < LENGTH - 1:
        timestep = env.step({k: int(episode['action'][k][t]) for k in keys})
    assert timestep.last()
    # The LAST step's action is a placeholder.
    for k in keys:
      assert episode['action'][k][-1] == 0 and episode['behaviour_log_prob'][k][-1] == 0
  assert any(np.any(episode['action'][k][:-1]) for episode in episodes for k in keys)

  # The learner's teacher-forced pass with the same weights gives the actor's log μ: ρ = 1, on-policy.
  batch = tf.nest.map_structure(lambda *xs: np.stack(xs), *episodes)
  time_major = lambda x: np.swapaxes(x, 0, 1)
  unrolled = run['learner_agent'].unroll(
      time_major(batch['step_type']),
      tf.nest.map_structure(time_major, batch['observation']),
      {k: time_major(v) for k, v in batch['action'].items()},
      batch['core_state'],
  )
  for k in keys:
    np.testing.assert_allclose(
        time_major(unrolled.log_prob[k].numpy())[:, :-1], batch['behaviour_log_prob'][k][:, :-1], atol=2e-4
    )
    assert (batch['behaviour_log_prob'][k][:, :-1] <= 0).all()

  # The fakes are the episodes' final renders, with their targets (sampled uniformly, with replacement:
  # 20 samples of the 2 fakes miss one with probability 2⁻¹⁹).
  finals = {
      episode['observation']['target'][-1].tobytes(): episode['observation']['canvas'][-1]
      for episode in episodes
  }
  assert len(finals) == NUM_ENVS  # each environment its own target
  seen = set()
  for fake in fakes:
    seen.add(fake['target'].tobytes())
    np.testing.assert_array_equal(fake['canvas'], finals[fake['target'].tobytes()])
  assert seen == set(finals)


def test_newer_weights_are_taken_between_episodes_and_older_ones_ignored(run):
  learner, actor_agent, weights = run['learner_agent'], run['actor_agent'], run['weights']
  for v in learner.trainable_variables:
    v.assign(v + 0.01)
  run['push'](9)
  deadline = time.monotonic() + 30
  while not weights.maybe_update():  # the puller's thread fetches every 0.2 s
    assert time.monotonic() < deadline, 'weights of step 9 never arrived'
    time.sleep(0.05)
  assert weights.learner_step == 9
  for a, b in zip(actor_agent.variables, learner.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  stale = [v.numpy().copy() for v in actor_agent.variables]
  for v in learner.trainable_variables:
    v.assign(v - 0.01)
  run['push'](8)  # a restarted learner's older weights: not taken
  for _ in range(10):  # 1 s: five of the puller's fetches
    assert not weights.maybe_update()
    time.sleep(0.1)
  assert weights.learner_step == 9
  for a, b in zip(actor_agent.variables, stale):
    np.testing.assert_array_equal(a.numpy(), b)
  run['actor'].run(num_episodes=1)
  assert [int(e['policy_step']) for e in _read(run['address'], replay.QUEUE, NUM_ENVS)] == [9, 9]


def test_the_episode_loop_gives_records_of_the_tables_signature(run):
  # The loop the actor runs, stacked as the learner's datasets yield episodes (tests/export_fixtures.py
  # trains on these): every field has the signature's shape and dtype, behind a batch dimension.
  envs = run['make_envs']()
  steps, core = actor_lib.run_episode(envs, run['actor_agent'], run['actor_agent'].step, LENGTH)
  assert len(steps) == LENGTH and all(isinstance(s, trajectory.Step) for s in steps)
  episodes = trajectory.batch_major(steps, core, policy_step=5)
  tf.nest.assert_same_structure(episodes, run['spec'])
  for value, spec in zip(tf.nest.flatten(episodes), tf.nest.flatten(run['spec'])):
    assert value.shape == (NUM_ENVS,) + tuple(spec.shape) and value.dtype == spec.dtype.as_numpy_dtype, spec
  assert episodes['policy_step'].tolist() == [5, 5]
  with pytest.raises(RuntimeError, match='must end together'):
    actor_lib.run_episode(envs, run['actor_agent'], run['actor_agent'].step, LENGTH - 1)
