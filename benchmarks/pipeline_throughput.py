r"""End-to-end training throughput: Reverb + N actors + learner, as `launch/train.py --role=all` runs them.

For each network size, actor count and environments per actor it starts the training run, lets it warm
up, measures for a fixed time after the learner's first step (so start-up and XLA compilation are not
counted, however slow they are on a busy machine), stops it with SIGTERM, then reads the learner's
TensorBoard scalars over the measured window: frames/s (environment frames the learner consumed) and
its busy fraction (time in the update ÷ time in the update plus waiting for a batch), plus the queue fill
and policy lag. The fewest actors × environments that keep the learner ≥ 90 % busy is the setting to use
on this machine: more only take CPU from the learner.

  python benchmarks/pipeline_throughput.py      # tiny and deepmind, 1–2 actors × 1–8 envs
  python benchmarks/pipeline_throughput.py --sizes=deepmind --train_flags=jit_compile=false
  python benchmarks/pipeline_throughput.py --sizes=tiny --actors=1,2,3 --envs_per_actor=8 --seconds=120 \
      --nostop_at_target                                         # every setting, not only up to the target
  python benchmarks/pipeline_throughput.py --sizes=tiny --actors=1 --envs_per_actor=8 --learner_workers=1,2
  python benchmarks/pipeline_throughput.py --precisions=float32,mixed_bfloat16 --envs_per_actor=2,4,8

`--learner_workers=1,2` measures each setting with one learner (the default strategy) and with two
MultiWorkerMirroredStrategy workers on this host (`--num_learner_workers=2`, the same global batch), and
reports the learners' CPU seconds per update (all workers' processes, from /proc, over the measured
window): on one host with 2 cores there is no speed-up to expect, so the difference is what the per-step
all-reduces and votes of the multi-worker learner cost.

`--precisions=float32,mixed_bfloat16` measures each setting with the learner in each `--precision`
(the actors compute in float32 either way), one after the other in the same run, so that the end-to-end
gain of bfloat16 is read on one machine in one state.

The last line is one JSON object: "frames_per_s", "learner_busy_fraction", "num_actors",
"envs_per_actor", "size" of that setting for the first size, "needed" (the same per size) and "runs"
(every measurement).
"""

import json
import os
import pathlib
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

from absl import app
from absl import flags

from spiral_tf import config
from spiral_tf import dashboard
from spiral_tf import run_dir

ROOT = pathlib.Path(__file__).resolve().parent.parent
flags.DEFINE_list('sizes', ['tiny', 'deepmind'], 'Network sizes to measure.')
flags.DEFINE_list('actors', ['1', '2'], 'Actor counts to try.')
flags.DEFINE_list('envs_per_actor', ['1', '2', '8'], 'Environments per actor to try (with each actor count).')
flags.DEFINE_float('seconds', 60.0, 'Measured training time per setting, after the warm-up.')
flags.DEFINE_float(
    'warmup_seconds',
    20.0,
    "Ignored time after the learner's first (compiling) step: "
    'the queue filled during compilation drains first.',
)
flags.DEFINE_float('startup_timeout_seconds', 900.0, "Longest wait for the learner's first step.")
flags.DEFINE_float('busy_target', 0.9, 'Learner busy fraction a setting must reach.')
flags.DEFINE_bool(
    'stop_at_target',
    True,
    'Per size, stop at the first setting (fewest environments '
    'first) that reaches --busy_target; more actors only take CPU from the learner.',
)
flags.DEFINE_string('flagfile_base', 'configs/strokes.cfg', 'The run to measure.')
flags.DEFINE_list(
    'learner_workers',
    ['1'],
    'Learner worker counts to try (> 1: --strategy=multi_worker ' '--num_learner_workers=N on this host).',
)
flags.DEFINE_list('precisions', ['float32'], 'Learner --precision values to try, each with every setting.')
flags.DEFINE_list(
    'train_flags',
    [],
    'More launch/train.py flags for every setting, without the leading ' '--, e.g. jit_compile=false.',
)
FLAGS = flags.FLAGS

