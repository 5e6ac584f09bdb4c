r"""Where the learner's time goes: the update (and the policy forward) under the TensorFlow profiler.

Runs the same computations as `network_throughput.py` (CelebA painter spec: 64², colour, grid 32,
conditional; the learner on 64 episodes of 20 observations), a few timed calls under
`tf.profiler.experimental`, then reads the trace it wrote (the XSpace protobuf; no TensorBoard plug-in
needed) and prints, per computation:
  * the top ops by self time (time on a TF executor thread not spent in an op nested inside it) with
    their share of all op time, grouped by op type;
  * the same time grouped by kind — convolutions, transposed convolutions (the location heads' upsampling),
    matrix products, and everything else — and by part of the update: forward, backward, and the gradient
    penalty's second backward pass (ops under `gradient_tape/gradient_tape/`);
  * the wall time per call and the op time per wall second (how many cores the ops kept busy).

  .venv/bin/python benchmarks/learner_profile.py                         # tiny and deepmind, float32
  .venv/bin/python benchmarks/learner_profile.py --sizes=tiny --precision=mixed_bfloat16 --top=20
  (--sizes, --batch_size, --episode_length: as for network_throughput.py, whose flags these are)

The last printed line is one JSON object. Op time is measured by the trace, so it includes the
profiler's own overhead per op (≈ µs): many small ops look slightly larger than they are.
"""

import collections
import glob
import json
import os
import re
import tempfile
import time

from absl import app
from absl import flags
import dm_env
import network_throughput  # benchmarks/ (this script's directory) is on sys.path.
import numpy as np
import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from spiral_tf import components
from spiral_tf import config as config_lib
from spiral_tf.learning import learner_step
from spiral_tf.networks import agent as agent_lib
from spiral_tf.networks import discriminator as d_lib

# --sizes, --batch_size and --episode_length are network_throughput.py's flags (imported with it), so
# both scripts measure the same computations.
flags.DEFINE_integer('policy_batch', 16, 'Batch of the profiled policy forward (0: skip it).')
flags.DEFINE_integer('calls', 3, 'Profiled calls of each computation (after an untraced warm-up call).')
flags.DEFINE_integer('top', 15, 'Op types listed per computation.')
flags.DEFINE_enum('precision', 'float32', config_lib.PRECISIONS, 'Compute precision of the networks.')
FLAGS = flags.FLAGS

_OP_EVENT = re.compile(r'^(?P<name>[^:]+):(?P<type>[A-Za-z0-9_]+)$')  # "scope/name:OpType"


def kind_of(name, op_type):
  """Which kind of work an op is: what the issue asks the profile to tell apart."""
  if 'conv2d_transpose' in name or 'Conv2DTranspose' in op_type:
    return 'transposed convolution'
  if 'Conv' in op_type:
    return 'convolution'
  if 'MatMul' in op_type:
    return 'matmul'
  return 'other (element-wise, reductions, copies, control)'


def part_of(name):
  if 'gradient_tape/gradient_tape/' in name:
    return 'gradient penalty, second backward'
  if name.startswith('gradient_tape/') or '/gradient_tape/' in name:
    return 'backward'
  if name.startswith('Adam') or '/Adam' in name:
    return 'optimizer'
  return 'forward'


def op_self_times(xspace: xplane_pb2.XSpace):
  """[(op name, op type, self picoseconds)] of every TF op event on the host's executor threads.

  Events on one thread line nest (a function-call op encloses the ops of its body); an op's self time
  is its duration minus that of the events directly inside it.
  """
  ops = []
  for plane in xspace.planes:
    if not plane.name.startswith('/host:'):
      continue
    for line in plane.lines:
      if line.name == 'python':  # Python-side trace events (the call itself), not ops.
        continue
      events = sorted(line.events, key=lambda e: (e.offset_ps, -e.duration_ps))
      stack = []  # [end_ps, index into ops or None]
      for event in events:
        start, end = event.offset_ps, event.offset_ps + event.duration_ps
        while stack and stack[-1][0] <= start:
          stack.pop()
        if stack and stack[-1][1] is not None:
          ops[stack[-1][1]][2] -= event.duration_ps  # The parent's self time excludes its children.
        match = _OP_EVENT.match(plane.event_metadata[event.metadata_id].name)
        index = None
        if match:
          ops.append([match['name'], match['type'], event.duration_ps])
          index = len(ops) - 1
        stack.append([end, index])
  return [tuple(op) for op in ops]


