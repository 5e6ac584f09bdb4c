"""The update (learner_step.LearnerUpdate): XLA == eager, learning sanity on a one-step task,
multi-replica == single, bad input."""

import collections
import os
import subprocess
import sys
import textwrap

import dm_env
from dm_env import specs
import numpy as np
import pytest
import tensorflow as tf

import network_fixtures as nf
from spiral_tf import config as config_lib
from spiral_tf.learning import learner_step
from spiral_tf.learning import nonfinite
from spiral_tf.networks import agent as agent_lib
from spiral_tf.networks import discriminator as d_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _setup(conditional=True, batch=2, length=3):
  action_spec, obs_spec = nf.painter_specs(grid=8, width=16, conditional=conditional)
  agent = agent_lib.Agent(action_spec, obs_spec, size=nf.MICRO, conditional=conditional)
  d = d_lib.Discriminator(channels=nf.MICRO_D, input_shape=[16, 16, 2 if conditional else 1])
  episodes = nf.sampled_episodes(agent, action_spec, obs_spec, batch, length, seed=5)
  real = np.random.default_rng(6).uniform(size=(batch, 16, 16, 1)).astype(np.float32)
  return agent, d, episodes, real


def test_xla_update_equals_eager_update():
  agent, d, episodes, real = _setup()
  config = config_lib.LearnerConfig(
      reward='spiral++', discount=0.9, d_conditioning='complement', stroke_penalty=0.01, blank_penalty=0.1
  )
  variables = agent.variables + d.variables
  start = [v.numpy() for v in variables]
  noise = {'epsilon': tf.constant([0.3, 0.8]), 'half': tf.constant([1, 2], tf.int32)}

  eager = learner_step.LearnerUpdate(agent, d, config, conditional=True, jit_compile=False)
  eager_grads = eager.gradients(episodes, real, None, noise)
  eager_metrics = eager.update(episodes, real, None, noise)
  eager_after = [v.numpy() for v in variables]
  for v, value in zip(variables, start):
    v.assign(value)
  compiled = learner_step.LearnerUpdate(agent, d, config, conditional=True, jit_compile=True)
  xla_metrics = compiled._update_fn(episodes, real, None, noise)  # The XLA-compiled whole update.
  xla_after = [v.numpy() for v in variables]

  assert set(eager_metrics) >= {
      'policy_loss',
      'value_loss',
      'entropy',
      'd_loss_real',
      'd_loss_fake',
      'gradient_penalty',
      'd_score_real',
      'd_score_fake',
      'reward_mean',
      'l2_to_target',
  }
  for key in eager_metrics:
    np.testing.assert_allclose(
        xla_metrics[key].numpy(), eager_metrics[key].numpy(), rtol=1e-4, atol=1e-6, err_msg=key
    )
  # The fixture's episodes are on-policy (their behaviour log-probs are this agent's): ρ = 1 up to rounding,
  # which the two compilers round differently, and no ρ counts as clipped in either (once, 0.25 under XLA).
  assert float(eager_metrics['diagnostics/clipped_rho_fraction']) == 0.0
  assert float(xla_metrics['diagnostics/clipped_rho_fraction']) == 0.0
  # Adam's first step is lr·g/(|g| + ε'), ε' = 3e-7: rounding decides its sign for |g| ≲ ε'; compare the
  # rest.
  grads = [g.numpy() for g in tf.nest.flatten(eager_grads[:2])]
  deltas = [(e - b, x - b) for b, e, x in zip(start, eager_after, xla_after)]
  trainable = [v.ref() for v in agent.trainable_variables + d.trainable_variables]
  trainable_deltas = [delta for v, delta in zip(variables, deltas) if v.ref() in trainable]
  assert len(trainable_deltas) == len(grads)
  clear_total = 0
  for g, (e, x) in zip(grads, trainable_deltas):
    clear = np.abs(g) > 1e-6
    np.testing.assert_allclose(x[clear], e[clear], atol=1e-6)  # 1 % of the learning rate.
    clear_total += np.count_nonzero(clear)
  print(f'{clear_total} of {sum(g.size for g in grads)} gradient entries above 1e-6')
  assert clear_total > 0.3 * sum(g.size for g in grads)  # 44 % here (tiny net, batch 2).
  assert int(compiled.num_updates) == 1