LEARNER_STEP_PREFIX = '[learner] step '
LEARNER_STARTED = re.compile(r'^\[supervisor\] started (learner(?:-\d+)?) \(pid (\d+)\)')
STOP_TIMEOUT_S = 180.0  # The learner checkpoints and exports on SIGTERM.


def scalar_events(log_dir):
  """{tag: [(wall_time, step, value)]} of the scalar summaries in the event files directly in `log_dir`."""
  # Only when the runs are over: this process waits beside the training it measures, and TensorFlow
  # loaded early would take its memory and start-up CPU from them.
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  accumulator = event_accumulator.EventAccumulator(str(log_dir), size_guidance={event_accumulator.TENSORS: 0})
  accumulator.Reload()
  values = {}
  for tag in accumulator.Tags()['tensors']:
    # Images are tensors too (a vector of strings); choose by plugin, not by the shape of one event.
    if accumulator.SummaryMetadata(tag).plugin_data.plugin_name != 'scalars':
      continue
    values[tag] = [
        (e.wall_time, e.step, float(tf.make_ndarray(e.tensor_proto).item())) for e in accumulator.Tensors(tag)
    ]
  return values


def window_means(scalars, start_wall_time, tags):
  """Mean of each tag over the events logged at or after `start_wall_time`, and how many there were."""
  means, count = {}, 0
  for tag in tags:
    kept = [v for wall, _, v in scalars.get(tag, []) if wall >= start_wall_time]
    means[tag] = sum(kept) / len(kept) if kept else float('nan')
    count = max(count, len(kept))
  return means, count