def profile(fn, calls):
  """Runs `fn` once untraced, then `calls` times under the profiler. Returns (s per call, op table)."""
  fn()
  logdir = tempfile.mkdtemp(prefix='learner_profile_')
  tf.profiler.experimental.start(logdir)
  start = time.perf_counter()
  for _ in range(calls):
    fn()
  seconds = (time.perf_counter() - start) / calls
  tf.profiler.experimental.stop()
  paths = glob.glob(os.path.join(logdir, '**', '*.xplane.pb'), recursive=True)
  if not paths:
    raise RuntimeError(f'the profiler wrote no trace under {logdir}')
  xspace = xplane_pb2.XSpace()
  with open(paths[0], 'rb') as f:
    xspace.ParseFromString(f.read())
  return seconds, op_self_times(xspace)


def summarise(title, seconds, ops, calls, top):
  """Prints the tables (module docstring) and returns them as a dict (times per call, in ms)."""
  total = sum(t for _, _, t in ops) or 1
  ms = lambda ps: ps / 1e9 / calls
  by_type, by_kind, by_part = (collections.defaultdict(lambda: [0, 0]) for _ in range(3))
  for name, op_type, t in ops:
    for table, key in ((by_type, op_type), (by_kind, kind_of(name, op_type)), (by_part, part_of(name))):
      table[key][0] += t
      table[key][1] += 1
  print(
      f'{title}: {seconds * 1e3:.1f} ms per call (wall), op time {ms(total):.1f} ms per call = '
      f'{ms(total) / (seconds * 1e3):.2f} cores busy in ops',
      flush=True,
  )
  result = {'wall_ms': seconds * 1e3, 'op_ms': ms(total)}
  for label, table, limit in (('op type', by_type, top), ('kind', by_kind, None), ('part', by_part, None)):
    rows = sorted(table.items(), key=lambda kv: -kv[1][0])[:limit]
    print(f'  {"by " + label:52s} {"ms/call":>9s} {"share":>7s} {"ops/call":>9s}')
    for key, (t, n) in rows:
      print(f'  {key:52s} {ms(t):9.2f} {t / total:7.1%} {n / calls:9.0f}')
    result[label] = {
        key: {'ms': ms(t), 'share': t / total, 'ops_per_call': n / calls} for key, (t, n) in rows
    }
  return result


def main(argv):
  del argv
  rng = np.random.default_rng(0)
  peak = network_throughput.matmul_peak()
  print(
      f'matmul peak {peak / 1e9:.1f} GFLOP/s (float32, 2048²); precision {FLAGS.precision}; '
      f'load average {os.getloadavg()[0]:.2f}',
      flush=True,
  )
  results = {'precision': FLAGS.precision, 'matmul_peak_flops': peak}
  # The CelebA painter's specs (64², colour, grid 32, conditional), as network_throughput.py measures.
  action_spec, observation_spec = components.environment_specs(
      config_lib.Config(dataset='celeba', canvas_width=64, grid_width=32, use_color=True, conditional=True)
  )
  for size in FLAGS.sizes:
    agent = agent_lib.Agent(
        action_spec, observation_spec, size=size, conditional=True, precision=FLAGS.precision
    )
    d = d_lib.Discriminator(size, input_shape=[64, 64, 6], precision=FLAGS.precision)
    results[size] = {}
    batch, length = FLAGS.batch_size, FLAGS.episode_length
    episodes = tf.nest.map_structure(
        tf.constant,
        network_throughput._episodes(  # pylint: disable=protected-access
            action_spec, observation_spec, batch, length, agent.lstm_size, rng
        ),
    )
    if FLAGS.policy_batch:
      policy_batch = FLAGS.policy_batch
      step = tf.function(agent.step)
      obs = tf.nest.map_structure(lambda x: x[:policy_batch, 1], episodes['observation'])
      step_type, state = tf.fill([policy_batch], int(dm_env.StepType.MID)), agent.initial_state(policy_batch)
      seconds, ops = profile(lambda: step(step_type, obs, state)[0].action['end'].numpy(), FLAGS.calls)  # pylint: disable=cell-var-from-loop
      results[size]['policy'] = summarise(
          f'[{size}] policy forward, batch {policy_batch}', seconds, ops, FLAGS.calls, FLAGS.top
      )
    real = tf.constant(rng.uniform(size=[batch, 64, 64, 3]).astype(np.float32))
    settings = config_lib.LearnerConfig(reward='spiral', d_conditioning='pair')
    learner = learner_step.LearnerUpdate(agent, d, settings, conditional=True)
    update, noise = tf.function(learner.update), learner.draw_noise(batch)
    seconds, ops = profile(lambda: update(episodes, real, None, noise)['d_loss'].numpy(), FLAGS.calls)  # pylint: disable=cell-var-from-loop
    results[size]['learner'] = summarise(
        f'[{size}] learner update, {batch}×{length - 1} frames '
        f'({batch * (length - 1) / seconds:.0f} frames/s '
        'under the profiler)',
        seconds,
        ops,
        FLAGS.calls,
        FLAGS.top,
    )
  print(json.dumps(results))


if __name__ == '__main__':
  app.run(main)
