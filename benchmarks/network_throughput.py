r"""Network throughput: policy forward frames/s and learner frames/s, and FLOP/s against a matmul peak.

For each agent size (tiny, deepmind) on the CelebA painter spec (64², colour, grid 32, conditional):
  * policy: `agent.step` as the actors run it (tf.function), batch 1, 16, 64 → frames/s;
  * learner: one update of policy + critic + D (WGAN-GP, conditional pairs) on 64 episodes of length 20
    (19 frames each) → frames/s, as a plain tf.function (TF's kernels) and XLA-compiled;
  * FLOPs of each, counted by tf.compat.v1.profiler on the (non-XLA) graph of the same computation, and the
    achieved FLOP/s as a fraction of the float32 matmul peak measured in this run (2048² matmuls).

  .venv/bin/python benchmarks/network_throughput.py [--sizes=tiny,deepmind] [--learner_steps=3]
  .venv/bin/python benchmarks/network_throughput.py --sizes=tiny --policy_batches=1,16 \
      --learner_steps=1 --policy_seconds=1 --learner_modes=xla --noconv_paths     # quick
  .venv/bin/python benchmarks/network_throughput.py --precisions=float32,mixed_bfloat16 --noconv_paths
      # bfloat16 compute beside float32 (results under "<size>" and "<size> mixed_bfloat16")

FLOPs are counted on each precision's own graph (the same convolutions and matrix products) and compared
with the float32 matmul peak under every precision, so a bfloat16 figure above 100 % is possible: it says
how much faster than float32 matmuls it ran.

The last printed line is one JSON object.
"""

import json
import os
import time

from absl import app
from absl import flags
import dm_env
import numpy as np
import tensorflow as tf

from spiral_tf import components
from spiral_tf import config as config_lib
from spiral_tf.learning import learner_step
from spiral_tf.networks import agent as agent_lib
from spiral_tf.networks import discriminator as d_lib

flags.DEFINE_list('sizes', ['tiny', 'deepmind'], 'Agent/discriminator sizes to measure.')
flags.DEFINE_list('policy_batches', ['1', '16', '64'], 'Batch sizes of the policy step.')
flags.DEFINE_integer('batch_size', 64, 'Learner batch (episodes).')
flags.DEFINE_integer('episode_length', 20, 'Observations per episode (episode_length − 1 frames).')
flags.DEFINE_integer('learner_steps', 2, 'Timed learner updates (after the compiling one).')
flags.DEFINE_list(
    'learner_modes',
    ['graph', 'xla'],
    'graph: tf.function (TF kernels, oneDNN on CPU); ' 'xla: tf.function(jit_compile=True).',
)
flags.DEFINE_float('policy_seconds', 3.0, 'Time spent measuring each policy batch size.')
flags.DEFINE_list(
    'precisions',
    ['float32'],
    'Compute precisions to measure side by side '
    '(spiral_tf/networks/precision.py): float32, mixed_bfloat16.',
)
flags.DEFINE_bool('conv_paths', True, 'Also time single convolutions, TF kernels vs XLA (off: quicker).')
FLAGS = flags.FLAGS


def _timed(fn, min_seconds=2.0, min_calls=3):
  """(seconds per call, calls) of `fn`, whose result is fetched to the host each time."""
  calls, start = 0, time.perf_counter()
  while calls < min_calls or time.perf_counter() - start < min_seconds:
    tf.nest.map_structure(lambda x: x.numpy() if hasattr(x, 'numpy') else x, fn())
    calls += 1
  return (time.perf_counter() - start) / calls, calls


def matmul_peak(n=2048):
  """float32 FLOP/s of chained n×n matmuls (the best of a few timings)."""
  a = tf.random.normal([n, n])
  b = tf.random.normal([n, n]) / n

  @tf.function
  def chain(x):
    for _ in range(8):
      x = tf.matmul(x, b)
    return tf.reduce_sum(x)

  chain(a).numpy()
  best = min(_timed(lambda: chain(a), min_seconds=1.0)[0] for _ in range(3))
  return 8 * 2 * n**3 / best


