"""One learner update of the policy + critic (V-trace) and of D, compilable with XLA, under any strategy.

From a batch of whole episodes (spiral_tf/replay/trajectory.py, batch-major [B, L, ...] as Reverb yields them)
and a batch of real images [B, W, W, C]:
  1. rewards with the *current* D (before its update), stopped from the gradient:
       spiral    D(final canvas) at the last action
       spiral++  D(c_{t+1}) − D(c_t) at every action (γ = `discount`)
       l2        −mean over pixels of (final − target)² at the last action
     plus the optional auxiliary penalties (rewards.py): `stroke_penalty` per new disjoint stroke,
     `blank_penalty` when the final canvas shows nothing; then normalised by running statistics of the
     episode returns (`reward_normalisation`, spiral_tf/learning/normalisation.py; the statistics are
     checkpointed with the learner).
  2. policy + critic: teacher-forced unroll, sub-actions masked by their effect, V-trace actor-critic loss
     (`algorithm='a2c'`: importance weights 1, i.e. the on-policy special case).
     Discount γ between MID steps, 0 into LAST (bootstrap value 0 at the episode's end). The policy
     gradients are clipped to a global norm of `max_gradient_norm` (summed over replicas first).
  3. D: WGAN-GP (gradient penalty by a nested GradientTape) or SN-GAN, on real images vs `fakes` (by
     default the episodes' final canvases; the training loop passes renders sampled from the fakes replay).
     Conditional D sees (image, target) pairs: fakes (render, t), real (t, t) with t the fake's own
     target, so D judges reconstructions of the same targets rather than unrelated pairs.
  4. Adam (β1 = 0.5, β2 = 0.999, ε = 1e-8) on both, slots built in the strategy scope.

Metrics: the losses, D's scores, and `diagnostics/…` — return and reward scales (raw and normalised), the
normaliser's μ and σ, advantage std, explained variance of V, fraction of clipped ρ, entropy per
sub-action, policy and D gradient norms, D's gradient norm at the penalty's interpolates, fraction of
paint actions, and the spread of the LSTM output across the batch (≈ 0: the policy ignores its input).

A policy step comes with `d_steps_per_policy_step` = k D updates (WGAN's n_critic): `step` first runs
k − 1 D-only updates (`d_update`: the same loss and optimizer, on extra real batches against extra fake
batches), then the combined update above, whose rewards therefore come from the D of that moment. The D
metrics it returns are averaged over the k D updates, so a NaN in any of them shows.

The random inputs of an update (the penalty's ε, the complement mask's half) are drawn outside the compiled
function, so `update` is a pure function of its arguments and the variables.

The settings are `Config.learner` (spiral_tf/config.py: LearnerConfig, checked when built); `conditional`
says whether the run's D sees (image, target) pairs, as `--d_conditioning` lays them out.

Usage:
  with strategy.scope():
    agent, d = Agent(...), Discriminator(...)
  update = LearnerUpdate(agent, d, config.learner, strategy, conditional=config.conditional)
  metrics = update.step(trajectories, real_images)      # per-replica values under a multi-replica strategy
  # With LearnerConfig(d_steps_per_policy_step=3): two more (real images, fakes) batches for D.
  metrics = update.step(trajectories, real_images, fakes, extra_d_batches=[(real2, fake2), (real3, fake3)])
"""

from typing import Optional

import dm_env
import tensorflow as tf

from spiral_tf import config as config_lib
from spiral_tf.learning import losses
from spiral_tf.learning import normalisation
from spiral_tf.learning import rewards as rewards_lib
from spiral_tf.networks import discriminator as d_lib

# The metrics of a D update (averaged over the D updates of a step) and their keys in the D loss dicts.
D_METRICS = {
    'd_loss': 'loss',
    'd_loss_real': 'loss_real',
    'd_loss_fake': 'loss_fake',
    'gradient_penalty': 'gradient_penalty',
    'd_score_real': 'score_real',
    'd_score_fake': 'score_fake',
    'diagnostics/d_grad_norm_interpolates': 'interpolate_grad_norm',
    'diagnostics/d_grad_norm': 'grad_norm',
}


# A ρ counts as clipped in the diagnostics when log ρ exceeds log(clip_rho) by more than this.
CLIPPED_RHO_TOLERANCE = 1e-5