def _one_step_specs():
  action = collections.OrderedDict(
      flag=specs.DiscreteArray(2, name='flag'), size=specs.DiscreteArray(4, name='size')
  )
  observation = collections.OrderedDict(
      canvas=specs.Array((16, 16, 1), np.float32),
      target=specs.Array((16, 16, 1), np.float32),
      action_mask=collections.OrderedDict((k, specs.Array((), np.float32)) for k in action),
      noise_sample=specs.Array((10,), np.float32),
  )
  return action, observation


def test_learning_sanity_one_step_task():
  """Episodes of one action; the final canvas matches the (black) target only for flag=1, size=2."""
  tf.random.set_seed(0)
  action_spec, obs_spec = _one_step_specs()
  agent = agent_lib.Agent(action_spec, obs_spec, size=nf.MICRO, conditional=True)
  d = d_lib.Discriminator(channels=nf.MICRO_D, input_shape=[16, 16, 2])
  config = config_lib.LearnerConfig(
      reward='l2', d_conditioning='pair', policy_learning_rate=3e-3, entropy_cost=1e-3
  )
  learner = learner_step.LearnerUpdate(agent, d, config, conditional=True, jit_compile=False)
  batch, rng = 32, np.random.default_rng(0)
  act = tf.function(agent.step)
  first = np.full([batch], int(dm_env.StepType.FIRST), np.int32)

  def observation(canvas):
    return {
        'canvas': canvas,
        'target': np.zeros((batch, 16, 16, 1), np.float32),
        'action_mask': {k: np.ones(batch, np.float32) for k in action_spec},
        'noise_sample': noise,
    }

  def success_rate():
    output, _ = act(first, observation(blank), agent.initial_state(batch))
    return np.mean((output.action['flag'].numpy() == 1) & (output.action['size'].numpy() == 2)), output

  for _ in range(150):
    noise = rng.normal(size=(batch, 10)).astype(np.float32)
    blank = np.ones((batch, 16, 16, 1), np.float32)
    _, output = success_rate()
    hit = (output.action['flag'].numpy() == 1) & (output.action['size'].numpy() == 2)
    final = np.where(hit[:, None, None, None], 0.0, 1.0).astype(np.float32) * blank
    two = lambda a, b: np.stack([a, b], 1)
    episodes = {
        'step_type': two(first, np.full([batch], int(dm_env.StepType.LAST), np.int32)),
        'observation': tf.nest.map_structure(two, observation(blank), observation(final)),
        'action': {k: two(v.numpy(), np.zeros(batch, np.int32)) for k, v in output.action.items()},
        'behaviour_log_prob': {
            k: two(v.numpy(), np.zeros(batch, np.float32)) for k, v in output.log_prob.items()
        },
        'core_state': {k: np.zeros((batch, agent.lstm_size), np.float32) for k in ('h', 'c')},
    }
    metrics = learner.step(episodes, final)
  rate, _ = success_rate()
  assert rate > 0.9, f'policy picks the rewarded action in only {rate:.0%} of episodes'
  assert float(metrics['reward_mean']) > -0.2


