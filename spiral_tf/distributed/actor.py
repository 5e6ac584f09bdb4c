"""Acting: renderers + a copy of the policy → whole episodes in Reverb.

An actor steps K environments in lockstep (every episode has the same length), with one batched policy
call per step. At the end of an episode it writes, per environment, one `queue` item (the whole episode,
spiral_tf/replay/trajectory.py) and one `fakes` item (the final render, and its target when conditional) that
references the same data, so nothing is sent twice. Fresh weights arrive in the background.

Usage:
  actor = Actor(envs, agent, reverb.Client(address), WeightPuller(address, agent.variables))
  actor.run(num_episodes=10)          # or None: until stop() is called
  steps, core = run_episode(envs, agent, agent.step, episode_length)   # the loop alone (tests, tools)
"""

import threading
import time
from typing import Sequence

from absl import logging
import dm_env
import numpy as np
import reverb
import tensorflow as tf
from tf_agents.experimental.distributed import reverb_variable_container

from spiral_tf.replay import tables as replay
from spiral_tf.replay import trajectory


class WeightPuller:
  """Keeps the newest policy weights from Reverb at hand without stalling the actor.

  A background thread pulls the `policy_variables` table every `interval_s`; `maybe_update()` (called
  between episodes) assigns them if they are newer than the ones in use. `table=replay.D_VARIABLES`: a
  population member's learner keeps the shared discriminator's weights the same way.
  """

  def __init__(
      self,
      address: str,
      variables: Sequence[tf.Variable],
      interval_s: float = 2.0,
      timeout_s: float = 600.0,
      table: str = replay.POLICY_VARIABLES,
  ):
    replay.wait_for_server(address, timeout_s, table=table)
    self._table = table
    self._container = reverb_variable_container.ReverbVariableContainer(address, table_names=[table])
    self._variables = list(variables)
    self._interval_s = interval_s
    self._lock = threading.Lock()
    self._pending = None
    self.learner_step = -1
    self.errors = 0
    self._apply(self._pull())  # Act with the learner's weights from the first episode on.
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._loop, daemon=True, name='weight-puller')
    self._thread.start()

  def _pull(self):
    values = self._container.pull(self._table)
    return int(values['learner_step'].numpy()), [w.numpy() for w in values['weights']]

  def _loop(self):
    while not self._stop.wait(self._interval_s):
      try:
        pulled = self._pull()
      except Exception:  # pylint: disable=broad-except — a restarting server; try again later.
        self.errors += 1
        continue
      with self._lock:
        if pulled[0] > self.learner_step:
          self._pending = pulled

  def _apply(self, pulled):
    step, weights = pulled
    for variable, value in zip(self._variables, weights):
      variable.assign(value)
    self.learner_step = step

  def maybe_update(self) -> bool:
    with self._lock:
      pulled, self._pending = self._pending, None
    if pulled is None or pulled[0] <= self.learner_step:
      return False
    self._apply(pulled)
    return True

  def stop(self):
    self._stop.set()


def _stack(nests):
  return tf.nest.map_structure(lambda *xs: np.stack(xs), *nests)


def run_episode(envs: Sequence[dm_env.Environment], agent, policy, episode_length: int):
  """One episode of every environment in lockstep, one batched `policy` call per step.

  policy: `agent.step` or a tf.function of it. Returns ([trajectory.Step] * episode_length, the agent's
  core state before step 0 as {'h', 'c': [K, lstm]}); `trajectory.batch_major` makes them records.
  """
  k = len(envs)
  keys = list(envs[0].action_spec())
  timesteps = [env.reset() for env in envs]
  state = agent.initial_state(k)
  first_core = tf.nest.map_structure(lambda x: x.numpy(), state.core)
  steps = []
  for t in range(episode_length):
    observation = _stack([trajectory.plain_dicts(ts.observation) for ts in timesteps])
    step_type = np.array([int(ts.step_type) for ts in timesteps], np.int32)
    if t < episode_length - 1:
      output, state = policy(tf.constant(step_type), observation, state)
      action = {key: output.action[key].numpy().astype(np.int32) for key in keys}
      log_prob = {key: output.log_prob[key].numpy().astype(np.float32) for key in keys}
      timesteps = [env.step({key: int(action[key][i]) for key in keys}) for i, env in enumerate(envs)]
    else:  # LAST: nothing to act on; placeholders keep the time dimension whole.
      action = {key: np.zeros(k, np.int32) for key in keys}
      log_prob = {key: np.zeros(k, np.float32) for key in keys}
    steps.append(trajectory.Step(step_type, observation, action, log_prob))
  if not all(ts.last() for ts in timesteps):
    raise RuntimeError(
        f'episodes of one actor must end together: not all LAST after {episode_length} '
        'observations (do the environments have --episode_length?)'
    )
  return steps, first_core


class Actor:
  """Runs K environments with one policy and writes their episodes (see module docstring)."""

  def __init__(
      self,
      envs: Sequence[dm_env.Environment],
      agent,
      client: reverb.Client,
      weights: WeightPuller | None,
      conditional: bool,
      episode_length: int,
  ):
    self._envs = list(envs)
    self._agent = agent
    self._client = client
    self._weights = weights
    self._conditional = conditional
    self._length = episode_length
    self._action_spec = self._envs[0].action_spec()
    self._writer = client.trajectory_writer(num_keep_alive_refs=episode_length)
    # No AutoGraph: the policy step has no tensor-dependent Python control flow (learner_step.py says why).
    self._policy = tf.function(agent.step, autograph=False)
    self._stop = threading.Event()
    self.episodes = 0
    self.frames = 0

  def stop(self):
    self._stop.set()

  def run(self, num_episodes: int | None = None, log_every_s: float = 30.0) -> None:
    """Acts until `num_episodes` episodes per environment (None: until `stop()`)."""
    start = last_log = time.monotonic()
    done = 0
    while (num_episodes is None or done < num_episodes) and not self._stop.is_set():
      if self._weights is not None:
        self._weights.maybe_update()
      self._write(*run_episode(self._envs, self._agent, self._policy, self._length))
      done += 1
      now = time.monotonic()
      if now - last_log > log_every_s:
        last_log = now
        step = self._weights.learner_step if self._weights else -1
        logging.info(
            '[actor] episodes %d  frames %d  %.0f frames/s  weights from learner step %d',
            self.episodes,
            self.frames,
            self.frames / (now - start),
            step,
        )

  def _write(self, steps, first_core):
    policy_step = np.int64(self._weights.learner_step if self._weights else 0)
    for i in range(len(self._envs)):
      for t, step in enumerate(steps):
        # Per-episode fields are written once, with step 0, and referenced by the item.
        self._writer.append(trajectory.writer_columns(step, i, first_core if t == 0 else None, policy_step))
      history = self._writer.history
      self._writer.create_item(
          replay.QUEUE,
          priority=1.0,
          trajectory=trajectory.queue_item(history, self._length, self._action_spec),
      )
      fake = {'canvas': history['observation']['canvas'][-1]}
      if self._conditional:
        fake['target'] = history['observation']['target'][-1]
      self._writer.create_item(replay.FAKES, priority=1.0, trajectory=fake)
      self._writer.end_episode(timeout_ms=600_000)
    self.episodes += len(self._envs)
    self.frames += len(self._envs) * (self._length - 1)