def conv_paths(peak, batch=256, width=32, channels=32):
  """GFLOP/s of the convolutions the networks use, TF kernels vs XLA:CPU: what bounds the XLA step."""
  x = tf.random.normal([batch, width, width, channels])
  w = tf.random.normal([4, 4, channels, channels]) * 0.05
  small = tf.random.normal([batch, width // 2, width // 2, channels])
  strided = lambda x: tf.nn.conv2d(x, w, 2, 'SAME')
  transposed = lambda y: tf.nn.conv2d_transpose(y, w, [batch, width, width, channels], 2, 'SAME')
  plain = lambda x: tf.nn.conv2d(x, w[:3, :3], 1, 'SAME')

  def backward(conv, inputs):
    def fn():
      with tf.GradientTape() as tape:
        tape.watch([inputs, w])
        y = tf.reduce_sum(conv(inputs))
      return tape.gradient(y, [inputs, w])

    return fn

  flop = 2 * batch * (width // 2) ** 2 * 16 * channels * channels  # One 4×4/2 conv (= its transpose).
  cases = {
      'conv 3x3/1 forward': (lambda: plain(x), 2 * batch * width**2 * 9 * channels**2),
      'conv 4x4/2 forward': (lambda: strided(x), flop),
      'conv 4x4/2 backward (input + filter grads)': (backward(strided, x), 2 * flop),
      'conv-transpose 4x4/2 forward': (lambda: transposed(small), flop),
  }
  result = {}
  for name, (fn, flops) in cases.items():
    for mode in ('graph', 'xla'):
      compiled = tf.function(fn, jit_compile=mode == 'xla')
      tf.nest.map_structure(lambda t: t.numpy(), compiled())
      seconds, _ = _timed(compiled, min_seconds=1.0)
      result[f'{name} [{mode}]'] = flops / seconds
      print(
          f'  {name:44s} {mode:5s} {flops / seconds / 1e9:7.1f} GFLOP/s  '
          f'{flops / seconds / peak:6.1%} of peak',
          flush=True,
      )
  return result


def graph_flops(concrete_function):
  options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  options['output'] = 'none'
  return tf.compat.v1.profiler.profile(concrete_function.graph, options=options).total_float_ops


def _random_observation(observation_spec, batch, rng):
  """A batched observation: random canvases, targets and noise; every sub-action had an effect."""
  width, _, channels = observation_spec['canvas'].shape
  return {
      'canvas': rng.uniform(size=(batch, width, width, channels)).astype(np.float32),
      'target': rng.uniform(size=(batch, width, width, channels)).astype(np.float32),
      'action_mask': {k: np.ones(batch, np.float32) for k in observation_spec['action_mask']},
      'noise_sample': rng.normal(size=(batch, 10)).astype(np.float32),
  }


def _episodes(action_spec, observation_spec, batch, length, lstm_size, rng):
  """Batch-major random episodes with the contract's structure (random canvases, valid actions)."""
  width, _, channels = observation_spec['canvas'].shape
  step_type = np.full([batch, length], int(dm_env.StepType.MID), np.int32)
  step_type[:, 0], step_type[:, -1] = int(dm_env.StepType.FIRST), int(dm_env.StepType.LAST)
  action = {
      k: rng.integers(0, s.num_values, size=[batch, length]).astype(np.int32) for k, s in action_spec.items()
  }
  flags_prev = np.concatenate([np.ones([batch, 1]), action['flag'][:, :-1]], 1)
  mask = {
      k: (np.ones_like(flags_prev) if k in ('end', 'flag') else flags_prev).astype(np.float32)
      for k in action_spec
  }
  target = rng.uniform(size=[batch, 1, width, width, channels]).astype(np.float32)
  return {
      'step_type': step_type,
      'observation': {
          'canvas': rng.uniform(size=[batch, length, width, width, channels]).astype(np.float32),
          'target': np.repeat(target, length, 1),
          'noise_sample': np.repeat(rng.normal(size=[batch, 1, 10]).astype(np.float32), length, 1),
          'action_mask': mask,
      },
      'action': action,
      'behaviour_log_prob': {
          k: np.full([batch, length], -np.log(s.num_values), np.float32) for k, s in action_spec.items()
      },
      'core_state': {k: np.zeros([batch, lstm_size], np.float32) for k in ('h', 'c')},
  }


def label_of(size, precision):
  """The name of one measurement in the printout and the JSON: the size, and the precision unless float32."""
  return size if precision == 'float32' else f'{size} {precision}'


def measure(size, peak, rng, precision='float32'):
  # The CelebA painter's specs (configs/celeba.cfg: 64², grid 32, colour, pressure, 6 brush sizes).
  action_spec, observation_spec = components.environment_specs(
      config_lib.Config(canvas_width=64, grid_width=32, use_color=True, use_pressure=True, conditional=True)
  )
  agent = agent_lib.Agent(action_spec, observation_spec, size=size, conditional=True, precision=precision)
  d = d_lib.Discriminator(size, input_shape=[64, 64, 6], precision=precision)
  size = label_of(size, precision)
  print(
      f'[{size}] agent {agent.num_parameters():,} parameters, discriminator {d.num_parameters():,}',
      flush=True,
  )
  result = {'agent_parameters': agent.num_parameters(), 'd_parameters': d.num_parameters(), 'policy': {}}

  step = tf.function(agent.step)
  for batch in [int(b) for b in FLAGS.policy_batches]:
    obs = _random_observation(observation_spec, batch, rng)
    obs = tf.nest.map_structure(tf.constant, obs)
    step_type = tf.fill([batch], int(dm_env.StepType.MID))
    state = agent.initial_state(batch)
    step(step_type, obs, state)
    seconds, _ = _timed(lambda: step(step_type, obs, state)[0].action, FLAGS.policy_seconds)
    flops = graph_flops(step.get_concrete_function(step_type, obs, state))
    entry = {
        'frames_per_s': batch / seconds,
        'ms_per_step': 1e3 * seconds,
        'flops_per_frame': flops / batch,
        'flops_per_s': flops / seconds,
        'fraction_of_peak': flops / seconds / peak,
    }
    result['policy'][batch] = entry
    print(
        f'[{size}] policy batch {batch:3d}: {entry["frames_per_s"]:9.1f} frames/s  '
        f'{entry["ms_per_step"]:8.2f} ms/step  {flops / batch / 1e6:7.1f} MFLOP/frame  '
        f'{entry["fraction_of_peak"]:6.1%} of peak',
        flush=True,
    )

  batch, length = FLAGS.batch_size, FLAGS.episode_length
  episodes = tf.nest.map_structure(
      tf.constant, _episodes(action_spec, observation_spec, batch, length, agent.lstm_size, rng)
  )
  real = tf.constant(rng.uniform(size=[batch, 64, 64, 3]).astype(np.float32))
  frames = batch * (length - 1)
  for mode in FLAGS.learner_modes:
    # Timing does not depend on the weights, so both modes share (and move) the same ones.
    settings = config_lib.LearnerConfig(reward='spiral', d_conditioning='pair')
    learner = learner_step.LearnerUpdate(agent, d, settings, conditional=True, jit_compile=mode == 'xla')
    update = learner._update_fn  # pylint: disable=protected-access
    if mode == 'graph':
      update = tf.function(learner.update)
    noise = learner.draw_noise(batch)
    start = time.perf_counter()
    update(episodes, real, None, noise)['d_loss'].numpy()
    compile_s = time.perf_counter() - start
    seconds, calls = _timed(
        lambda: update(episodes, real, None, noise)['d_loss'],  # pylint: disable=cell-var-from-loop
        min_seconds=0.0,
        min_calls=FLAGS.learner_steps,
    )
    if 'flops_per_step' not in result:  # Counted on this precision's graph (the same FLOPs as float32).
      result['flops_per_step'] = graph_flops(
          tf.function(learner.gradients).get_concrete_function(episodes, real, None, noise)
      )
    flops = result['flops_per_step']
    result['learner_' + mode] = {
        'frames_per_s': frames / seconds,
        's_per_step': seconds,
        'steps_timed': calls,
        'first_call_s': compile_s,
        'flops_per_s': flops / seconds,
        'fraction_of_peak': flops / seconds / peak,
    }
    print(
        f'[{size}] learner ({mode}) {batch}×{length - 1}: {frames / seconds:8.1f} frames/s  '
        f'{seconds:6.2f} s/step (first call {compile_s:.0f} s)  {flops / 1e9:7.1f} GFLOP/step  '
        f'{flops / seconds / 1e9:6.1f} GFLOP/s  {flops / seconds / peak:6.1%} of peak',
        flush=True,
    )
  return result


def main(argv):
  del argv
  rng = np.random.default_rng(0)
  load = os.getloadavg()[0]
  # Other processes share these cores: the peak is measured before each part and the best one is used.
  peaks = [matmul_peak()]
  print(
      f'matmul peak {peaks[0] / 1e9:.1f} GFLOP/s (float32, 2048², {os.cpu_count()} cores); '
      f'load average at start {load:.2f}',
      flush=True,
  )
  results = {'load_average_start': load}
  if FLAGS.conv_paths:
    print('convolutions, batch 256 at 32² × 32 channels:')
    results['conv_paths_flops'] = conv_paths(peaks[0])
  labels = []
  for size in FLAGS.sizes:
    for precision in FLAGS.precisions:
      peaks.append(matmul_peak())
      label = label_of(size, precision)
      results[label] = measure(size, max(peaks), rng, precision)
      labels.append(label)
  peaks.append(matmul_peak())
  peak = max(peaks)
  results['matmul_peak_flops'] = peak
  results['matmul_peaks_measured'] = peaks
  print(
      f'matmul peak: {", ".join(f"{p / 1e9:.0f}" for p in peaks)} GFLOP/s over the run '
      f'(best {peak / 1e9:.0f}); '
      f'load average at the end {os.getloadavg()[0]:.2f}'
  )
  print('summary (fractions of the best matmul peak):')
  for size in labels:
    for key, entry in list(results[size]['policy'].items()) + [
        (k, v) for k, v in results[size].items() if k.startswith('learner_')
    ]:
      entry['fraction_of_peak'] = entry['flops_per_s'] / peak
      name = f'policy batch {key}' if not str(key).startswith('learner') else key
      print(
          f'  {size:23s} {name:16s} {entry["frames_per_s"]:9.1f} frames/s  '
          f'{entry["flops_per_s"] / 1e9:6.1f} GFLOP/s  {entry["fraction_of_peak"]:6.1%}'
      )
  print(json.dumps(results))


if __name__ == '__main__':
  app.run(main)
