r"""The CPU-scale reproductions of docs/results.md: trains them, then measures and plots them.

  python launch/reproduce.py --stage=train --data_dir=../shared/data    # ≈ 95 min on 2 cores
  python launch/reproduce.py --stage=report --data_dir=../shared/data   # ≈ 1 min: figures and numbers

Runs (configs/reproductions/, all with the tiny network):
  strokes_d / strokes_l2    conditional reconstruction of procedural strokes, SPIRAL (D) reward versus −l2
                            reward, stopping at the same number of frames (the paper's Figure 4 claim);
  mnist_unconditional       unconditional MNIST generation.
`--stage=train` starts the three runs at once (so the two rewards share the machine equally) and waits; a
run that already reached its limit resumes, sees it and stops at once. `--stage=report` reads their
TensorBoard logs and exports and writes under --out (default docs/results/): learning curves (PNG), the
agent-versus-search grids and the held-out figures of both strokes agents (launch/evaluate.py's
measurement), a grid of MNIST samples next to real digits, and results.json with every number.
"""
import json
import os
import signal
import subprocess
import sys
import time

from absl import app
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

RUNS = ('strokes_d', 'strokes_l2', 'mnist_unconditional')
RECONSTRUCTION_RUNS = ('strokes_d', 'strokes_l2')

flags.DEFINE_enum('stage', 'report', ['train', 'report'], 'Train the runs, or report on trained runs.')
flags.DEFINE_string('runs_dir', os.path.join(ROOT, 'runs', 'reproductions'), 'Where the runs live.')
flags.DEFINE_string('data_dir', None, 'Dataset directory holding mnist/ (MNIST is not embedded).')
flags.DEFINE_string('out', os.path.join(ROOT, 'docs', 'results'), 'Where the report writes its files.')
flags.DEFINE_integer('num_targets', 200, 'Held-out targets for the agent-versus-search comparison.')
flags.DEFINE_integer('num_samples', 64, 'MNIST samples in the grid.')
FLAGS = flags.FLAGS


def _config_file(run):
  return os.path.join(ROOT, 'configs', 'reproductions', f'{run}.cfg')


def train() -> int:
  """Starts every run as its own `launch/train.py --role=all` and waits for all of them."""
  os.makedirs(FLAGS.runs_dir, exist_ok=True)
  procs = {}
  for run in RUNS:
    command = [sys.executable, os.path.join(ROOT, 'launch', 'train.py'), f'--flagfile={_config_file(run)}',
               f'--root_dir={os.path.join(FLAGS.runs_dir, run)}']
    if FLAGS.data_dir:
      command.append(f'--data_dir={FLAGS.data_dir}')
    log = open(os.path.join(FLAGS.runs_dir, f'{run}.out'), 'ab')  # pylint: disable=consider-using-with
    procs[run] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    print(f'[reproduce] {run}: pid {procs[run].pid}, log {log.name}', flush=True)
  try:
    codes = {run: proc.wait() for run, proc in procs.items()}
  except KeyboardInterrupt:  # Each run checkpoints on SIGINT; wait for them to finish doing so.
    for proc in procs.values():
      proc.send_signal(signal.SIGINT)
    codes = {run: proc.wait() for run, proc in procs.items()}
  print(f'[reproduce] exit codes: {codes}', flush=True)
  return max(abs(c) for c in codes.values())


def scalar_series(log_dir) -> dict:
  """{tag: [(learner_step, value), ...]} from the TensorBoard event files directly in `log_dir`."""
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if not os.path.isdir(log_dir):
    return {}  # E.g. no evaluator for an unconditional run.
  accumulator = event_accumulator.EventAccumulator(log_dir, size_guidance={event_accumulator.TENSORS: 0})
  accumulator.Reload()
  series = {}
  for tag in accumulator.Tags()['tensors']:
    points = [(e.step, tf.make_ndarray(e.tensor_proto)) for e in accumulator.Tensors(tag)]
    if points and points[0][1].size == 1:  # Scalars only (images are tensors too).
      series[tag] = sorted((step, float(value)) for step, value in points)
  return series