def test_two_replicas_equal_one_replica_on_the_whole_batch():
  """Mirrored over 2 logical CPUs (in a fresh process: devices split before TF starts) vs one update."""
  script = textwrap.dedent(f"""
      import sys
      sys.path[:0] = [{ROOT!r}, {os.path.join(ROOT, 'tests')!r}]
      from spiral_tf.learning import strategy as strategy_lib
      strategy = strategy_lib.make_strategy('mirrored', num_cpu_replicas=2)
      import numpy as np, tensorflow as tf
      from spiral_tf.networks import agent as agent_lib, discriminator as d_lib
      from spiral_tf import config as config_lib
      from spiral_tf.learning import learner_step
      import network_fixtures as nf
      a, o = nf.painter_specs(grid=8, width=16, conditional=False)
      with strategy.scope():
        agent = agent_lib.Agent(a, o, size=nf.MICRO)
        d = d_lib.Discriminator(channels=nf.MICRO_D, input_shape=[16, 16, 1], spectral_norm=True)
      episodes = nf.sampled_episodes(agent, a, o, batch=4, length=3, seed=1)
      real = np.random.default_rng(2).uniform(size=(4, 16, 16, 1)).astype(np.float32)
      # sn-gan and no conditioning: the update draws no noise, so both runs see the same inputs.
      config = config_lib.LearnerConfig(reward='spiral', d_loss='sn-gan', policy_learning_rate=1e-2,
                                        d_learning_rate=1e-2)
      learner = learner_step.LearnerUpdate(agent, d, config, strategy=strategy, jit_compile=False)
      start = [v.numpy() for v in agent.variables + d.variables]
      # The whole batch on one device (cross-replica context), then back to the same start.
      grads = learner.gradients(episodes, real, None, learner.draw_noise(4))
      # Losses are divided by the 2 replicas there; the all-reduce sums the two halves' gradients.
      expected = [2 * g.numpy() for g in grads[0] + grads[1]]
      for v, s in zip(agent.variables + d.variables, start):
        v.assign(s)
      variables = agent.trainable_variables + d.trainable_variables
      start = [v.numpy() for v in variables]
      data = tf.data.Dataset.from_tensors((episodes, real)).unbatch().batch(4)  # 2 + 2 examples.
      inputs = next(iter(strategy.experimental_distribute_dataset(data)))
      metrics = learner.step(*inputs)
      # Keras Adam's first step: Δ = −lr·g/(|g| + ε/√(1 − β2)).
      worst = 0.0
      for v, s, g in zip(variables, start, expected):
        delta = v.numpy() - s
        clear = np.abs(g) > 1e-6  # Below, rounding moves g/(|g| + ε') a lot.
        adam = -1e-2 * g / (np.abs(g) + 1e-8 / np.sqrt(1e-3))
        worst = max([worst] + list(np.abs(delta[clear] - adam[clear])))
      print('RESULT', strategy.num_replicas_in_sync, worst, float(metrics['d_loss']))
  """)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  proc = subprocess.run(
      [sys.executable, '-c', script], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT
  )
  lines = [line for line in proc.stdout.splitlines() if line.startswith('RESULT')]
  assert proc.returncode == 0 and lines, proc.stderr[-3000:]
  _, replicas, worst, d_loss = lines[0].split()
  assert int(replicas) == 2
  assert float(worst) < 1e-5, f'2-replica update differs from the 1-replica one by {worst}'
  assert np.isfinite(float(d_loss))


def test_a2c_ignores_the_behaviour_policy():
  agent, d, episodes, real = _setup(conditional=False, batch=2, length=3)
  stale = dict(episodes, behaviour_log_prob={k: v - 0.5 for k, v in episodes['behaviour_log_prob'].items()})
  noise = {'epsilon': tf.constant([0.5, 0.5]), 'half': tf.constant([0, 0])}
  metrics = {}
  for algorithm in ('vtrace', 'a2c'):
    config = config_lib.LearnerConfig(algorithm=algorithm)
    learner = learner_step.LearnerUpdate(agent, d, config, jit_compile=False)
    metrics[algorithm] = {
        name: learner.gradients(e, real, None, noise)[2]['log_rho_mean'].numpy()
        for name, e in (('fresh', episodes), ('stale', stale))
    }
  assert abs(metrics['vtrace']['fresh']) < 1e-5  # The episodes were acted by these very weights.
  assert metrics['vtrace']['stale'] > 0.4  # μ made 0.5 nats less likely per sub-action.
  assert metrics['a2c']['fresh'] == metrics['a2c']['stale'] == 0.0


def test_bad_inputs_are_named():
  with pytest.raises(ValueError, match='reward'):
    config_lib.LearnerConfig(reward='l1')
  with pytest.raises(ValueError, match='discount'):
    config_lib.LearnerConfig(discount=1.5)
  agent, d, episodes, real = _setup(conditional=False, batch=2, length=3)
  learner = learner_step.LearnerUpdate(agent, d, config_lib.LearnerConfig(reward='l2'), jit_compile=False)
  with pytest.raises(ValueError, match='target'):
    learner.update(episodes, real, None, learner.draw_noise(2))
  learner = learner_step.LearnerUpdate(agent, d, config_lib.LearnerConfig(), jit_compile=False)
  with pytest.raises(ValueError, match='real images'):
    learner.update(episodes, real[:, :8, :8], None, learner.draw_noise(2))


def _d_batch(seed, batch=2, width=16):
  """(real images, fakes with targets) for a conditional D."""
  rng = np.random.default_rng(seed)
  image = lambda: rng.uniform(size=(batch, width, width, 1)).astype(np.float32)
  return image(), {'canvas': image(), 'target': image()}


