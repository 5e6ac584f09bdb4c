"""Learning: batches of episodes from Reverb → V-trace on the policy, WGAN-GP on D → weights back.

The learner reads whole episodes (`queue`), replayed fakes (`fakes`) and real images through
`strategy.distribute_datasets_from_function` (Reverb ops run on the host CPU; a queue must not be
autosharded), runs the XLA-compiled update of spiral_tf/learner_step.py on every replica, pushes the new
weights to Reverb, logs to TensorBoard and the console, checkpoints every few minutes and at the end, and
resumes from `root_dir` when it finds a checkpoint there.

Usage:
  learner = Learner(config, stop_event)
  learner.run()          # until a stop condition (max frames / steps / minutes) or the stop event
"""
import os
import sys
import threading
import time

import numpy as np
import reverb
import tensorflow as tf
from tf_agents.experimental.distributed import reverb_variable_container

from spiral_tf import components
from spiral_tf import config as config_lib
from spiral_tf import export
from spiral_tf import replay
from spiral_tf import strategy as strategy_lib
from spiral_tf import summaries

# How long a dataset waits for actors before the learner logs that it is starved and retries.
DATA_TIMEOUT_MS = 30_000


class Learner:
  """Owns the networks, optimizers, datasets, checkpoints and logs of one learner."""

  def __init__(self, config: config_lib.Config, stop: threading.Event | None = None):
    self.config = config
    self._stop = stop or threading.Event()
    self.strategy = strategy_lib.make_strategy(config.strategy, config.num_cpu_replicas)
    self._address = config.reverb_address
    env = components.make_environment(config, images=_blank_targets(config))
    self._observation_spec = env.observation_spec()
    with self.strategy.scope():
      self.agent = components.make_agent(config, env)
      self.discriminator = components.make_discriminator(config)
      self.update = components.make_learner_update(config, self.agent, self.discriminator, self.strategy)
      self.learner_step = tf.Variable(0, dtype=tf.int64, name='learner_step')
      self.frames = tf.Variable(0, dtype=tf.int64, name='frames')
      self.checkpoint = tf.train.Checkpoint(
          agent=self.agent, discriminator=self.discriminator, policy_optimizer=self.update.policy_optimizer,
          d_optimizer=self.update.d_optimizer, learner_step=self.learner_step, frames=self.frames)
    self.checkpoint_dir = os.path.join(config.root_dir, 'checkpoints')
    self.manager = tf.train.CheckpointManager(self.checkpoint, self.checkpoint_dir, max_to_keep=3)
    self.restored_from = self.manager.restore_or_initialize()
    components.save_config(config, config.root_dir)
    self.log_dir = os.path.join(config.root_dir, 'tensorboard')
    self.writer = tf.summary.create_file_writer(self.log_dir)
    self._variables = reverb_variable_container.ReverbVariableContainer(
        self._address, table_names=[replay.POLICY_VARIABLES, replay.D_VARIABLES])

  # --- data ------------------------------------------------------------------------------------------

  def _datasets(self):
    per_replica = self.config.batch_size // self.strategy.num_replicas_in_sync
    address = self._address

    def from_table(table, context):
      del context
      dataset = reverb.TrajectoryDataset.from_table_signature(
          address, table, max_in_flight_samples_per_worker=2 * per_replica,
          rate_limiter_timeout_ms=DATA_TIMEOUT_MS, get_signature_timeout_secs=60)
      return dataset.map(lambda sample: sample.data).batch(per_replica, drop_remainder=True).prefetch(1)

    episodes = self.strategy.distribute_datasets_from_function(lambda c: from_table(replay.QUEUE, c))
    fakes = self.strategy.distribute_datasets_from_function(lambda c: from_table(replay.FAKES, c))
    reals = self.strategy.distribute_datasets_from_function(
        lambda c: components.real_dataset(self.config, per_replica))
    return iter(episodes), iter(fakes), iter(reals)

  def _push_weights(self):
    step = self.learner_step.read_value()
    self._variables.push({'learner_step': step, 'weights': self.agent.variables}, replay.POLICY_VARIABLES)
    self._variables.push({'learner_step': step, 'weights': self.discriminator.variables},
                         replay.D_VARIABLES)

  # --- the loop ----------------------------------------------------------------------------------------

  def _should_stop(self, start, frames0):
    c = self.config
    if self._stop.is_set():
      return 'stop requested'
    if c.max_learner_steps and int(self.learner_step.numpy()) >= c.max_learner_steps:
      return f'reached --max_learner_steps={c.max_learner_steps}'
    if c.max_frames and int(self.frames.numpy()) >= c.max_frames:
      return f'reached --max_frames={c.max_frames}'
    if c.max_minutes and time.monotonic() - start >= 60 * c.max_minutes:
      return f'reached --max_minutes={c.max_minutes}'
    del frames0
    return None

  def _eta(self, start, steps_done, frames_done):
    """Seconds to the nearest stop condition, from the rates of this session."""
    c, elapsed = self.config, time.monotonic() - start
    candidates = []
    if c.max_minutes:
      candidates.append(60 * c.max_minutes - elapsed)
    if c.max_learner_steps and steps_done:
      candidates.append((c.max_learner_steps - int(self.learner_step.numpy())) * elapsed / steps_done)
    if c.max_frames and frames_done:
      candidates.append((c.max_frames - int(self.frames.numpy())) * elapsed / frames_done)
    return max(0.0, min(candidates)) if candidates else None

  def run(self) -> str:
    c = self.config
    where = f'resumed from {self.restored_from}' if self.restored_from else 'starting fresh'
    print(f'[learner] {where}: step {int(self.learner_step.numpy())}, frames {int(self.frames.numpy())}; '
          f'agent {self.agent.num_parameters():,} parameters, D {self.discriminator.num_parameters():,}; '
          f'strategy {c.strategy} × {self.strategy.num_replicas_in_sync}', flush=True)
    self._push_weights()  # Actors start acting with these.
    episodes, fakes, reals = self._datasets()
    frames_per_step = c.batch_size * c.frames_per_episode
    start = last_log = last_checkpoint = time.monotonic()
    steps0, frames0 = int(self.learner_step.numpy()), int(self.frames.numpy())
    logged_steps, logged_frames, busy, waited = steps0, frames0, 0.0, 0.0
    reason = None
    while reason is None:
      reason = self._should_stop(start, frames0)
      if reason:
        break
      t0 = time.monotonic()
      try:
        batch = (next(episodes), next(fakes), next(reals))
      except (StopIteration, tf.errors.OutOfRangeError, tf.errors.DeadlineExceededError):
        print(f'[learner] no episodes from the actors for {DATA_TIMEOUT_MS / 1000:.0f} s; waiting',
              flush=True)
        episodes, fakes, reals = self._datasets()
        continue
      t1 = time.monotonic()
      metrics = self.update.step(batch[0], batch[2], batch[1])
      self.learner_step.assign_add(1)
      self.frames.assign_add(frames_per_step)
      self._push_weights()
      t2 = time.monotonic()
      waited, busy = waited + (t1 - t0), busy + (t2 - t1)
      step = int(self.learner_step.numpy())
      if step % c.image_summary_every_steps == 0 or step == steps0 + 1:
        summaries.write_images(self.writer, step, batch[0], self.strategy)
      now = time.monotonic()
      if now - last_log >= c.log_every_seconds or step == steps0 + 1:
        frames = int(self.frames.numpy())
        rates = {'frames_per_s': (frames - logged_frames) / (now - last_log),
                 'learner_steps_per_s': (step - logged_steps) / (now - last_log),
                 'busy_fraction': busy / max(busy + waited, 1e-9)}
        scalars = {k: float(v.numpy()) for k, v in metrics.items()}
        scalars.update(rates)
        scalars.update(self._table_sizes())
        # The learner step of the weights that acted: it grows as fresh weights reach the actors.
        scalars['acting_policy_step'] = float(np.mean(
            summaries.local_numpy(batch[0]['policy_step'], self.strategy)))
        scalars['policy_lag_steps'] = step - 1 - scalars['acting_policy_step']
        summaries.write_scalars(self.writer, step, scalars)
        summaries.print_progress(step, frames, scalars, self._eta(start, step - steps0, frames - frames0))
        last_log, logged_steps, logged_frames, busy, waited = now, step, frames, 0.0, 0.0
      if now - last_checkpoint >= 60 * c.checkpoint_every_minutes:
        self.save()
        last_checkpoint = now
    path = self.save()
    print(f'[learner] stopped: {reason}. Step {int(self.learner_step.numpy())}, '
          f'frames {int(self.frames.numpy())}.', flush=True)
    print(f'[learner] checkpoint: {path}\n[learner] SavedModel: '
          f'{components.export_dir(self.config.root_dir)}\n[learner] TensorBoard logs: {self.log_dir}  '
          f'(tensorboard --logdir {self.log_dir})', flush=True)
    return reason

  def _table_sizes(self):
    info = reverb.Client(self._address).server_info(timeout=5)
    return {'queue_size': info[replay.QUEUE].current_size, 'fakes_size': info[replay.FAKES].current_size}

  def save(self) -> str:
    """Checkpoint (to resume) and SavedModel export (to use) of the current step."""
    step, frames = int(self.learner_step.numpy()), int(self.frames.numpy())
    path = self.manager.save(checkpoint_number=step)
    export.export_saved_model(self.agent, self.config, components.export_dir(self.config.root_dir),
                              learner_step=step, frames=frames)
    self.writer.flush()
    return path


def _blank_targets(config):
  return np.full((1, config.canvas_width, config.canvas_width, config.channels), 255, np.uint8)


def run(config: config_lib.Config) -> int:
  from spiral_tf import roles  # pylint: disable=g-import-not-at-top
  stop = roles.stop_event()
  replay.wait_for_server(config.reverb_address, timeout_s=600)
  learner = Learner(config, stop)
  learner.run()
  learner.writer.close()
  sys.stdout.flush()
  sys.stderr.flush()
  # Everything is saved. Skip interpreter teardown: destroying Reverb dataset iterators waits for their
  # in-flight samples (up to DATA_TIMEOUT_MS) once the actors stop feeding the queue.
  os._exit(0)  # pylint: disable=protected-access
