"""`--role=discriminator`: a population's one D (SPIRAL++ §2.4), trained on every member's fakes.

With `--shared_discriminator` the population (spiral_tf/population/population.py) starts this role beside
its members, with `--discriminator_members` naming the members' Reverb servers. Each member's `fakes` table
is then a queue (spiral_tf/replay/tables.py: each render sampled once, the oldest dropped when full), and
this role takes a batch from each member that has one ready, in turn: every D update sees one member's
renders against real images (for a conditional D, the renders' own targets), so D sees every member's
fakes in the proportion they make them, and no replay. It publishes its weights, with its update count as
their step, to every member's `d_variables` table every `--weight_pull_seconds`; each member's learner
rewards with the latest it pulled and trains only its policy (spiral_tf/distributed/learner.py).

A member that is down (stopped for a PBT copy, restarting after a crash) is skipped and reconnected when
it is back; its learner waits for the weights again. The role checkpoints D, its optimizer and the count of
fakes trained on per member under its own run directory (PopulationDir.discriminator) every
`--checkpoint_every_minutes` and when stopped (SIGTERM/SIGINT), resumes from there, and writes its progress
to that directory's status.json ({'learner_step': D updates, 'frames': fakes trained on, 'scalars': D's
metrics and `fakes/member_<i>`}) and TensorBoard log.

Usage:
  shared = SharedDiscriminator(config, stop_event)   # config.discriminator_member_addresses: the members
  shared.run()                                        # until the stop event; checkpoints at the end
"""

import threading
import time

import numpy as np
import reverb
import tensorflow as tf
from tf_agents.experimental.distributed import reverb_variable_container

from spiral_tf import components
from spiral_tf import config as config_lib
from spiral_tf import dashboard
from spiral_tf import run_dir
from spiral_tf.distributed import console
from spiral_tf.distributed import summaries
from spiral_tf.replay import tables as replay

IDLE_WAIT_S = 0.05  # No member had a batch of fakes ready: wait this long before asking again.
RPC_TIMEOUT_S = 2


class _Member:
  """One member's Reverb server as this role sees it: a client, a weight pusher, whether it is up."""

  def __init__(self, address: str):
    self.address = address
    self.client = reverb.Client(address)
    self.pusher = None
    self.up = False

  def ready_fakes(self) -> int:
    """How many fakes this member's queue holds now (0 if its server does not answer)."""
    try:
      size = self.client.server_info(timeout=RPC_TIMEOUT_S)[replay.FAKES].current_size
    except (reverb.errors.ReverbError, RuntimeError, ValueError, KeyError):
      self._down()
      return 0
    self.up = True
    return size

  def reachable(self) -> bool:
    try:
      self.client.server_info(timeout=RPC_TIMEOUT_S)
    except (reverb.errors.ReverbError, RuntimeError, ValueError):
      self._down()
      return False
    self.up = True
    return True

  def sample(self, count: int) -> dict | None:
    """`count` fakes stacked ({'canvas': [count, W, W, C], and 'target'}), None if the server went away."""
    try:
      samples = list(
          self.client.sample(replay.FAKES, count, emit_timesteps=False, unpack_as_table_signature=True)
      )
    except (reverb.errors.ReverbError, RuntimeError, ValueError):
      self._down()
      return None
    return {k: np.stack([np.asarray(s.data[k]) for s in samples]) for k in samples[0].data}

  def push(self, step: int, variables) -> bool:
    """Publishes D to this member if its server answers now (a push to a server that is gone can wait for
    it indefinitely, which would hold up every other member and the stop)."""
    if not self.reachable():
      return False
    try:
      if self.pusher is None:
        self.pusher = reverb_variable_container.ReverbVariableContainer(
            self.address, table_names=[replay.D_VARIABLES]
        )
      self.pusher.push(
          {'learner_step': tf.constant(step, tf.int64), 'weights': variables}, replay.D_VARIABLES
      )
    except (reverb.errors.ReverbError, RuntimeError, ValueError, tf.errors.OpError):
      self._down()
      return False
    return True

  def _down(self):
    if self.up:
      console.say(f'[discriminator] member server {self.address} is gone; skipping it until it is back')
    self.up, self.pusher = False, None


