"""Agent: parameter count by hand, autoregression, teacher forcing, resets, generic specs, bad input."""

import dm_env
import numpy as np
import pytest
import tensorflow as tf

import network_fixtures as nf
from spiral_tf.networks import agent as agent_lib


def _hand_count(action_spec, observation_spec, size, conditional=False):
  """Parameters of docs/design.md §4 counted layer by layer (kernel + bias)."""
  s = agent_lib.SIZES[size]
  dense = lambda i, o: i * o + o
  conv = lambda k, i, o: k * k * i * o + o
  width, _, channels = observation_spec['canvas'].shape
  ch, z, u, hc = s.torso_channels, s.z_dim, s.lstm_size, s.head_channels
  grids = {
      k: int(round(np.sqrt(a.num_values)))
      for k, a in action_spec.items()
      if k in agent_lib.DEFAULT_LOCATION_KEYS
  }
  in_dim = lambda k: 2 if k in grids else action_spec[k].num_values
  res = lambda c: conv(3, c, c) + conv(1, c, c)
  order = list(action_spec)
  total = conv(5, channels * (2 if conditional else 1) + 2, ch)
  total += sum(dense(in_dim(k), 16) for k in order)  # prev-action embeds
  total += dense(16 * len(order), 64) + dense(64, 32) + dense(32, ch)  # prev-action MLP
  total += dense(10, 64) + dense(64, 32) + dense(32, ch)  # noise MLP
  total += 3 * conv(4, ch, ch) + conv(3, ch, ch) + s.torso_res_blocks * res(ch)
  total += dense((width // 8) ** 2 * ch, z)
  total += 4 * (z * u + u * u + u)  # LSTM
  total += dense(u, 1)  # value
  for k in order:
    if k in grids:
      ups = int(np.log2(grids[k] // 4))
      total += conv(3, u // 16, hc) + s.head_res_blocks * res(hc) + ups * conv(4, hc, hc) + conv(3, hc, 1)
    else:
      total += dense(u, action_spec[k].num_values)
  # All but the last sub-action in the order update z.
  last = agent_lib.Agent(action_spec, observation_spec, size=size, conditional=conditional).order[-1]
  for k in order:
    if k != last:
      total += dense(in_dim(k), 16) + dense(u + 16, 16) + dense(16, 32) + dense(32, u)
  return total


@pytest.mark.parametrize('size', ['tiny', 'deepmind'])
def test_parameter_count_matches_hand_count_painter(size):
  action_spec, obs_spec = nf.painter_specs(grid=32, width=64, channels=3, use_color=True)
  agent = agent_lib.Agent(action_spec, obs_spec, size=size)
  assert agent.num_parameters() == _hand_count(action_spec, obs_spec, size)
  assert agent.order == ('flag', 'end', 'control', 'size', 'pressure', 'red', 'green', 'blue')


def test_parameter_count_scenes_conditional_grid16():
  action_spec, obs_spec = nf.scenes_specs(width=64, conditional=True)
  agent = agent_lib.Agent(action_spec, obs_spec, size='tiny', conditional=True)
  assert agent.num_parameters() == _hand_count(action_spec, obs_spec, 'tiny', conditional=True)
  assert agent.order == tuple(action_spec)  # Not a painter spec: the spec's own order.
  output, _ = agent.step(
      tf.constant([int(dm_env.StepType.FIRST)] * 3),
      nf.random_observation(obs_spec, 3, np.random.default_rng(0)),
      agent.initial_state(3),
  )
  assert all(0 <= int(a) < 256 for a in output.action['location'].numpy())


def _small_agent(conditional=False):
  action_spec, obs_spec = nf.painter_specs(grid=8, width=16, conditional=conditional)
  return action_spec, obs_spec, agent_lib.Agent(action_spec, obs_spec, size='tiny', conditional=conditional)


def test_earlier_sub_action_changes_later_logits():
  _, obs_spec, agent = _small_agent()
  z = tf.random.stateless_normal([1, agent.lstm_size], seed=[1, 2])
  base = {k: tf.constant([0]) for k in agent.order}
  _, log_prob_a, entropy_a = agent._policy(z, base)
  changed = dict(base, end=tf.constant([37]))  # `end` comes second in the painter order.
  _, log_prob_b, entropy_b = agent._policy(z, changed)
  # Sub-actions before `end` cannot see it; every one after it must. The log-probability of a fixed
  # value moves linearly with the logits; the entropy of the near-uniform initial heads only to second
  # order (it can round to the same float32), so a change in either counts.
  assert log_prob_a['flag'].numpy() == log_prob_b['flag'].numpy()
  for key in agent.order[2:]:
    assert (
        abs(float(log_prob_a[key][0] - log_prob_b[key][0])) > 1e-7
        or abs(float(entropy_a[key][0] - entropy_b[key][0])) > 1e-7
    ), key


def test_unroll_reproduces_step_log_probs_and_values():
  action_spec, obs_spec, agent = _small_agent(conditional=True)
  agent = agent_lib.Agent(action_spec, obs_spec, size='tiny', conditional=True)
  batch, length = 3, 4
  episodes = nf.sampled_episodes(agent, action_spec, obs_spec, batch, length, seed=3)
  tm = lambda x: np.swapaxes(x, 0, 1)
  unrolled = agent.unroll(
      tm(episodes['step_type']),
      tf.nest.map_structure(tm, episodes['observation']),
      {k: tm(v) for k, v in episodes['action'].items()},
      episodes['core_state'],
  )
  for key in action_spec:
    np.testing.assert_allclose(
        unrolled.log_prob[key].numpy()[:-1],
        tm(episodes['behaviour_log_prob'][key])[:-1],
        atol=2e-5,
        err_msg=key,
    )
    assert np.all(unrolled.entropy[key].numpy() > 0)
    assert np.all(unrolled.entropy[key].numpy() <= np.log(action_spec[key].num_values) + 1e-5)
  # Values from step-by-step acting, re-computed with the recorded actions.
  state = agent.initial_state(batch)
  for t in range(length):
    obs = tf.nest.map_structure(lambda x: x[:, t], episodes['observation'])
    output, state = agent.step(tf.constant(episodes['step_type'][:, t]), obs, state)
    np.testing.assert_allclose(output.value.numpy(), unrolled.value.numpy()[t], atol=2e-5)
    prev_action = {k: tf.constant(episodes['action'][k][:, t]) for k in action_spec}
    state = agent_lib.AgentState(state.core, prev_action)


def test_first_resets_core_state_and_previous_action():
  action_spec, obs_spec, agent = _small_agent()
  obs = nf.random_observation(obs_spec, 2, np.random.default_rng(0))
  first = tf.constant([int(dm_env.StepType.FIRST)] * 2)
  fresh, _ = agent.step(first, obs, agent.initial_state(2))
  dirty = agent_lib.AgentState(
      core={'h': tf.ones([2, agent.lstm_size]), 'c': -tf.ones([2, agent.lstm_size])},
      prev_action={k: tf.fill([2], action_spec[k].num_values - 1) for k in action_spec},
  )
  after_reset, _ = agent.step(first, obs, dirty)
  np.testing.assert_allclose(after_reset.value.numpy(), fresh.value.numpy(), atol=1e-6)
  mid, _ = agent.step(tf.constant([int(dm_env.StepType.MID)] * 2), obs, dirty)
  assert np.max(np.abs(mid.value.numpy() - fresh.value.numpy())) > 1e-6


def test_action_mask_hides_previous_sub_actions():
  action_spec, obs_spec, agent = _small_agent()
  rng = np.random.default_rng(0)
  mask = nf.painter_mask(np.zeros(1), list(action_spec))  # After a move: only end and flag count.
  obs = nf.random_observation(obs_spec, 1, rng, mask)
  mid = tf.constant([int(dm_env.StepType.MID)])
  core = agent.initial_state(1).core
  prev = {k: tf.constant([1]) for k in action_spec}
  value = lambda p: float(agent.step(mid, obs, agent_lib.AgentState(core, p))[0].value[0])
  assert value(prev) == value(dict(prev, size=tf.constant([4]), control=tf.constant([9])))
  assert value(prev) != value(dict(prev, end=tf.constant([9])))


def test_bad_specs_give_clear_errors():
  action_spec, obs_spec = nf.painter_specs(grid=8, width=16)
  with pytest.raises(ValueError, match='size'):
    agent_lib.Agent(action_spec, obs_spec, size='huge')
  with pytest.raises(ValueError, match='target'):
    agent_lib.Agent(action_spec, obs_spec, size='tiny', conditional=True)
  with pytest.raises(ValueError, match='order'):
    agent_lib.Agent(action_spec, obs_spec, size='tiny', order=('flag', 'end'))
  bad = dict(action_spec, end=type(action_spec['end'])(7 * 7, name='end'))
  with pytest.raises(ValueError, match="'end'.*49"):
    agent_lib.Agent(bad, obs_spec, size='tiny')


def test_greedy_step_takes_the_most_likely_value_of_every_sub_action():
  """Arg-max decoding: no other value of sub-action k is more likely given the greedy choices before it."""
  action_spec, obs_spec, agent = _small_agent()
  rng = np.random.default_rng(4)
  batch = 3
  observation = nf.random_observation(obs_spec, batch, rng)
  first = tf.constant([int(dm_env.StepType.FIRST)] * batch)
  output, _ = agent.step(first, observation, agent.initial_state(batch), greedy=True)
  again, _ = agent.step(first, observation, agent.initial_state(batch), greedy=True)
  for key in agent.order:  # Deterministic.
    np.testing.assert_array_equal(output.action[key].numpy(), again.action[key].numpy())
  # The core output z of this step, to teacher-force the head with other values.
  torso = agent._torso(
      observation, {k: tf.zeros([batch], tf.int32) for k in agent.order}, tf.ones([batch], tf.bool)
  )
  z, _ = agent._core_step(torso, agent.initial_state(batch).core, tf.ones([batch], tf.bool))
  greedy = {k: output.action[k] for k in agent.order}
  _, chosen, _ = agent._policy(z, greedy)
  np.testing.assert_allclose(chosen['flag'].numpy(), output.log_prob['flag'].numpy(), rtol=1e-5)
  for key in agent.order:
    n = action_spec[key].num_values
    for value in rng.choice(n, size=min(4, n), replace=False):
      _, other, _ = agent._policy(z, dict(greedy, **{key: tf.fill([batch], int(value))}))
      assert np.all(other[key].numpy() <= chosen[key].numpy() + 1e-6), key


def test_initial_policy_is_near_uniform():
  action_spec, obs_spec, agent = _small_agent()
  batch = 8
  observation = nf.random_observation(obs_spec, batch, np.random.default_rng(5))
  episodes = nf.sampled_episodes(agent, action_spec, obs_spec, batch, 2, seed=6)
  tm = lambda x: np.swapaxes(x, 0, 1)
  unrolled = agent.unroll(
      tm(episodes['step_type']),
      tf.nest.map_structure(tm, episodes['observation']),
      {k: tm(v) for k, v in episodes['action'].items()},
      episodes['core_state'],
  )
  del observation
  for key, spec in action_spec.items():  # Within 2 % of the uniform distribution's entropy.
    assert np.all(unrolled.entropy[key].numpy() > 0.98 * np.log(spec.num_values)), key
