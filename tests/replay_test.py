"""spiral_tf/replay/tables.py against a real, in-process Reverb server: the tables' contracts, not log lines.

The server listens on a free port of this process for the seconds of each test (Reverb 0.14 has no host
option; the `reverb` role narrows it with spiral_tf/distributed/listen.py, which needs a process of its own).
What is checked: the four tables and their signatures; the queue is FIFO, hands each episode out once and
blocks writers when full; `fakes` keeps the newest `fakes_size` renders and samples them with replacement, or,
as a shared D's queue, hands each out once, oldest first, without blocking the writers when full; a
variables table holds the one newest push; `wait_for_server` waits, and says what it waited for.
"""

import numpy as np
import pytest
import reverb
import tensorflow as tf
from tf_agents.experimental.distributed import reverb_variable_container

import network_fixtures
from spiral_tf.replay import tables as replay
from spiral_tf.replay import trajectory

LENGTH = 3
LSTM = 4


def _specs():
  action_spec, observation_spec = network_fixtures.painter_specs(grid=4, width=8, conditional=True)
  return (
      trajectory.trajectory_spec(observation_spec, action_spec, LSTM, LENGTH),
      trajectory.fake_spec(observation_spec['canvas'], conditional=True),
  )


@pytest.fixture
def variables():
  return [tf.Variable(np.zeros((2, 3), np.float32)), tf.Variable(np.zeros((), np.int32))]


@pytest.fixture
def server(variables):
  trajectory_spec, fake_spec = _specs()
  tables = replay.make_tables(
      trajectory_spec, fake_spec, variables, variables[:1], queue_size=2, fakes_size=3
  )
  server = reverb.Server(tables, port=None)
  yield server
  server.stop()


def _address(server):
  return f'localhost:{server.port}'


def _episode(rng, spec):
  """One episode's items as a writer appends them: a value of each leaf's per-step spec, per step."""

  def value(s):
    return (
        rng.uniform(0, 1, s.shape[1:]).astype(s.dtype.as_numpy_dtype)
        if s.dtype.is_floating
        else (rng.integers(0, 2, s.shape[1:]).astype(s.dtype.as_numpy_dtype))
    )

  per_step = {k: spec[k] for k in ('step_type', 'observation', 'action', 'behaviour_log_prob')}
  return [tf.nest.map_structure(value, per_step) for _ in range(LENGTH)]


def _write_episode(writer, steps, marker):
  """Appends `steps`, then a queue item over all of them whose policy_step is `marker`."""
  for t, step in enumerate(steps):
    if t == 0:
      step = dict(
          step,
          core_state={'h': np.full(LSTM, marker, np.float32), 'c': np.zeros(LSTM, np.float32)},
          policy_step=np.int64(marker),
      )
    writer.append(step)
  history = writer.history
  item = tf.nest.map_structure(
      lambda column: column[-LENGTH:],
      {k: history[k] for k in ('step_type', 'observation', 'action', 'behaviour_log_prob')},
  )
  item['core_state'] = {k: history['core_state'][k][-LENGTH] for k in ('h', 'c')}
  item['policy_step'] = history['policy_step'][-LENGTH]
  writer.create_item(replay.QUEUE, priority=1.0, trajectory=item)


def test_tables_and_their_signatures(server, variables):
  info = reverb.Client(_address(server)).server_info(timeout=10)
  assert set(info) == {replay.QUEUE, replay.FAKES, replay.POLICY_VARIABLES, replay.D_VARIABLES}
  assert (info[replay.QUEUE].max_size, info[replay.FAKES].max_size) == (2, 3)
  assert info[replay.POLICY_VARIABLES].max_size == info[replay.D_VARIABLES].max_size == 1
  trajectory_spec, fake_spec = _specs()
  tf.nest.assert_same_structure(info[replay.QUEUE].signature, trajectory_spec)
  for got, want in zip(tf.nest.flatten(info[replay.QUEUE].signature), tf.nest.flatten(trajectory_spec)):
    assert (got.shape, got.dtype) == (want.shape, want.dtype)
  assert info[replay.FAKES].signature == fake_spec
  assert info[replay.POLICY_VARIABLES].signature == replay.variables_signature(variables)
  assert replay.variables_signature(variables) == {
      'learner_step': tf.TensorSpec((), tf.int64),
      'weights': [tf.TensorSpec((2, 3), tf.float32), tf.TensorSpec((), tf.int32)],
  }


def test_queue_is_fifo_each_episode_once_and_blocks_when_full(server):
  client = reverb.Client(_address(server))
  spec, _ = _specs()
  rng = np.random.default_rng(0)
  writer = client.trajectory_writer(num_keep_alive_refs=LENGTH)
  episodes = [_episode(rng, spec) for _ in range(3)]
  for marker, steps in enumerate(episodes[:2]):
    _write_episode(writer, steps, marker)
    writer.end_episode(timeout_ms=10_000)
  # A full queue (max_size 2) refuses a third episode until one is read: the actors wait for the learner.
  _write_episode(writer, episodes[2], 2)
  with pytest.raises(reverb.errors.DeadlineExceededError):
    writer.flush(timeout_ms=500)
  assert client.server_info()[replay.QUEUE].current_size == 2

  # Read as the learner reads it (TrajectoryDataset from the table's signature).
  dataset = reverb.TrajectoryDataset.from_table_signature(
      _address(server), replay.QUEUE, max_in_flight_samples_per_worker=1, rate_limiter_timeout_ms=5_000
  )
  samples = [sample.data for sample in dataset.take(3)]
  writer.end_episode(timeout_ms=10_000)  # the third went in once the first was read
  assert [int(s['policy_step']) for s in samples] == [0, 1, 2]  # oldest first, each once
  for marker, (sample, steps) in enumerate(zip(samples, episodes)):
    np.testing.assert_array_equal(sample['core_state']['h'], np.full(LSTM, marker, np.float32))
    written = tf.nest.map_structure(lambda *xs: np.stack(xs), *steps)  # [LENGTH, ...] per leaf
    for key in ('step_type', 'observation', 'action', 'behaviour_log_prob'):
      tf.nest.assert_same_structure(sample[key], written[key])
      for got, want in zip(tf.nest.flatten(sample[key]), tf.nest.flatten(written[key])):
        np.testing.assert_array_equal(got, want)
  assert client.server_info()[replay.QUEUE].current_size == 0
  writer.close()


