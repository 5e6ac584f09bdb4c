"""Learning: batches of episodes from Reverb → V-trace on the policy, WGAN-GP on D → weights back.

The learner reads whole episodes (`queue`), replayed fakes (`fakes`) and real images through
`strategy.distribute_datasets_from_function` (Reverb ops run on the host CPU; a queue must not be
autosharded), runs the XLA-compiled update of spiral_tf/learning/learner_step.py on every replica, pushes the
new weights to Reverb, logs to TensorBoard and the console, checkpoints every few minutes and at the end, and
resumes from `root_dir` when it finds a checkpoint there (with the learning rates of the current flags, not
the ones Adam checkpointed). Each learner step is one policy update and `--d_steps_per_policy_step` D updates,
each D update on its own batch of real images and of fakes; the D optimizer's step count (TensorBoard
`d_steps`, checkpointed) is therefore learner steps × that ratio.

Robustness: an update whose metrics or weights come out NaN/Inf is undone (spiral_tf/learning/nonfinite.py)
and logged; after `--max_nonfinite_updates` in a row the learner stops (its process exits with code 3:
spiral_tf/distributed/roles.py) and checkpoints only the restored, finite state. If the Reverb server goes
away (restarted by the supervisor, or a link drops) the learner waits for it with backoff, recreates its
datasets and retries the weight push instead of crashing.

Several workers (`--strategy=multi_worker`, spiral_tf/learning/strategy.py `Workers`): every worker runs
this loop on its own share of the batch (its own episodes from the queue, its own real images) and the
update's all-reduce joins them. Only the chief writes: checkpoints, exports, TensorBoard logs, config.json,
weight pushes to Reverb; the others save each checkpoint to a temporary directory outside the run and delete
it (TensorFlow's pattern: every worker takes part in a save) and push nothing. Every worker resumes from the
chief's checkpoint in `--root_dir`. What only one worker sees — a stop signal, the chief's clock
(--max_minutes, checkpoint time), a Reverb error or a data timeout — is decided by one all-reduce at a fixed
point of every step (`Workers.any_of`), so all workers stop, save, skip or wait at the same step; a worker
that could not fetch its batch reconnects while the others keep theirs and wait for it.

A population member with `--shared_discriminator` trains only its policy: D's weights are those the
population's discriminator role publishes to this run's `d_variables` table (pulled in the background, as
an actor pulls the policy's; TensorBoard `shared_d_step` says which D update rewarded), its fakes go to that
role through the `fakes` queue, and this learner neither reads fakes nor pushes D.

Usage:
  learner = Learner(config, stop_event)
  reason = learner.run()   # until a stop condition (max frames / steps / minutes) or the stop event
  learner.stopped_by_nonfinite(reason)
The process around it (signals, the wait for Reverb, exit codes) is `--role=learner` in
spiral_tf/distributed/roles.py.
"""

import os
import shutil
import tempfile
import threading
import time

from absl import logging
import numpy as np
import reverb
import tensorflow as tf
from tf_agents.experimental.distributed import reverb_variable_container

from spiral_tf import components
from spiral_tf import config as config_lib
from spiral_tf import dashboard
from spiral_tf import run_dir
from spiral_tf.distributed import actor as actor_lib
from spiral_tf.distributed import console
from spiral_tf.distributed import startup
from spiral_tf.distributed import summaries
from spiral_tf.inference import export
from spiral_tf.learning import nonfinite
from spiral_tf.learning import strategy as strategy_lib
from spiral_tf.replay import tables as replay

# How long a dataset waits for actors before the learner logs that it is starved and retries.
DATA_TIMEOUT_MS = 30_000
# Errors of a Reverb server that is gone or restarting: wait for it and reconnect.
REVERB_ERRORS = (
    tf.errors.UnavailableError,
    tf.errors.DeadlineExceededError,
    tf.errors.CancelledError,
    tf.errors.AbortedError,
    tf.errors.InternalError,
    reverb.errors.ReverbError,
    RuntimeError,
)
RECONNECT_TIMEOUT_S = 600.0
# Test hook (fault injection through the real update): while the file this names exists, the fake canvases
# of each batch are multiplied by NaN (every D sees them, conditional or not).
POISON_FILE_ENV = 'SPIRAL_TEST_NONFINITE_FILE'
# The start of run()'s stop reason when --max_nonfinite_updates non-finite updates came in a row.
NONFINITE_STOP = '--max_nonfinite_updates'