def _frames_per_step(run_dir):
  with open(os.path.join(run_dir, 'config.json')) as f:
    config = json.load(f)
  return config['batch_size'] * (config['episode_length'] - 1)


def _smooth(values, window):
  import numpy as np  # pylint: disable=g-import-not-at-top
  values = np.asarray(values, np.float64)
  if len(values) < window:
    return values
  kernel = np.ones(window) / window
  head = [values[:i + 1].mean() for i in range(window - 1)]
  return np.concatenate([head, np.convolve(values, kernel, mode='valid')])


def plot_curves(curves, path, title, ylabel, smooth=1):
  """curves: {label: (frames, values)} → one PNG line plot."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  figure, axes = plt.subplots(figsize=(6, 3.6), dpi=110)
  for label, (frames, values) in curves.items():
    axes.plot(frames, _smooth(values, smooth), label=label, marker='o' if len(frames) < 20 else None)
  axes.set_xlabel('environment frames')
  axes.set_ylabel(ylabel)
  axes.set_title(title)
  axes.grid(alpha=0.3)
  axes.legend()
  figure.tight_layout()
  figure.savefig(path)
  plt.close(figure)
  return path


def _sample_grid(samples, reals, columns=16):
  """float32 image: rows of agent samples, a grey band, rows of real images."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  def rows(images):
    images = images[:len(images) // columns * columns]
    width = images.shape[1]
    return images.reshape(-1, columns, width, width, images.shape[-1]).transpose(0, 2, 1, 3, 4).reshape(
        -1, columns * width, images.shape[-1])
  top, bottom = rows(samples), rows(reals)
  band = np.full((4, top.shape[1], top.shape[2]), 0.5, np.float32)
  return np.concatenate([top, band, bottom], 0)


def report() -> int:
  import numpy as np  # pylint: disable=g-import-not-at-top
  from spiral_tf import components  # pylint: disable=g-import-not-at-top
  from spiral_tf import dashboard  # pylint: disable=g-import-not-at-top
  from spiral_tf import data  # pylint: disable=g-import-not-at-top
  from spiral_tf import evaluation  # pylint: disable=g-import-not-at-top
  from spiral_tf import image_io  # pylint: disable=g-import-not-at-top
  from spiral_tf import painter as painter_lib  # pylint: disable=g-import-not-at-top

  os.makedirs(FLAGS.out, exist_ok=True)
  missing = [run for run in RUNS if not os.path.isdir(components.export_dir(os.path.join(FLAGS.runs_dir, run)))]
  if missing:
    print(f'reproduce.py: error: no export for {missing} under {FLAGS.runs_dir}: run --stage=train first',
          file=sys.stderr)
    return 1
  results, train, evals = {}, {}, {}
  for run in RUNS:
    run_dir = os.path.join(FLAGS.runs_dir, run)
    per_step = _frames_per_step(run_dir)
    train[run] = scalar_series(dashboard.learner_log_dir(run_dir))
    evals[run] = scalar_series(dashboard.eval_log_dir(run_dir))
    steps = [s for s, _ in train[run].get('d_loss', [])]
    metadata = painter_lib.read_export_metadata(components.export_dir(run_dir))
    results[run] = {'learner_steps': int(metadata.get('learner_step') or 0),
                    'frames': int(metadata.get('learner_step') or 0) * per_step,
                    'logged_steps': len(steps), 'frames_per_learner_step': per_step}

  def frames_and(series, run):
    per_step = results[run]['frames_per_learner_step']
    return [s * per_step for s, _ in series], [v for _, v in series]

  labels = {'strokes_d': 'SPIRAL reward (D)', 'strokes_l2': 'l2 reward'}
  figures = {}
  figures['strokes_train_l2'] = plot_curves(
      {labels[r]: frames_and(train[r]['l2_to_target'], r) for r in RECONSTRUCTION_RUNS},
      os.path.join(FLAGS.out, 'strokes_train_l2.png'),
      'Procedural strokes: l2 of the final canvas (training episodes)', 'mean squared error per pixel',
      smooth=10)
  if all('eval/agent_mse' in evals[r] for r in RECONSTRUCTION_RUNS):
    curves = {labels[r]: frames_and(evals[r]['eval/agent_mse'], r) for r in RECONSTRUCTION_RUNS}
    blank = evals['strokes_d'].get('eval/blank_mse')
    if blank:
      frames, _ = frames_and(evals['strokes_d']['eval/agent_mse'], 'strokes_d')
      curves['blank canvas'] = (frames, [blank[0][1]] * len(frames))
    figures['strokes_eval_mse'] = plot_curves(
        curves, os.path.join(FLAGS.out, 'strokes_eval_mse.png'),
        'Procedural strokes: held-out reconstruction error', 'mean squared error per pixel')
  figures['mnist_d_scores'] = plot_curves(
      {name: frames_and(train['mnist_unconditional'][tag], 'mnist_unconditional')
       for name, tag in (('D(real digits)', 'd_score_real'), ('D(agent canvases)', 'd_score_fake'))},
      os.path.join(FLAGS.out, 'mnist_d_scores.png'), 'Unconditional MNIST: discriminator scores',
      'mean D output', smooth=10)

  # Held-out reconstruction: each strokes agent against equal-renders greedy search, same targets.
  for run in RECONSTRUCTION_RUNS:
    painter = painter_lib.Painter.from_saved_model(components.export_dir(os.path.join(FLAGS.runs_dir, run)))
    config = painter_lib.config_of(painter.metadata, run)
    targets = components.load_targets(config, 'test', limit=FLAGS.num_targets)
    for num_samples in (1, 4):
      result = evaluation.evaluate(painter, targets, num_samples=num_samples, seed=0)
      key = f'heldout_n{num_samples}'
      results[run][key] = {
          'agent_mse': float(result.agent_mse.mean()), 'agent_mse_sem': float(
              result.agent_mse.std(ddof=1) / np.sqrt(len(targets))),
          'baseline_mse': float(result.baseline_mse.mean()), 'blank_mse': float(result.blank_mse.mean()),
          'agent_beats_baseline_fraction': float(np.mean(result.agent_mse < result.baseline_mse)),
          'renders_per_target': result.renders_per_target, 'num_targets': len(targets)}
      if num_samples == 1:
        figures[f'{run}_grid'] = evaluation.write_grid(os.path.join(FLAGS.out, f'{run}_grid.png'), result)
      print(f'[reproduce] {run} N={num_samples}: {results[run][key]}', flush=True)
    results[run]['final_train_l2'] = float(np.mean([v for _, v in train[run]['l2_to_target'][-10:]]))

  # Unconditional MNIST samples next to real test digits.
  run_dir = os.path.join(FLAGS.runs_dir, 'mnist_unconditional')
  painter = painter_lib.Painter.from_saved_model(components.export_dir(run_dir))
  samples = np.stack([p.canvas for p in painter.paint(None, num_samples=FLAGS.num_samples, seed=0)])
  reals = data.load_images('mnist', 'test', data_dir=FLAGS.data_dir, channels=1)[:32].astype(np.float32) / 255
  figures['mnist_samples'] = image_io.write_png(os.path.join(FLAGS.out, 'mnist_samples.png'),
                                                image_io.upscale_nearest(_sample_grid(samples, reals), 2))
  results['mnist_unconditional'].update({
      'sample_mean_ink': float(1 - samples.mean()), 'real_mean_ink': float(1 - reals.mean()),
      'final_d_score_real': train['mnist_unconditional']['d_score_real'][-1][1],
      'final_d_score_fake': train['mnist_unconditional']['d_score_fake'][-1][1]})

  results['figures'] = {k: os.path.relpath(v, FLAGS.out) for k, v in figures.items()}
  results['written'] = time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())
  image_io.write_json(os.path.join(FLAGS.out, 'results.json'), results)
  print(json.dumps(results))
  return 0


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  return train() if FLAGS.stage == 'train' else report()


if __name__ == '__main__':
  app.run(main)