def _cpu_seconds(pids):
  """User + system CPU seconds of the processes `pids` so far (Linux /proc; 0 for one that is gone)."""
  total = 0.0
  for pid in pids:
    try:
      with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    except OSError:
      continue
    total += (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')  # utime, stime.
  return total


def _train(command, measure_s, warmup_s=0.0):
  """Runs `command` until `measure_s` seconds after the learner's first step, then stops it (SIGTERM).

  Returns (the learner's first step's monotonic time, the output's tail, the learner processes' CPU
  seconds per learner step from `warmup_s` after the first step to the end, or None). Raises if the run
  ends or stalls before that.
  """
  proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  lines = queue.Queue()

  def read_output():  # In a thread, so that the wait below has a deadline.
    for line in proc.stdout:
      lines.put(line)

  reader = threading.Thread(target=read_output, daemon=True)
  reader.start()
  tail, first_step_at, learners, step, window = [], None, [], 0, None
  deadline = time.monotonic() + FLAGS.startup_timeout_seconds
  try:
    while time.monotonic() < deadline:
      try:
        line = lines.get(timeout=1.0)
        tail = (tail + [line.rstrip()])[-40:]
        started = LEARNER_STARTED.match(line)
        if started:
          learners.append(int(started.group(2)))
        if line.startswith(LEARNER_STEP_PREFIX):
          step = int(line[len(LEARNER_STEP_PREFIX) :].split()[0])
          if first_step_at is None:
            first_step_at = time.monotonic()
            deadline = first_step_at + measure_s
      except queue.Empty:
        pass
      if first_step_at is not None and window is None and time.monotonic() >= first_step_at + warmup_s:
        window = (_cpu_seconds(learners), step)
      if proc.poll() is not None and lines.empty():
        raise RuntimeError(
            f'training exited (code {proc.returncode}) before the measurement ended:\n' + '\n'.join(tail)
        )
    if first_step_at is None:
      raise RuntimeError(
          f'no learner step within --startup_timeout_seconds='
          f'{FLAGS.startup_timeout_seconds:.0f}:\n' + '\n'.join(tail)
      )
    cpu_per_step = None
    if window is not None and step > window[1]:
      cpu_per_step = (_cpu_seconds(learners) - window[0]) / (step - window[1])
  finally:
    if proc.poll() is None:
      proc.send_signal(signal.SIGTERM)  # The supervisor stops its children, learner first.
      try:
        proc.wait(timeout=STOP_TIMEOUT_S)
      except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    reader.join(timeout=10)
  return first_step_at, tail, cpu_per_step


def measure(size, num_actors, envs_per_actor, learner_workers=1, precision='float32'):
  with tempfile.TemporaryDirectory() as tmp:
    root = os.path.join(tmp, 'run')
    measure_s = FLAGS.warmup_seconds + FLAGS.seconds
    # --max_minutes only guards against a run that outlives this script.
    bound_minutes = (FLAGS.startup_timeout_seconds + measure_s + STOP_TIMEOUT_S) / 60
    command = [
        sys.executable,
        str(ROOT / 'launch' / 'train.py'),
        f'--flagfile={FLAGS.flagfile_base}',
        f'--root_dir={root}',
        f'--network_size={size}',
        f'--num_actors={num_actors}',
        f'--envs_per_actor={envs_per_actor}',
        f'--max_minutes={bound_minutes:.1f}',
        # No frame limit, so no schedule that ends at one (the rate does not change the speed).
        '--max_learner_steps=0',
        '--max_frames=0',
        '--policy_learning_rate_decay=none',
        '--log_every_seconds=5',
        '--checkpoint_every_minutes=1000',
        '--evaluator=false',
        f'--precision={precision}',
        *(f'--{f}' for f in FLAGS.train_flags),
    ]
    if learner_workers > 1:
      command += ['--strategy=multi_worker', f'--num_learner_workers={learner_workers}']
    _, _, cpu_per_step = _train(command, measure_s, FLAGS.warmup_seconds)
    scalars = scalar_events(dashboard.learner_log_dir(root))
    with open(run_dir.RunDir(root).config_file) as f:  # What the run used (flag file + --train_flags).
      jit_compile = json.load(f)['jit_compile']
  rates = scalars.get('frames_per_s', [])
  if not rates:
    raise RuntimeError(
        f'{size}, {num_actors} actors × {envs_per_actor} envs: the learner logged no ' 'frames_per_s'
    )
  # The first event is the compiling step; the window starts `warmup_seconds` after it.
  means, intervals = window_means(
      scalars,
      rates[0][0] + FLAGS.warmup_seconds,
      ('frames_per_s', 'busy_fraction', 'learner_steps_per_s', 'queue_size', 'policy_lag_steps'),
  )
  return {
      'size': size,
      'learner': 'xla' if jit_compile else 'graph',
      'num_actors': num_actors,
      'envs_per_actor': envs_per_actor,
      'learner_workers': learner_workers,
      'precision': precision,
      'learner_cpu_s_per_update': cpu_per_step,
      'learner_steps': max(step for _, step, _ in rates),
      'intervals': intervals,
      'frames_per_s': means['frames_per_s'],
      'learner_busy_fraction': means['busy_fraction'],
      'learner_steps_per_s': means['learner_steps_per_s'],
      'queue_size': means['queue_size'],
      'policy_lag_steps': means['policy_lag_steps'],
  }


def needed(runs, busy_target):
  """The run with the fewest actors × envs (then actors) that keeps the learner busy enough, else the
  busiest one."""
  busy_enough = [r for r in runs if r['learner_busy_fraction'] >= busy_target]
  if busy_enough:
    return min(busy_enough, key=lambda r: (r['num_actors'] * r['envs_per_actor'], r['num_actors']))
  return max(runs, key=lambda r: r['learner_busy_fraction'])


def main(argv):
  del argv
  sizes = FLAGS.sizes
  actors = [int(a) for a in FLAGS.actors]
  envs = [int(e) for e in FLAGS.envs_per_actor]
  workers = [int(w) for w in FLAGS.learner_workers]
  precisions = FLAGS.precisions
  if not precisions or set(precisions) - set(config.PRECISIONS):
    raise app.UsageError(
        f'--precisions: choose from {",".join(config.PRECISIONS)} '
        f'(got {",".join(precisions) or "nothing"})'
    )
  for name, values in (('actors', actors), ('envs_per_actor', envs), ('learner_workers', workers)):
    if not values or min(values) < 1:
      raise app.UsageError(f'--{name} needs one or more counts >= 1, got {values}')
  unknown = sorted(set(sizes) - {'tiny', 'deepmind'})
  if not sizes or unknown:
    raise app.UsageError(f'--sizes: choose from tiny,deepmind (got {",".join(sizes) or "nothing"})')
  if FLAGS.seconds <= 0 or FLAGS.warmup_seconds < 0:
    raise app.UsageError(
        f'--seconds must be > 0 (got {FLAGS.seconds}), --warmup_seconds >= 0 ' f'(got {FLAGS.warmup_seconds})'
    )
  print(
      f'load average at start {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores); measuring '
      f'{FLAGS.seconds:.0f} s after a {FLAGS.warmup_seconds:.0f} s warm-up per setting',
      flush=True,
  )
  # Fewest environments first; with --stop_at_target a size is done at its first busy-enough setting.
  settings = sorted({(n, e) for n in actors for e in envs}, key=lambda s: (s[0] * s[1], s[0]))
  runs = []
  # The learner variants of one size: worker counts × precisions, the first of each the reference.
  variants = [(w, p) for w in workers for p in precisions]
  for size in sizes:
    for w, precision in variants:
      for n, e in settings:
        run = measure(size, n, e, w, precision)
        runs.append(run)
        cpu = run['learner_cpu_s_per_update']
        print(
            f'{size:9s} {run["learner"]:5s} {precision} learner × {w}, {n} actor(s) × {e:2d} env(s): '
            f'{run["frames_per_s"]:8.1f} frames/s  '
            f'learner busy {100 * run["learner_busy_fraction"]:5.1f} %  '
            f'{run["learner_steps_per_s"]:5.2f} steps/s  queue {run["queue_size"]:5.1f}  '
            f'lag {run["policy_lag_steps"]:4.1f} steps  learner CPU '
            f'{"n/a" if cpu is None else f"{cpu:.3f}"} s/update  ({run["learner_steps"]} learner steps, '
            f'{run["intervals"]} intervals)',
            flush=True,
        )
        if FLAGS.stop_at_target and run['learner_busy_fraction'] >= FLAGS.busy_target:
          break
  per_size = {}
  for size in sizes:
    for w, precision in variants:
      best = needed(
          [
              r
              for r in runs
              if r['size'] == size and r['learner_workers'] == w and r['precision'] == precision
          ],
          FLAGS.busy_target,
      )
      reached = best['learner_busy_fraction'] >= FLAGS.busy_target
      print(
          f'{size} ({precision} learner × {w}): '
          f'{"fewest" if reached else "no setting reached the target; busiest"}: '
          f'{best["num_actors"]} actor(s) × {best["envs_per_actor"]} env(s) → '
          f'{best["frames_per_s"]:.1f} frames/s, learner busy {100 * best["learner_busy_fraction"]:.1f} %',
          flush=True,
      )
      if (w, precision) == variants[0]:  # The actors × envs a learner needs: the reference variant's.
        per_size[size] = {
            k: best[k] for k in ('num_actors', 'envs_per_actor', 'frames_per_s', 'learner_busy_fraction')
        }
  first = per_size[sizes[0]]
  print(
      json.dumps(
          {
              'frames_per_s': round(first['frames_per_s'], 1),
              'learner_busy_fraction': round(first['learner_busy_fraction'], 3),
              'num_actors': first['num_actors'],
              'envs_per_actor': first['envs_per_actor'],
              'size': sizes[0],
              'busy_target': FLAGS.busy_target,
              'needed': per_size,
              'train_flags': FLAGS.train_flags,
              'load_average_end': round(os.getloadavg()[0], 2),
              'runs': runs,
          }
      )
  )


if __name__ == '__main__':
  app.run(main)