class Learner:
  """Owns the networks, optimizers, datasets, checkpoints and logs of one learner."""

  def __init__(self, config: config_lib.Config, stop: threading.Event | None = None):
    self.config = config
    self._stop = stop or threading.Event()
    self.strategy = strategy_lib.make_strategy(config.strategy, config.num_cpu_replicas, tpu=config.tpu)
    # The flags know only --num_cpu_replicas; GPUs, workers and TPU cores count here.
    config_lib.check_replicas(config, self.strategy.num_replicas_in_sync)
    self.workers = strategy_lib.Workers(self.strategy)
    chief = self.workers.is_chief
    self._address = config.reverb_address
    with self.strategy.scope():
      self.agent = components.make_agent(config, config.precision)
      self.discriminator = components.make_discriminator(config, config.precision)
      self.update = components.make_learner_update(config, self.agent, self.discriminator, self.strategy)
      self.learner_step = tf.Variable(0, dtype=tf.int64, name='learner_step')
      self.frames = tf.Variable(0, dtype=tf.int64, name='frames')
      self.checkpoint = tf.train.Checkpoint(
          agent=self.agent,
          discriminator=self.discriminator,
          policy_optimizer=self.update.policy_optimizer,
          d_optimizer=self.update.d_optimizer,
          reward_normaliser=self.update.normaliser,
          learner_step=self.learner_step,
          frames=self.frames,
      )
    self.checkpoint_dir = run_dir.RunDir(config.root_dir).checkpoints
    # Every worker saves, the chief into the run and the others where nothing is kept (module docstring).
    self._save_dir = (
        self.checkpoint_dir
        if chief
        else tempfile.mkdtemp(prefix=f'spiral_learner_{self.workers.task.replace(":", "_")}_')
    )
    self.manager = tf.train.CheckpointManager(self.checkpoint, self._save_dir, max_to_keep=3)
    self.restored_from = tf.train.latest_checkpoint(self.checkpoint_dir)  # The chief's, on every worker.
    if self.restored_from:
      self.checkpoint.restore(self.restored_from)
      self._learning_rates_from_flags()
    self._check_same_start()
    self.log_dir = dashboard.learner_log_dir(config.root_dir)
    if chief:
      components.save_config(config, config.root_dir)
      self.writer = tf.summary.create_file_writer(self.log_dir)
      dashboard.write_layout(self.writer, int(self.learner_step.numpy()))  # The Custom Scalars tab.
    else:
      self.writer = tf.summary.create_noop_writer()
    self._variables = self._variable_container() if chief else None
    self.guard = nonfinite.NonFiniteGuard(
        [
            *self.agent.variables,
            *self.discriminator.variables,
            *self.update.policy_optimizer.variables,
            *self.update.d_optimizer.variables,
            *self.update.normaliser.variables,
        ],
        max_in_a_row=config.max_nonfinite_updates,
    )
    self._poison_file = os.environ.get(POISON_FILE_ENV)
    # The learner role replaces it with one that prints lines until the first steps are done.
    self.heartbeat = startup.Heartbeat.disabled()

  def _learning_rates_from_flags(self):
    """Keras's Adam checkpoints its learning rate; a resumed run takes the current flags' instead."""
    c = self.config
    for what, optimizer, flag_value in (
        (
            'policy',
            self.update.policy_optimizer,
            decayed_learning_rate(
                c.learner.policy_learning_rate,
                c.policy_learning_rate_decay,
                int(self.frames.numpy()),
                c.max_frames,
            ),
        ),
        ('D', self.update.d_optimizer, c.learner.d_learning_rate),
    ):
      restored = np.float32(optimizer.learning_rate.numpy())
      optimizer.learning_rate = flag_value
      # A decayed rate moves a little every step: only a change of the schedule itself is news.
      tolerance = 0.01 if what == 'policy' and c.policy_learning_rate_decay != 'none' else 0.0
      if not np.isclose(restored, np.float32(flag_value), rtol=tolerance, atol=0):
        console.say(
            f'[learner] {what} learning rate {_short(restored)} → {_short(flag_value)} ' '(from the flags)'
        )

  def _check_same_start(self):
    """Every worker must have restored the chief's step: a worker that cannot read the chief's --root_dir
    would otherwise train from other weights (and push its updates into everybody's)."""
    step = int(self.learner_step.numpy())
    chief_step = int(self.workers.broadcast_from_chief(step))
    if chief_step != step:
      raise config_lib.ConfigError(
          f'--root_dir: learner worker {self.workers.task} resumed at step {step} but the chief at step '
          f"{chief_step}: every worker must read the chief's {self.checkpoint_dir} (a shared file system)"
      )

  def _variable_container(self):
    return reverb_variable_container.ReverbVariableContainer(
        self._address, table_names=[replay.POLICY_VARIABLES, replay.D_VARIABLES]
    )

  def _reconnect(self, error):
    """Waits (with backoff) for the Reverb server, then rebuilds the connections; returns the datasets."""
    logging.warning(
        '[learner] Reverb at %s unavailable (%s: %s); reconnecting',
        self._address,
        type(error).__name__,
        str(error).splitlines()[0] if str(error) else '',
    )
    deadline, delay = time.monotonic() + RECONNECT_TIMEOUT_S, 1.0
    while True:
      if self._stop.is_set():
        return None
      try:
        replay.wait_for_server(self._address, timeout_s=delay)
        if self.workers.is_chief:
          self._variables = self._variable_container()
          self._push_weights()  # The restarted server's variable tables are empty.
        datasets = self._datasets()
        logging.info('[learner] reconnected to Reverb')
        return datasets
      except (TimeoutError, KeyError, *REVERB_ERRORS) as e:
        if time.monotonic() > deadline:
          raise TimeoutError(f'Reverb at {self._address} unreachable for {RECONNECT_TIMEOUT_S:.0f} s') from e
        logging.warning('[learner] Reverb still unavailable; retrying in %.0f s', delay)
        self._stop.wait(delay)
        delay = min(2 * delay, 30.0)

  # --- data ------------------------------------------------------------------------------------------

  def _datasets(self):
    per_replica = self.config.batch_size // self.strategy.num_replicas_in_sync
    address = self._address

    def from_table(table, context):
      del context
      dataset = reverb.TrajectoryDataset.from_table_signature(
          address,
          table,
          max_in_flight_samples_per_worker=2 * per_replica,
          rate_limiter_timeout_ms=DATA_TIMEOUT_MS,
          get_signature_timeout_secs=60,
      )
      return dataset.map(lambda sample: sample.data).batch(per_replica, drop_remainder=True).prefetch(1)

    episodes = self.strategy.distribute_datasets_from_function(lambda c: from_table(replay.QUEUE, c))
    fakes = (  # A shared D's fakes are the discriminator role's to sample (the table is its queue).
        None
        if self.config.shared_discriminator
        else self.strategy.distribute_datasets_from_function(lambda c: from_table(replay.FAKES, c))
    )
    # Each worker (input pipeline) its own real images: the same seed would give every worker the same.
    reals = self.strategy.distribute_datasets_from_function(
        lambda c: components.real_dataset(self.config, per_replica, worker=c.input_pipeline_id)
    )
    return iter(episodes), None if fakes is None else iter(fakes), iter(reals)

  def _push_weights(self):
    if not self.workers.is_chief:
      return  # The chief's weights are everybody's (mirrored).
    step = self.learner_step.read_value()
    self._variables.push({'learner_step': step, 'weights': self.agent.variables}, replay.POLICY_VARIABLES)
    if not self.config.shared_discriminator:  # A shared D's weights are its role's to publish.
      self._variables.push(
          {'learner_step': step, 'weights': self.discriminator.variables}, replay.D_VARIABLES
      )

  # --- the loop ----------------------------------------------------------------------------------------

  def _limit_reached(self):
    """Steps and frames: counters every worker holds alike, so each decides this alone."""
    c = self.config
    if c.max_learner_steps and int(self.learner_step.numpy()) >= c.max_learner_steps:
      return f'reached --max_learner_steps={c.max_learner_steps}'
    if c.max_frames and int(self.frames.numpy()) >= c.max_frames:
      return f'reached --max_frames={c.max_frames}'
    return None

  def _out_of_time(self, start):
    """--max_minutes by the chief's clock (the workers' clocks are their own)."""
    c = self.config
    return bool(self.workers.is_chief and c.max_minutes and time.monotonic() - start >= 60 * c.max_minutes)

  def _stop_reason(self, start):
    if self._stop.is_set():
      return 'stop requested'
    if self._out_of_time(start):
      return f'reached --max_minutes={self.config.max_minutes}'
    return 'stop requested by another learner worker'

  def _next_batches(self, episodes, fakes, reals):
    """This worker's batches of one step, or (None, the error) when its data or Reverb is not there."""
    try:
      if fakes is None:  # A shared D (the update takes no D batches).
        return ((next(episodes), None, next(reals)), []), None
      batch = (next(episodes), next(fakes), next(reals))
      extra_d_batches = [
          (next(reals), next(fakes)) for _ in range(self.config.learner.d_steps_per_policy_step - 1)
      ]
    except (StopIteration, tf.errors.OutOfRangeError, tf.errors.DeadlineExceededError) as e:
      return None, e
    except REVERB_ERRORS as e:
      return None, e
    return (batch, extra_d_batches), None

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
    console.say(
        f'[learner] {where}: step {int(self.learner_step.numpy())}, '
        f'frames {int(self.frames.numpy())}; agent {self.agent.num_parameters():,} parameters, '
        f'D {self.discriminator.num_parameters():,}; '
        f'strategy {c.strategy} × {self.strategy.num_replicas_in_sync}'
    )
    self.heartbeat.waiting(self._address)  # Until the first batch (the datasets load the real images).
    self._push_weights()  # Actors start acting with these.
    shared_d = self._shared_discriminator()
    episodes, fakes, reals = self._datasets()
    frames_per_step = c.batch_size * c.frames_per_episode
    start = last_log = last_checkpoint = time.monotonic()
    steps0, frames0 = int(self.learner_step.numpy()), int(self.frames.numpy())
    logged_steps, logged_frames, busy, waited = steps0, frames0, 0.0, 0.0
    reason, pending = None, None
    chief = self.workers.is_chief
    saved_at = steps0  # The learner step of the last checkpoint (this start's first is the restored one).
    scalars = {}
    while reason is None:
      reason = self._limit_reached()
      if reason:
        break
      # One vote of every worker per step (no-op with one worker): any worker's stop signal, the chief's
      # clock for --max_minutes and for checkpoints.
      now = time.monotonic()
      stop, checkpoint_due = self.workers.any_of(
          self._stop.is_set() or self._out_of_time(start),
          chief and now - last_checkpoint >= 60 * c.checkpoint_every_minutes,
      )
      if stop:
        reason = self._stop_reason(start)
        break
      # In a population a checkpoint at every PBT interval (the same step on every worker): what a PBT
      # round copies is then the member's weights at the round's step, not those of minutes before.
      step = int(self.learner_step.numpy())
      pbt_due = c.pbt_interval_steps > 0 and step % c.pbt_interval_steps == 0 and step != saved_at
      if checkpoint_due or pbt_due:
        self.save()
        last_checkpoint, saved_at = now, step
      t0 = time.monotonic()
      error = None
      if pending is None:  # A worker keeps the batch it got while another one waited for its own.
        pending, error = self._next_batches(episodes, fakes, reals)
      if self.workers.any_of(error is not None)[0]:
        if isinstance(error, (StopIteration, tf.errors.OutOfRangeError, tf.errors.DeadlineExceededError)):
          console.say(f'[learner] no episodes from the actors for {DATA_TIMEOUT_MS / 1000:.0f} s; waiting')
          episodes, fakes, reals = self._reconnect_if_down(self._datasets) or (episodes, fakes, reals)
        elif error is not None:
          episodes, fakes, reals = self._reconnect(error) or (episodes, fakes, reals)
        continue
      (batch, extra_d_batches), pending = pending, None
      t1 = time.monotonic()
      if c.policy_learning_rate_decay != 'none':
        self.update.policy_optimizer.learning_rate = decayed_learning_rate(
            c.learner.policy_learning_rate,
            c.policy_learning_rate_decay,
            int(self.frames.numpy()),
            c.max_frames,
        )
      if shared_d is not None:
        shared_d.maybe_update()
      self.heartbeat.updating()
      self.guard.snapshot()
      # The guard covers the whole step: a non-finite D-only update undoes the policy update with it.
      metrics = self.update.step(
          batch[0],
          batch[2],
          self._maybe_poison(batch[1]),
          [(real, self._maybe_poison(fake)) for real, fake in extra_d_batches],
      )
      if not self.guard.accept(metrics):
        reason = self._skipped_update(metrics)
        continue
      self.learner_step.assign_add(1)
      self.frames.assign_add(frames_per_step)
      try:
        self._push_weights()
      except REVERB_ERRORS as e:
        episodes, fakes, reals = self._reconnect(e) or (episodes, fakes, reals)
      t2 = time.monotonic()
      self.heartbeat.stepped(t2 - t1)
      waited, busy = waited + (t1 - t0), busy + (t2 - t1)
      step = int(self.learner_step.numpy())
      if chief and (step % c.image_summary_every_steps == 0 or step == steps0 + 1):
        summaries.write_images(self.writer, step, batch[0], self.strategy)
      now = time.monotonic()
      if now - last_log >= c.log_every_seconds or step == steps0 + 1:
        frames = int(self.frames.numpy())
        rates = {
            'frames_per_s': (frames - logged_frames) / (now - last_log),
            'learner_steps_per_s': (step - logged_steps) / (now - last_log),
            'busy_fraction': busy / max(busy + waited, 1e-9),
        }
        scalars = {k: float(v.numpy()) for k, v in metrics.items()}
        scalars['d_steps'] = float(self.update.num_d_updates.numpy())
        scalars['policy_learning_rate'] = float(self.update.policy_optimizer.learning_rate.numpy())
        scalars['entropy_cost'] = c.learner.entropy_cost  # A population member's changes at a PBT copy.
        if shared_d is not None:
          scalars['shared_d_step'] = float(shared_d.learner_step)
        scalars.update(rates)
        scalars.update(self._table_sizes() if chief else {})
        # The learner step of the weights that acted: it grows as fresh weights reach the actors.
        scalars['acting_policy_step'] = float(
            np.mean(summaries.local_numpy(batch[0]['policy_step'], self.strategy))
        )
        scalars['policy_lag_steps'] = step - 1 - scalars['acting_policy_step']
        summaries.write_scalars(self.writer, step, scalars)
        summaries.print_progress(step, frames, scalars, self._eta(start, step - steps0, frames - frames0))
        if chief:
          summaries.write_status(run_dir.RunDir(c.root_dir).status_file, step, frames, scalars)
        last_log, logged_steps, logged_frames, busy, waited = now, step, frames, 0.0, 0.0
    self.heartbeat.stop()
    if shared_d is not None:
      shared_d.stop()
    if self.stopped_by_nonfinite(reason) and not self.guard.variables_finite():
      # Never overwrite a good checkpoint with broken weights.
      path = tf.train.latest_checkpoint(self.checkpoint_dir)
    else:
      path = self.save()
    console.say(
        f'[learner] stopped: {reason}. Step {int(self.learner_step.numpy())}, '
        f'frames {int(self.frames.numpy())}.'
    )
    if chief:  # The final step (with the last logged scalars), also for a run that resumed at its limit.
      summaries.write_status(
          run_dir.RunDir(c.root_dir).status_file,
          int(self.learner_step.numpy()),
          int(self.frames.numpy()),
          scalars,
      )
    if not chief:
      console.say(
          f'[learner] {self.workers.task} of {self.workers.num_workers} learner workers: the chief '
          'wrote the checkpoint, the export and the logs'
      )
    else:
      console.say(
          f'[learner] checkpoint: {path}\n[learner] SavedModel: '
          f'{components.export_dir(self.config.root_dir)}\n[learner] TensorBoard logs: '
          f'{dashboard.log_dir(self.config.root_dir)}  (make tensorboard RUN={self.config.root_dir})'
      )
    # Kept alive past the return: destroying a Reverb dataset iterator waits for its in-flight samples
    # (minutes on a busy host); the learner role (spiral_tf/distributed/roles.py) ends the process without
    # destroying them.
    self._iterators_at_stop = (episodes, fakes, reals)
    return reason

  def _shared_discriminator(self):
    """With --shared_discriminator: the puller of the published D weights, once they exist; else None."""
    if not self.config.shared_discriminator:
      return None
    console.say(f"[learner] waiting for the shared discriminator's weights ({self._address} d_variables)")
    puller = actor_lib.WeightPuller(
        self._address,
        self.discriminator.variables,
        self.config.weight_pull_seconds,
        timeout_s=RECONNECT_TIMEOUT_S,
        table=replay.D_VARIABLES,
    )
    console.say(f'[learner] rewarding with the shared discriminator of its step {puller.learner_step}')
    return puller

  @staticmethod
  def stopped_by_nonfinite(reason: str) -> bool:
    """Whether run()'s stop reason is --max_nonfinite_updates (the learner role then exits with 3)."""
    return reason.startswith(NONFINITE_STOP)

  def _reconnect_if_down(self, make_datasets):
    try:
      return make_datasets()
    except REVERB_ERRORS as e:
      return self._reconnect(e)

  def _maybe_poison(self, fakes):
    if fakes is not None and self._poison_file and os.path.exists(self._poison_file):
      return self.strategy.run(lambda f: dict(f, canvas=f['canvas'] * float('nan')), args=(fakes,))
    return fakes

  def _skipped_update(self, metrics):
    """Logs an undone non-finite update; returns the stop reason once too many came in a row."""
    g, step = self.guard, int(self.learner_step.numpy())
    console.say(
        f'[learner] skipped a non-finite update at step {step} (non-finite: '
        f'{", ".join(g.bad_metrics(metrics)) or "weights"}); weights and optimizer restored; '
        f'{g.in_a_row} in a row (stop at --max_nonfinite_updates={g.max_in_a_row})'
    )
    summaries.write_scalars(self.writer, step, {'nonfinite_updates_skipped': float(g.skipped)})
    if g.exhausted:
      return (
          f'{NONFINITE_STOP}={g.max_in_a_row}: {g.in_a_row} non-finite updates in a row '
          f'(the checkpoint keeps the last good weights)'
      )
    return None

  def _table_sizes(self):
    try:
      info = reverb.Client(self._address).server_info(timeout=5)
    except REVERB_ERRORS:
      return {}  # Reconnecting; the next interval reports them.
    return {'queue_size': info[replay.QUEUE].current_size, 'fakes_size': info[replay.FAKES].current_size}

  def save(self) -> str | None:
    """Checkpoint (to resume) and SavedModel export (to use) of the current step; the chief's path.

    Every worker must call this at the same step; only the chief's checkpoint stays and only it exports.
    """
    step, frames = int(self.learner_step.numpy()), int(self.frames.numpy())
    path = self.manager.save(checkpoint_number=step)
    if not self.workers.is_chief:
      shutil.rmtree(self._save_dir, ignore_errors=True)
      return None
    export.export_saved_model(
        self.agent, self.config, components.export_dir(self.config.root_dir), learner_step=step, frames=frames
    )
    self.writer.flush()
    return path


def decayed_learning_rate(base: float, decay: str, frames: int, max_frames: int) -> float:
  """The policy learning rate for the update that follows `frames` frames (config.LEARNING_RATE_DECAYS)."""
  if decay == 'none':
    return base
  if decay == 'linear':
    return base * max(0.0, 1.0 - frames / max_frames)
  raise ValueError(f'--policy_learning_rate_decay={decay!r} is not one of {config_lib.LEARNING_RATE_DECAYS}')


def _short(rate) -> str:
  """1e-4, 3e-4, 2.5e-5: the shortest float32 spelling."""
  return np.format_float_scientific(np.float32(rate), trim='-', exp_digits=1)
