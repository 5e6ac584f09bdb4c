r"""End-to-end training throughput: Reverb + N actors + learner, as `launch/train.py --role=all` runs them.

For each network size and actor count it trains for a fixed time, then reads the learner's TensorBoard
scalars: frames/s (environment frames consumed by the learner) and the learner's busy fraction (time in
the update ÷ time in the update plus waiting for a batch), averaged after a warm-up. The number of actors
that keeps the learner ≥ 90 % busy is the one to use on this machine.

  python benchmarks/pipeline_throughput.py                       # smoke and deepmind sizes, 1–4 actors
  python benchmarks/pipeline_throughput.py --sizes=tiny --actors=2,3 --seconds=120

The last line is one JSON object: {"frames_per_s", "learner_busy_fraction", "num_actors"} for the best
setting of the tiny network, plus "runs" with every measurement.
"""
import json
import os
import pathlib
import subprocess
import sys
import tempfile

from absl import app
from absl import flags

ROOT = pathlib.Path(__file__).resolve().parent.parent
flags.DEFINE_list('sizes', ['tiny', 'deepmind'], 'Network sizes to measure.')
flags.DEFINE_list('actors', ['1', '2', '3', '4'], 'Actor counts to try.')
flags.DEFINE_float('seconds', 150.0, 'Training time per setting (including start-up and compilation).')
flags.DEFINE_float('warmup_steps_fraction', 0.3, 'Ignore the first part of the logged steps.')
flags.DEFINE_string('flagfile_base', 'configs/strokes.cfg', 'The run to measure.')
flags.DEFINE_integer('envs_per_actor', 8, 'Environments per actor.')
FLAGS = flags.FLAGS


def _scalars(root_dir):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  values = {}
  for path in sorted((pathlib.Path(root_dir) / 'tensorboard').glob('events.*')):
    acc = event_accumulator.EventAccumulator(str(path), size_guidance={'tensors': 0})
    acc.Reload()
    for tag in acc.Tags()['tensors']:
      events = [(e.step, tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)]
      if events and events[0][1].ndim == 0:  # Scalars only (images are tensors too).
        values[tag] = [(step, float(v)) for step, v in events]
  return values


def measure(size, num_actors, seconds):
  with tempfile.TemporaryDirectory() as tmp:
    root = os.path.join(tmp, 'run')
    command = [sys.executable, str(ROOT / 'launch' / 'train.py'), f'--flagfile={FLAGS.flagfile_base}',
               f'--root_dir={root}', f'--network_size={size}', f'--num_actors={num_actors}',
               f'--envs_per_actor={FLAGS.envs_per_actor}', f'--max_minutes={seconds / 60}',
               '--max_learner_steps=0', '--log_every_seconds=5', '--checkpoint_every_minutes=1000']
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
      raise RuntimeError(f'training failed ({size}, {num_actors} actors):\n{result.stdout[-2000:]}'
                         f'\n{result.stderr[-2000:]}')
    scalars = _scalars(root)
  fps = scalars.get('frames_per_s', [])
  busy = scalars.get('busy_fraction', [])
  skip = int(len(fps) * FLAGS.warmup_steps_fraction) + 1  # The first interval includes compilation.
  fps, busy = [v for _, v in fps[skip:]], [v for _, v in busy[skip:]]
  steps = max((s for s, _ in scalars.get('policy_loss', [(0, 0)])), default=0)
  return {'size': size, 'num_actors': num_actors, 'learner_steps': steps,
          'frames_per_s': sum(fps) / len(fps) if fps else 0.0,
          'learner_busy_fraction': sum(busy) / len(busy) if busy else 0.0, 'intervals': len(fps)}


def main(argv):
  del argv
  runs = []
  for size in FLAGS.sizes:
    for n in (int(a) for a in FLAGS.actors):
      run = measure(size, n, FLAGS.seconds)
      runs.append(run)
      print(f'{size:9s} actors {n}: {run["frames_per_s"]:8.1f} frames/s  learner busy '
            f'{100 * run["learner_busy_fraction"]:5.1f} %  ({run["learner_steps"]} learner steps, '
            f'{run["intervals"]} intervals measured)', flush=True)
  tiny = [r for r in runs if r['size'] == FLAGS.sizes[0]]
  busy_enough = [r for r in tiny if r['learner_busy_fraction'] >= 0.9]
  best = min(busy_enough, key=lambda r: r['num_actors']) if busy_enough else max(
      tiny, key=lambda r: r['learner_busy_fraction'])
  print(json.dumps({'frames_per_s': round(best['frames_per_s'], 1),
                    'learner_busy_fraction': round(best['learner_busy_fraction'], 3),
                    'num_actors': best['num_actors'], 'size': best['size'], 'runs': runs}))


if __name__ == '__main__':
  app.run(main)