def _write_fakes(client, values):
  with client.trajectory_writer(num_keep_alive_refs=1) as writer:
    for i in values:
      writer.append({'canvas': np.full((8, 8, 1), i, np.float32), 'target': np.zeros((8, 8, 1), np.float32)})
      writer.create_item(
          replay.FAKES, priority=1.0, trajectory={k: writer.history[k][-1] for k in ('canvas', 'target')}
      )
      writer.end_episode(timeout_ms=10_000)


def test_fakes_keep_the_newest_and_sample_with_replacement(server):
  client = reverb.Client(_address(server))
  _write_fakes(client, range(5))
  assert client.server_info()[replay.FAKES].current_size == 3  # fakes_size: the oldest two are gone
  samples = client.sample(replay.FAKES, num_samples=40, emit_timesteps=False, unpack_as_table_signature=True)
  seen = [int(s.data['canvas'][0, 0, 0]) for s in samples]
  assert set(seen) == {2, 3, 4}  # 40 samples of 3 items: with replacement, uniformly (p(miss) ≈ 1e-7)
  assert client.server_info()[replay.FAKES].current_size == 3  # sampling removes nothing


def test_fakes_as_a_queue_hand_each_render_out_once_oldest_first_and_drop_the_oldest_when_full(variables):
  trajectory_spec, fake_spec = _specs()
  tables = replay.make_tables(
      trajectory_spec, fake_spec, variables, variables[:1], queue_size=2, fakes_size=3, fakes_queue=True
  )
  server = reverb.Server(tables, port=None)
  try:
    client = reverb.Client(_address(server))
    _write_fakes(client, range(5))  # Five into three places: the writer is not blocked, 0 and 1 are dropped.
    assert client.server_info()[replay.FAKES].current_size == 3
    samples = client.sample(replay.FAKES, num_samples=2, emit_timesteps=False, unpack_as_table_signature=True)
    assert [int(s.data['canvas'][0, 0, 0]) for s in samples] == [2, 3]
    assert client.server_info()[replay.FAKES].current_size == 1  # Each sampled once: gone.
    _write_fakes(client, [5])
    samples = client.sample(replay.FAKES, num_samples=2, emit_timesteps=False, unpack_as_table_signature=True)
    assert [int(s.data['canvas'][0, 0, 0]) for s in samples] == [4, 5]
    assert client.server_info()[replay.FAKES].current_size == 0
  finally:
    server.stop()


def test_variables_table_holds_the_newest_push(server, variables):
  container = reverb_variable_container.ReverbVariableContainer(
      _address(server), table_names=[replay.POLICY_VARIABLES]
  )
  for step, value in ((3, 1.0), (5, 2.0)):  # the learner's way of pushing (spiral_tf/distributed/learner.py)
    variables[0].assign(np.full((2, 3), value, np.float32))
    container.push(
        {'learner_step': tf.constant(step, tf.int64), 'weights': variables}, replay.POLICY_VARIABLES
    )
  info = reverb.Client(_address(server)).server_info()
  assert info[replay.POLICY_VARIABLES].current_size == 1
  pulled = container.pull(replay.POLICY_VARIABLES)
  assert int(pulled['learner_step']) == 5
  np.testing.assert_array_equal(pulled['weights'][0], np.full((2, 3), 2.0, np.float32))
  with pytest.raises(Exception, match='(?i)signature|shape|dtype|compatible'):
    container.push(
        {'learner_step': tf.constant(6, tf.int64), 'weights': [tf.zeros((3, 2)), tf.constant(0)]},
        replay.POLICY_VARIABLES,
    )


def test_wait_for_server_waits_and_names_what_it_waited_for(server, variables):
  address = _address(server)
  assert replay.POLICY_VARIABLES in replay.wait_for_server(address, timeout_s=10)
  with pytest.raises(TimeoutError, match=f"'policy_variables' to receive its first item at {address}"):
    replay.wait_for_server(address, timeout_s=1, table=replay.POLICY_VARIABLES)
  container = reverb_variable_container.ReverbVariableContainer(address, table_names=[replay.D_VARIABLES])
  container.push({'learner_step': tf.constant(1, tf.int64), 'weights': variables[:1]}, replay.D_VARIABLES)
  assert replay.wait_for_server(address, 10, table=replay.D_VARIABLES)[replay.D_VARIABLES].current_size == 1
  server.stop()
  with pytest.raises(TimeoutError, match=f'the Reverb server at {address}.*--role=reverb'):
    replay.wait_for_server(address, timeout_s=1)