def _reference_d_input(images, targets, conditioning, half):
  """NumPy pairing (discriminator.py's contract): 'pair' concatenates; 'complement' masks one half."""
  if conditioning == 'pair':
    return np.concatenate([images, targets], -1)
  width = images.shape[1]
  rows, cols = np.meshgrid(np.arange(width), np.arange(width), indexing='ij')
  masks = np.stack([rows < width // 2, rows >= width // 2, cols < width // 2, cols >= width // 2])
  mask = masks[np.asarray(half)][..., None].astype(np.float32)  # [B, W, W, 1]
  return np.concatenate([targets * (1 - mask), images * mask], -1)


@pytest.mark.parametrize('d_loss, conditioning', [('wgan-gp', 'complement'), ('sn-gan', 'pair')])
def test_d_only_update_applies_the_d_loss_gradient_with_adam(d_loss, conditioning):
  """Two D-only updates == tape gradients of the loss applied by hand with a fresh Adam of the same config;
  real pairs are the fakes' own targets."""
  agent, _, _, _ = _setup(batch=2)
  make_d = lambda: d_lib.Discriminator(
      channels=nf.MICRO_D, input_shape=[16, 16, 2], spectral_norm=d_loss == 'sn-gan'
  )
  d, reference_d = make_d(), make_d()
  for mine, theirs in zip(d.variables, reference_d.variables):
    theirs.assign(mine)
  config = config_lib.LearnerConfig(
      d_loss=d_loss,
      d_conditioning=conditioning,
      d_learning_rate=1e-3,
      gradient_penalty_weight=2.0,
      gradient_penalty_target=0.5,
      centring_weight=0.1,
  )
  learner = learner_step.LearnerUpdate(agent, d, config, conditional=True, jit_compile=False)
  agent_before = [v.numpy() for v in agent.variables]
  adam = tf.keras.optimizers.Adam(1e-3, beta_1=0.5, beta_2=0.999, epsilon=1e-8)
  for seed, half in ((1, [0, 3]), (2, [2, 1])):
    real, fakes = _d_batch(seed)
    noise = {'epsilon': tf.constant([0.25, 0.7]), 'half': tf.constant(half, tf.int32)}
    power_iteration = [v.numpy() for v in d.non_trainable_variables]
    grads, _ = learner.d_gradients(real, fakes, noise)
    for v, value in zip(d.non_trainable_variables, power_iteration):  # As if d_gradients never ran.
      v.assign(value)
    metrics = learner.d_update(real, fakes, noise)

    # A conditional D's real pairs are built from the fakes' own targets: (t, t) against (render, t).
    real_in = _reference_d_input(fakes['target'], fakes['target'], conditioning, half)
    fake_in = _reference_d_input(fakes['canvas'], fakes['target'], conditioning, half)
    with tf.GradientTape() as tape:
      if d_loss == 'wgan-gp':
        losses = d_lib.wgan_gp_loss(reference_d, real_in, fake_in, noise['epsilon'], 2.0, 0.5, 0.1)
      else:
        losses = d_lib.sn_gan_loss(reference_d, real_in, fake_in)
    reference_grads = tape.gradient(losses['loss'], reference_d.trainable_variables)
    adam.apply_gradients(zip(reference_grads, reference_d.trainable_variables))

    np.testing.assert_allclose(metrics['d_loss'].numpy(), losses['loss'].numpy(), rtol=1e-5)
    for g, reference_g in zip(grads, reference_grads):
      np.testing.assert_allclose(g.numpy(), reference_g.numpy(), rtol=1e-4, atol=1e-7)
    for mine, theirs in zip(d.variables, reference_d.variables):  # Incl. the power iteration's u.
      np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-7, err_msg=mine.name)
  assert int(learner.num_d_updates) == 2 and int(learner.num_updates) == 0
  for v, before in zip(agent.variables, agent_before):  # D-only: the agent is untouched.
    np.testing.assert_array_equal(v.numpy(), before)


def test_d_only_update_compiles_with_xla():
  agent, d, _, _ = _setup(batch=2)
  config = config_lib.LearnerConfig(d_conditioning='complement', d_learning_rate=1e-3)
  real, fakes = _d_batch(9)
  noise = {'epsilon': tf.constant([0.4, 0.9]), 'half': tf.constant([1, 3], tf.int32)}
  start = [v.numpy() for v in d.variables]
  eager = learner_step.LearnerUpdate(agent, d, config, conditional=True, jit_compile=False)
  grads, _ = eager.d_gradients(real, fakes, noise)
  eager_metrics = eager.d_update(real, fakes, noise)
  eager_after = [v.numpy() for v in d.variables]
  for v, value in zip(d.variables, start):
    v.assign(value)
  compiled = learner_step.LearnerUpdate(agent, d, config, conditional=True, jit_compile=True)
  xla_metrics = compiled._d_update_fn(real, fakes, noise)  # The XLA-compiled D-only update.
  assert set(xla_metrics) == set(learner_step.D_METRICS)
  for key in xla_metrics:
    np.testing.assert_allclose(
        xla_metrics[key].numpy(), eager_metrics[key].numpy(), rtol=1e-4, atol=1e-6, err_msg=key
    )
  for v, g, e, b in zip(d.variables, grads, eager_after, start):
    clear = np.abs(g.numpy()) > 1e-6  # Below, rounding decides the sign of Adam's first step.
    np.testing.assert_allclose(v.numpy()[clear], e[clear], atol=1e-5)  # 1 % of the learning rate.
    assert np.all(np.abs(v.numpy() - b)[clear] > 1e-4)  # It did move (≈ lr per entry).
  assert int(compiled.num_d_updates) == 1 and int(compiled.num_updates) == 0


def test_three_d_steps_per_policy_step_and_nonfinite_d_only_updates():
  """Ratio 3: two D-only updates, then the combined one (D metrics: their mean); a NaN in a D-only update
  undoes the whole step, optimizers' step counts included."""
  agent, d, episodes, real = _setup(batch=2)
  config = config_lib.LearnerConfig(d_conditioning='pair', d_steps_per_policy_step=3, d_learning_rate=1e-2)
  learner = learner_step.LearnerUpdate(agent, d, config, conditional=True, jit_compile=False, seed=7)
  guard = nonfinite.NonFiniteGuard(
      [
          *agent.variables,
          *d.variables,
          *learner.policy_optimizer.variables,
          *learner.d_optimizer.variables,
          *learner.normaliser.variables,
      ],
      max_in_a_row=2,
  )
  variables = agent.variables + d.variables
  start = [v.numpy() for v in variables]
  fakes = _d_batch(3)[1]
  extra = [_d_batch(4), _d_batch(5)]

  guard.snapshot()
  poisoned = [extra[0], (extra[1][0], dict(extra[1][1], canvas=extra[1][1]['canvas'] * np.nan))]
  metrics = learner.step(episodes, real, fakes, extra_d_batches=poisoned)
  assert not guard.accept(metrics)
  assert 'd_loss' in guard.bad_metrics(metrics)
  assert int(learner.num_updates) == 0 and int(learner.num_d_updates) == 0
  for v, value in zip(variables, start):
    np.testing.assert_array_equal(v.numpy(), value)

  guard.snapshot()
  metrics = learner.step(episodes, real, fakes, extra_d_batches=extra)
  assert guard.accept(metrics)
  assert int(learner.d_optimizer.iterations) == 3
  assert int(learner.policy_optimizer.iterations) == 1

  # The same sequence, eagerly, with the noise the step drew (same generator seed; 3 draws were undone).
  for v, value in zip(variables, start):
    v.assign(value)
  reference = learner_step.LearnerUpdate(agent, d, config, conditional=True, jit_compile=False, seed=7)
  for _ in range(3):
    reference.draw_noise(2)
  reward_before = reference.gradients(episodes, real, fakes, reference.draw_noise(2))[2]['reward_mean']
  # Restart its generator.
  reference = learner_step.LearnerUpdate(agent, d, config, conditional=True, jit_compile=False, seed=7)
  for _ in range(3):
    reference.draw_noise(2)
  d_metrics = [reference.d_update(r, f, reference.draw_noise(2)) for r, f in extra]
  combined = reference.update(episodes, real, fakes, reference.draw_noise(2))
  for key in ('policy_loss', 'value_loss', 'entropy', 'reward_mean'):
    np.testing.assert_allclose(metrics[key].numpy(), combined[key].numpy(), rtol=1e-4, atol=1e-6, err_msg=key)
  for key in learner_step.D_METRICS:
    mean = np.mean([m[key].numpy() for m in d_metrics + [combined]])
    np.testing.assert_allclose(metrics[key].numpy(), mean, rtol=1e-4, atol=1e-6, err_msg=key)
  # The D that paid the agent had already taken the two D-only steps (its rewards differ from the first D's).
  assert abs(float(combined['reward_mean']) - float(reward_before)) > 1e-3
  assert int(reference.num_d_updates) == 3 and int(reference.num_updates) == 1


def test_d_steps_per_policy_step_errors_are_named():
  with pytest.raises(ValueError, match='d_steps_per_policy_step'):
    config_lib.LearnerConfig(d_steps_per_policy_step=0)
  agent, d, episodes, real = _setup(batch=2)
  learner = learner_step.LearnerUpdate(
      agent, d, config_lib.LearnerConfig(d_steps_per_policy_step=2), conditional=True, jit_compile=False
  )
  with pytest.raises(ValueError, match=r'd_steps_per_policy_step=2 needs 1 extra .* got 0'):
    learner.step(episodes, real, _d_batch(1)[1])
  assert int(learner.num_updates) == 0 and int(learner.num_d_updates) == 0


def test_an_update_without_d_training_applies_the_same_policy_update_and_leaves_d_alone():
  """train_discriminator=False (a population member rewarded by the shared D): the policy step of the
  full update, D's metrics on the batch, and no D gradient applied, nor extra D batches taken."""
  agent, d, episodes, real = _setup(batch=2)
  config = config_lib.LearnerConfig(d_conditioning='pair', d_steps_per_policy_step=2, d_learning_rate=1e-2)
  start = [v.numpy() for v in agent.variables + d.variables]
  noise = {'epsilon': tf.constant([0.3, 0.8]), 'half': tf.constant([1, 2], tf.int32)}
  full = learner_step.LearnerUpdate(agent, d, config, conditional=True, jit_compile=False)
  full_metrics = full.update(episodes, real, None, noise)
  full_policy = [v.numpy() for v in agent.variables]
  assert any(not np.array_equal(v.numpy(), s) for v, s in zip(d.variables, start[len(agent.variables) :]))
  for v, value in zip(agent.variables + d.variables, start):
    v.assign(value)

  policy_only = learner_step.LearnerUpdate(
      agent, d, config, conditional=True, jit_compile=False, train_discriminator=False
  )
  metrics = policy_only.update(episodes, real, None, noise)
  for v, value in zip(agent.variables, full_policy):
    np.testing.assert_allclose(v.numpy(), value, rtol=1e-5, atol=1e-7)
  for v, value in zip(d.variables, start[len(agent.variables) :]):
    np.testing.assert_array_equal(v.numpy(), value)
  assert int(policy_only.num_d_updates) == 0 and int(policy_only.num_updates) == 1
  for key in ('d_score_real', 'd_score_fake', 'reward_mean', 'policy_loss'):
    np.testing.assert_allclose(metrics[key].numpy(), full_metrics[key].numpy(), rtol=1e-5, err_msg=key)
  # Its step takes no extra D batches whatever d_steps_per_policy_step says, and refuses them.
  policy_only.step(episodes, real)
  assert int(policy_only.num_d_updates) == 0 and int(policy_only.num_updates) == 2
  with pytest.raises(ValueError, match='needs 0 extra'):
    policy_only.step(episodes, real, None, extra_d_batches=[_d_batch(1)])


def test_the_clipped_rho_fraction_counts_the_steps_whose_rho_exceeds_clip_rho():
  agent, d, episodes, real = _setup(batch=2, length=3)
  noise = {'epsilon': tf.constant([0.3, 0.8]), 'half': tf.constant([1, 2], tf.int32)}
  update = learner_step.LearnerUpdate(
      agent, d, config_lib.LearnerConfig(), conditional=True, jit_compile=False
  )
  # Episode 0 acted with 1 nat less log-probability on every sub-action at every step: ρ ≥ e > 1 there
  # (the sub-actions in effect at a step count, and at least one always is).
  behaviour = {k: np.array(v) for k, v in episodes['behaviour_log_prob'].items()}
  for v in behaviour.values():
    v[0] -= 1.0
  shifted = dict(episodes, behaviour_log_prob=behaviour)
  metrics = update.gradients(shifted, real, None, noise)[2]
  assert float(metrics['diagnostics/clipped_rho_fraction']) == 0.5  # Every step of 1 of the 2 episodes.
  metrics = update.gradients(episodes, real, None, noise)[2]
  assert float(metrics['diagnostics/clipped_rho_fraction']) == 0.0  # On-policy: ρ = 1 up to rounding.