def time_major(x):
  """[B, T, ...] → [T, B, ...]."""
  x = tf.convert_to_tensor(x)
  return tf.transpose(x, [1, 0] + list(range(2, x.shape.rank)))


def _adam(learning_rate):
  return tf.keras.optimizers.Adam(learning_rate, beta_1=0.5, beta_2=0.999, epsilon=1e-8)


class LearnerUpdate(tf.Module):
  """Owns the optimizers and the compiled update of an agent and a discriminator.

  (The training loop around it, datasets, checkpoints and logs, is spiral_tf/distributed/learner.py.)
  """

  def __init__(
      self,
      agent,
      discriminator,
      config: config_lib.LearnerConfig,
      strategy: Optional[tf.distribute.Strategy] = None,
      *,
      conditional: bool = False,
      jit_compile: bool = True,
      seed: int = 0,
      train_discriminator: bool = True,
      name: str = 'learner_update',
  ):
    super().__init__(name=name)
    self.agent, self.discriminator, self.config = agent, discriminator, config
    # False: D's weights come from elsewhere (a population's shared D): the update rewards with them and
    # reports D's metrics on this batch, but applies no D gradient and takes no extra D batches.
    self.train_discriminator = train_discriminator
    # D's input layout (discriminator.py): an unconditional D sees the image alone.
    self.conditioning = config.d_conditioning if conditional else 'none'
    self._strategy = strategy or tf.distribute.get_strategy()
    self._num_replicas = self._strategy.num_replicas_in_sync
    with self._strategy.scope():
      self.policy_optimizer = _adam(config.policy_learning_rate)
      self.d_optimizer = _adam(config.d_learning_rate)
      self.policy_optimizer.build(agent.trainable_variables)
      self.d_optimizer.build(discriminator.trainable_variables)
      self._rng = tf.random.Generator.from_seed(seed)
      self.normaliser = normalisation.ReturnNormaliser(
          config.reward_normalisation, config.reward_normalisation_decay
      )
    # autograph=False: the update's Python control flow is over static values only (shapes, the config;
    # tensor-dependent branches are tf.cond / tf.where already), and AutoGraph's source conversion of every
    # function it calls was half the trace time (smoke config: 15.6 → 7.7 s), paid at every learner start.
    if self._num_replicas == 1:
      self._update_fn = tf.function(self.update, jit_compile=jit_compile, autograph=False)
      self._d_update_fn = tf.function(self.d_update, jit_compile=jit_compile, autograph=False)
    else:  # merge_call (the gradient all-reduce) cannot live inside an XLA cluster.
      gradients = tf.function(self.gradients, jit_compile=jit_compile, autograph=False)
      d_gradients = tf.function(self.d_gradients, jit_compile=jit_compile, autograph=False)
      self._update_fn = lambda *args: self._apply(*gradients(*args))
      self._d_update_fn = lambda *args: self._apply_d(*d_gradients(*args))
    self._step_fn = tf.function(self._distributed_step, autograph=False)
    self._d_step_fn = tf.function(self._distributed_d_step, autograph=False)

  @property
  def num_updates(self):
    return self.policy_optimizer.iterations

  @property
  def num_d_updates(self):
    return self.d_optimizer.iterations

  def step(self, trajectories, real_images, fakes=None, extra_d_batches=()) -> dict:
    """One policy update and `d_steps_per_policy_step` D updates from (per-replica) batches.

    Args:
      trajectories, real_images, fakes: the batches of the combined update (`update`).
      extra_d_batches: d_steps_per_policy_step − 1 pairs (real_images, fakes) for the D-only updates,
        which run first.
    Returns:
      Scalar metrics averaged over replicas; the D metrics (D_METRICS) also over the step's D updates.
    """
    extra_d_batches = list(extra_d_batches)
    want = self.config.d_steps_per_policy_step - 1 if self.train_discriminator else 0
    if len(extra_d_batches) != want:
      raise ValueError(
          f'd_steps_per_policy_step={self.config.d_steps_per_policy_step} needs {want} extra '
          f'(real_images, fakes) batches for D, got {len(extra_d_batches)}'
      )
    d_metrics = [self.d_step(real, fake) for real, fake in extra_d_batches]
    metrics = self._step_fn(trajectories, real_images, fakes)
    for key in D_METRICS if d_metrics else ():
      metrics[key] = tf.add_n([metrics[key]] + [m[key] for m in d_metrics]) / (len(d_metrics) + 1)
    return metrics

  def d_step(self, real_images, fakes) -> dict:
    """One D-only update from (per-replica) batches; returns its D_METRICS averaged over replicas."""
    return self._d_step_fn(real_images, fakes)

  def update(self, trajectories, real_images, fakes, noise) -> dict:
    """The whole update on one replica's batch with given noise {'epsilon': [B], 'half': int32 [B]}."""
    return self._apply(*self.gradients(trajectories, real_images, fakes, noise))

  def d_update(self, real_images, fakes, noise) -> dict:
    """The D-only update on one replica's batch with given noise (see `update`)."""
    return self._apply_d(*self.d_gradients(real_images, fakes, noise))

  def draw_noise(self, batch_size) -> dict:
    return {
        'epsilon': self._rng.uniform([batch_size]),
        'half': self._rng.uniform([batch_size], 0, 4, dtype=tf.int32),
    }

  # --- internals -------------------------------------------------------------------------------------

  def _distributed_step(self, trajectories, real_images, fakes):
    def replica_step(trajectories, real_images, fakes):
      noise = self.draw_noise(tf.shape(real_images)[0])
      return self._update_fn(trajectories, real_images, fakes, noise)

    return self._mean_over_replicas(self._strategy.run(replica_step, args=(trajectories, real_images, fakes)))

  def _distributed_d_step(self, real_images, fakes):
    def replica_step(real_images, fakes):
      noise = self.draw_noise(tf.shape(real_images)[0])
      return self._d_update_fn(real_images, fakes, noise)

    return self._mean_over_replicas(self._strategy.run(replica_step, args=(real_images, fakes)))

  def _mean_over_replicas(self, per_replica):
    return {
        k: self._strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for k, v in per_replica.items()
    }

  def _apply(self, policy_grads, d_grads, metrics, normaliser_state):
    many = self._num_replicas > 1
    if many:  # Sum the replicas' gradients here (not in the optimizer), so the clipping sees the total.
      policy_grads = tf.distribute.get_replica_context().all_reduce(
          tf.distribute.ReduceOp.SUM, list(policy_grads)
      )
    norm = tf.linalg.global_norm(policy_grads)
    if self.config.max_gradient_norm:
      policy_grads, _ = tf.clip_by_global_norm(policy_grads, self.config.max_gradient_norm, use_norm=norm)
    self.policy_optimizer.apply_gradients(
        zip(policy_grads, self.agent.trainable_variables), skip_gradients_aggregation=many
    )
    self.normaliser.assign(normalisation.NormaliserState(*normaliser_state))
    return self._apply_d(d_grads, dict(metrics, **{'diagnostics/policy_grad_norm': norm}))

  def _apply_d(self, d_grads, metrics):
    if self.train_discriminator:
      self.d_optimizer.apply_gradients(zip(d_grads, self.discriminator.trainable_variables))
    return metrics

  def _d_input(self, images, targets, half):
    return d_lib.pair_inputs(images, targets, self.conditioning, half)

  def _scores(self, images, targets, half):
    """What the agent is paid for `images` by the current D (no gradient, no power-iteration step)."""
    scores = self.discriminator(self._d_input(images, targets, half), training=False)
    return tf.stop_gradient(d_lib.reward_score(scores, self.config.d_loss))

  def _rewards(self, step_type, observation, action, half):
    config = self.config
    canvases = observation['canvas']  # [L, B, W, W, C]
    length = canvases.shape[0]
    targets = observation.get('target')
    if targets is None and (self.conditioning != 'none' or config.reward == 'l2'):
      raise ValueError(
          f'conditioning={self.conditioning!r} / reward={config.reward!r} need a `target` '
          'observation in the trajectories'
      )
    final_target = None if targets is None else targets[-1]
    if config.reward == 'spiral':
      rewards = rewards_lib.final_step(self._scores(canvases[-1], final_target, half), length)
    elif config.reward == 'spiral++':
      merge = lambda x: tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], 0))
      all_targets = None if targets is None else merge(targets)
      halves = tf.reshape(tf.tile(half[None], [length, 1]), [-1])
      scores = tf.reshape(self._scores(merge(canvases), all_targets, halves), [length, -1])
      rewards = rewards_lib.differences(scores)
    else:
      rewards = rewards_lib.final_step(-rewards_lib.l2_distance(canvases[-1], final_target), length)
    if config.stroke_penalty:
      if 'flag' not in action:
        raise ValueError(
            'stroke_penalty needs a `flag` sub-action (the painter); this spec has ' f'{sorted(action)}'
        )
      rewards += rewards_lib.new_stroke_penalty(action['flag'], config.stroke_penalty)
    if config.blank_penalty:
      rewards += rewards_lib.blank_penalty(
          canvases[0], canvases[-1], config.blank_penalty, length, config.blank_threshold
      )
    return rewards

  def gradients(self, trajectories, real_images, fakes, noise):
    """(policy gradients, D gradients, metrics) of one replica's batch."""
    config = self.config
    step_type = time_major(tf.convert_to_tensor(trajectories['step_type']))
    observation = tf.nest.map_structure(time_major, dict(trajectories['observation']))
    action = {k: time_major(v) for k, v in trajectories['action'].items()}
    behaviour = {k: time_major(v) for k, v in trajectories['behaviour_log_prob'].items()}
    core_state = trajectories['core_state']
    real_images = tf.convert_to_tensor(real_images, tf.float32)
    if real_images.shape[1:] != observation['canvas'].shape[2:]:
      raise ValueError(
          f'real images {real_images.shape} do not match canvases '
          f'{observation["canvas"].shape[2:]} (per example)'
      )
    half = noise['half']

    raw_rewards = self._rewards(step_type, observation, action, half)
    rewards = self.normaliser.apply(raw_rewards, self.normaliser.state)
    not_last = tf.cast(tf.not_equal(step_type[1:], int(dm_env.StepType.LAST)), tf.float32)
    discounts = config.effective_discount * not_last

    mask = losses.effect_mask(observation['action_mask'])
    with tf.GradientTape() as tape:
      unrolled = self.agent.unroll(step_type, observation, action, core_state)
      log_prob = losses.masked_sum(unrolled.log_prob, mask)[:-1]
      behaviour_log_prob = (
          losses.masked_sum(behaviour, mask)[:-1]
          if config.algorithm == 'vtrace'
          else tf.stop_gradient(log_prob)
      )
      ac = losses.actor_critic_loss(
          log_prob,
          behaviour_log_prob,
          losses.masked_sum(unrolled.entropy, mask)[:-1],
          unrolled.value[:-1],
          unrolled.value[-1],
          rewards,
          discounts,
          config.entropy_cost,
          config.baseline_cost,
          config.clip_rho,
          config.clip_pg_rho,
          config.clip_c,
      )
      # Replica gradients are summed by the all-reduce.
      policy_loss = ac.total / self._num_replicas
    policy_grads = tape.gradient(policy_loss, self.agent.trainable_variables)

    if fakes is None:
      fakes = {'canvas': observation['canvas'][-1]}
      if 'target' in observation:
        fakes['target'] = observation['target'][-1]
    d_grads, d_metrics = self.d_gradients(real_images, fakes, noise)

    metrics = {
        'policy_loss': ac.policy,
        'value_loss': ac.baseline,
        'entropy_loss': ac.entropy,
        'entropy': ac.mean_entropy,
        'total_policy_loss': ac.total,
        'value_mean': tf.reduce_mean(unrolled.value[:-1]),
        'reward_mean': tf.reduce_mean(tf.reduce_sum(raw_rewards, 0)),
        'log_rho_mean': tf.reduce_mean(log_prob - behaviour_log_prob),
        **d_metrics,
        **self._diagnostics(
            raw_rewards,
            rewards,
            unrolled,
            mask,
            ac,
            unrolled.value[:-1],
            log_prob - behaviour_log_prob,
            action,
        ),
    }
    if 'target' in observation:
      metrics['l2_to_target'] = tf.reduce_mean(
          rewards_lib.l2_distance(observation['canvas'][-1], observation['target'][-1])
      )
    return policy_grads, d_grads, metrics, tuple(self.normaliser.updated(raw_rewards))

  def _diagnostics(self, raw_rewards, rewards, unrolled, mask, ac, values, log_rhos, action) -> dict:
    """What explains a failure (TensorBoard `diagnostics/…`): scales, fit of V, entropy per sub-action."""
    std = tf.math.reduce_std
    mu, sigma = self.normaliser.centre_and_scale(self.normaliser.state)
    out = {
        'diagnostics/return_raw_std': std(tf.reduce_sum(raw_rewards, 0)),
        'diagnostics/return_std': std(tf.reduce_sum(rewards, 0)),
        'diagnostics/reward_std': std(rewards),
        'diagnostics/normaliser_mean': mu,
        'diagnostics/normaliser_std': sigma,
        'diagnostics/advantage_std': std(ac.pg_advantages),
        # 1 − Var(v_s − V) / Var(v_s): 1 = V predicts its targets, 0 = no better than their mean.
        'diagnostics/explained_variance': 1.0
        - tf.math.reduce_variance(ac.vs - values) / tf.maximum(tf.math.reduce_variance(ac.vs), 1e-8),
        # Clipped by more than rounding: on-policy ρ is 1 up to a few ulps (which XLA and TensorFlow's
        # kernels round differently), and clipping those changes nothing.
        'diagnostics/clipped_rho_fraction': tf.reduce_mean(
            tf.cast(log_rhos > tf.math.log(self.config.clip_rho) + CLIPPED_RHO_TOLERANCE, tf.float32)
        ),
        # Spread of the LSTM output across the batch: ≈ 0 means the policy ignores its input.
        'diagnostics/core_output_spread': tf.reduce_mean(tf.math.reduce_std(unrolled.core_output, 1)),
    }
    for key, entropy in unrolled.entropy.items():  # Mean over the steps where the sub-action mattered.
      m = mask[key][:-1]
      out[f'diagnostics/entropy_{key}'] = tf.reduce_sum(entropy[:-1] * m) / tf.maximum(tf.reduce_sum(m), 1.0)
    if 'flag' in action:
      out['diagnostics/paint_fraction'] = tf.reduce_mean(
          tf.cast(tf.equal(action['flag'][:-1], 1), tf.float32)
      )
    return out

  def d_gradients(self, real_images, fakes, noise):
    """(D gradients, D metrics) of one replica's real images [B, W, W, C] against `fakes`.

    fakes: {'canvas': [B, W, W, C]} and, for a conditional D, 'target' (what the render reconstructs).
    """
    config = self.config
    real_images = tf.convert_to_tensor(real_images, tf.float32)
    fake_canvas = tf.convert_to_tensor(fakes['canvas'], tf.float32)
    if fake_canvas.shape != real_images.shape:
      raise ValueError(
          f'fakes {fake_canvas.shape} and real images {real_images.shape} must have the same '
          'shape (the gradient penalty interpolates between them)'
      )
    half = noise['half']
    if self.conditioning != 'none':
      # Real pairs are the fakes' own targets: (t, t) against (render of t, t), so D judges how well a
      # render reconstructs its target, not which of two unrelated images is real.
      real_images = tf.convert_to_tensor(fakes['target'], tf.float32)
    real_in = self._d_input(real_images, real_images, half)
    fake_in = self._d_input(fake_canvas, fakes.get('target'), half)
    with tf.GradientTape() as tape:
      if config.d_loss == 'wgan-gp':
        d_losses = d_lib.wgan_gp_loss(
            self.discriminator,
            real_in,
            fake_in,
            noise['epsilon'],
            config.gradient_penalty_weight,
            config.gradient_penalty_target,
            config.centring_weight,
        )
      else:
        d_losses = d_lib.sn_gan_loss(self.discriminator, real_in, fake_in)
      d_loss = d_losses['loss'] / self._num_replicas  # Replica gradients are summed by the all-reduce.
    d_grads = tape.gradient(d_loss, self.discriminator.trainable_variables)
    d_losses['grad_norm'] = tf.linalg.global_norm(d_grads)
    return d_grads, {name: d_losses[key] for name, key in D_METRICS.items()}