class SharedDiscriminator:
  """Trains and publishes the population's D (module docstring)."""

  def __init__(self, config: config_lib.Config, stop: threading.Event | None = None):
    if not config.discriminator_member_addresses:
      raise config_lib.ConfigError(
          "--discriminator_members: --role=discriminator needs the members' Reverb servers (host:port,…)"
      )
    self.config = config
    self._stop = stop or threading.Event()
    self.members = [_Member(a) for a in config.discriminator_member_addresses]
    # The update owns D's optimizer and compiled D step; its policy half (and this agent) stay unused.
    agent = components.make_agent(config)
    self.discriminator = components.make_discriminator(config, config.precision)
    self.update = components.make_learner_update(
        config, agent, self.discriminator, tf.distribute.get_strategy(), train_discriminator=True
    )
    self.fakes_seen = tf.Variable(tf.zeros([len(self.members)], tf.int64), name='fakes_seen')
    self.checkpoint = tf.train.Checkpoint(
        discriminator=self.discriminator, d_optimizer=self.update.d_optimizer, fakes_seen=self.fakes_seen
    )
    self.dir = run_dir.RunDir(config.root_dir)
    self.manager = tf.train.CheckpointManager(self.checkpoint, self.dir.checkpoints, max_to_keep=3)
    self.restored_from = self.manager.latest_checkpoint
    if self.restored_from:
      self.checkpoint.restore(self.restored_from)
      self.update.d_optimizer.learning_rate = config.learner.d_learning_rate
    components.save_config(config, config.root_dir)
    self.writer = tf.summary.create_file_writer(dashboard.learner_log_dir(config.root_dir))

  @property
  def step(self) -> int:
    return int(self.update.num_d_updates.numpy())

  def _push_all(self) -> int:
    return sum(m.push(self.step, self.discriminator.variables) for m in self.members)

  def run(self) -> str:
    c, batch = self.config, self.config.batch_size
    where = f'resumed from {self.restored_from}' if self.restored_from else 'starting fresh'
    console.say(
        f'[discriminator] {where}: step {self.step}; D {self.discriminator.num_parameters():,} parameters; '
        f'training on the fakes of {len(self.members)} members ({", ".join(m.address for m in self.members)})'
    )
    reals = iter(components.real_dataset(c, batch))
    last_push = last_log = last_checkpoint = time.monotonic()
    self._push_all()  # Members' learners wait for the first weights.
    logged_step, metrics = self.step, {}
    while not self._stop.is_set():
      trained = False
      for i, member in enumerate(self.members):
        if self._stop.is_set() or member.ready_fakes() < batch:
          continue
        fakes = member.sample(batch)
        if fakes is None:
          continue
        metrics = self.update.d_step(next(reals), fakes)
        self.fakes_seen.assign_add(tf.one_hot(i, len(self.members), dtype=tf.int64) * batch)
        trained = True
      now = time.monotonic()
      if now - last_push >= c.weight_pull_seconds:
        self._push_all()
        last_push = now
      if metrics and self.step > logged_step and now - last_log >= c.log_every_seconds:
        self._log(metrics, (self.step - logged_step) / (now - last_log))
        last_log, logged_step = now, self.step
      if now - last_checkpoint >= 60 * c.checkpoint_every_minutes:
        self.manager.save(checkpoint_number=self.step)
        last_checkpoint = now
      if not trained:
        self._stop.wait(IDLE_WAIT_S)
    path = self.manager.save(checkpoint_number=self.step)  # Members stop too: no last push.
    if metrics:
      self._log(metrics, 0.0)
    self.writer.flush()
    console.say(f'[discriminator] stopped at step {self.step}: checkpoint {path}')
    return 'stop requested'

  def _log(self, metrics, steps_per_s):
    seen = self.fakes_seen.numpy()
    scalars = {k: float(v.numpy()) for k, v in metrics.items()}
    scalars.update({f'fakes/member_{i}': float(n) for i, n in enumerate(seen)})
    scalars['d_steps_per_s'] = steps_per_s
    summaries.write_scalars(self.writer, self.step, scalars)
    summaries.write_status(self.dir.status_file, self.step, int(seen.sum()), scalars)
    console.say(
        f'[discriminator] step {self.step}  {steps_per_s:.1f} updates/s  '
        f'D(real) {scalars["d_score_real"]:.3f}  D(fake) {scalars["d_score_fake"]:.3f}  fakes per member '
        + ' '.join(f'{int(n):,}' for n in seen)
    )
