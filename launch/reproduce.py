r"""The CPU-scale reproductions of docs/results.md: trains them, then measures and plots them.

  python launch/reproduce.py --stage=train --reproductions=r1 --data_dir=../shared/data   # ≈ 80 min, 2 runs
  python launch/reproduce.py --stage=report --reproductions=r1 --data_dir=../shared/data  # ≈ 5 min

Reproductions (each a set of runs of launch/train.py, one per config and seed, under --runs_dir):
  r1  conditional MNIST, the paper's central claim: configs/reproductions/mnist_d.cfg (D reward) against
      mnist_l2.cfg (−l2 reward), 1,000,000 frames each. Report: held-out MSE on --num_targets MNIST test
      digits (mean ± s.e.) under sampled, greedy and best-of-4 decoding, the blank canvas, greedy search
      with the same renders (N = 1 and N = 4), and the issue's targets checked.
  r2  unconditional MNIST: configs/reproductions/mnist_unconditional.cfg, 3,000,000 frames. Report: 1,000
      samples scored by a small CNN trained here on MNIST train (spiral_tf/inference/digit_score.py) — mean
      max-softmax confidence and the number of classes holding ≥ 2 % of samples — beside the same figures for
      real test digits.
  r3  the quick start: configs/strokes.cfg (what `make train` runs) and its ablation with a constant policy
      learning rate (reproductions/strokes_constant_lr.cfg). Report: held-out MSE on the procedural-strokes
      test targets, greedy and sampled decoding, against the blank canvas (target ≤ 0.7×, greedy).
  r1_entropy_cost  r1's D agent beside the same run at half its entropy cost
      (reproductions/mnist_d_entropy_cost_half.cfg): r1's report for both.
  precision  the quick start in float32 beside --precision=mixed_bfloat16
      (reproductions/strokes_mixed_bfloat16.cfg): r3's report for both, with the learner's frames/s.
  r2_decayed  r2 with the policy learning rate decayed to 0 over 1,500,000 frames
      (reproductions/mnist_unconditional_decayed.cfg): r2's report, beside r2's stored curves.
  r2_retries  r2 for 1,000,000 frames with one change each, side by side: the SPIRAL++ reward
      (reproductions/mnist_unconditional_spiralpp.cfg) and half the entropy cost
      (mnist_unconditional_entropy_cost_half.cfg): r2's report for both, beside r2's stored curves.
  r2_stroke_penalty  r2 for 1,000,000 frames with the paper's MNIST penalty per new disjoint stroke, 0.25
      and 1 (reproductions/mnist_unconditional_stroke_penalty{,_high}.cfg): r2's report for both.
  population  issue 18: r1's D agent as a population of 4 with PBT, 4 × 250,000 frames
      (reproductions/mnist_d_population.cfg). Report: every member's held-out MSE as r1's, the best member
      and the spread beside r1's single runs (from results.json), the frames the members' learners
      trained on, the lineage, and the members' hyper-parameters and held-out MSE against frames.
  population_shared_d  the same population with SPIRAL++'s shared D
      (reproductions/mnist_d_population_shared_d.cfg): population's report.
`--stage=train` starts every run of the chosen reproductions at once (so the runs of one comparison share
the machine equally) and waits; a run that already reached its limit resumes, sees it and stops at once.
`--stage=report` reads their TensorBoard logs and exports and writes under --out (default docs/results/):
curves against frames (PNG), image grids and results.json (every number; reproductions not reported in
this call keep their entries). A reproduction whose runs are missing is skipped with a message.

Seeds trained in different sessions (r1, its ablation, r3, precision): a run directory stays on the
machine that trained it, so the report keeps in the repository what it needs of a run again — its figures
in results.json and its curves in curves/<run>.json. A later `--stage=report --seeds=0,1` whose seed-0
directory is gone takes seed 0 from there (marked 'source': 'stored' in results.json) and evaluates the
runs whose directories it has.
"""

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

from absl import app
from absl import flags
import numpy as np
from tensorboard.backend.event_processing import event_accumulator
import tensorflow as tf

from spiral_tf import components
from spiral_tf import dashboard
from spiral_tf import data
from spiral_tf import run_dir as run_dir_lib
from spiral_tf.inference import digit_score
from spiral_tf.inference import evaluation
from spiral_tf.inference import image_io
from spiral_tf.inference import painter as painter_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Reproduction → its configs (configs/<path>.cfg).
REPRODUCTIONS = {
    'r1': ('reproductions/mnist_d', 'reproductions/mnist_l2'),
    'r2': ('reproductions/mnist_unconditional',),
    'r2_decayed': ('reproductions/mnist_unconditional_decayed',),
    'r2_retries': (
        'reproductions/mnist_unconditional_spiralpp',
        'reproductions/mnist_unconditional_entropy_cost_half',
    ),
    'r2_stroke_penalty': (
        'reproductions/mnist_unconditional_stroke_penalty',
        'reproductions/mnist_unconditional_stroke_penalty_high',
    ),
    'r3': ('strokes', 'reproductions/strokes_constant_lr'),
    'precision': ('strokes', 'reproductions/strokes_mixed_bfloat16'),
    'r1_entropy_cost': ('reproductions/mnist_d', 'reproductions/mnist_d_entropy_cost_half'),
    'population': ('reproductions/mnist_d_population',),
    'population_shared_d': ('reproductions/mnist_d_population_shared_d',),
}
# Reproductions reported by held-out reconstruction of MNIST test digits (report_reconstruction): their
# runs' figures in results.json can stand in for a run trained in an earlier session.
RECONSTRUCTION = ('r1', 'r1_entropy_cost')
STROKES = ('r3', 'precision')  # Scored on strokes targets by report_strokes.
LABELS = {
    'mnist_d': 'D reward (SPIRAL++)',
    'mnist_l2': 'l2 reward',
    'strokes': 'make train agent',
    'mnist_unconditional': 'unconditional MNIST',
    'mnist_unconditional_decayed': 'unconditional MNIST, decayed learning rate',
    'mnist_unconditional_spiralpp': 'unconditional MNIST, SPIRAL++ reward',
    'mnist_unconditional_entropy_cost_half': 'unconditional MNIST, entropy cost 0.005',
    'mnist_unconditional_stroke_penalty': 'unconditional MNIST, stroke penalty 0.25',
    'mnist_unconditional_stroke_penalty_high': 'unconditional MNIST, stroke penalty 1',
    'strokes_constant_lr': 'constant learning rate',
    'strokes_mixed_bfloat16': 'mixed_bfloat16 learner',
    'mnist_d_entropy_cost_half': 'D reward, entropy cost 0.005',
    'mnist_d_population': 'population of 4 (PBT)',
    'mnist_d_population_shared_d': 'population of 4 (PBT), shared D',
}

flags.DEFINE_enum('stage', 'report', ['train', 'report'], 'Train the runs, or report on trained runs.')
flags.DEFINE_list('reproductions', ['r1', 'r3'], f'Which of {sorted(REPRODUCTIONS)}.')
flags.DEFINE_list('seeds', ['0'], 'Seeds (--seed of train.py): one run per config and seed.')
flags.DEFINE_string('runs_dir', os.path.join(ROOT, 'runs', 'reproductions'), 'Where the runs live.')
flags.DEFINE_string('data_dir', None, 'Dataset directory holding mnist/ (MNIST is not embedded).')
flags.DEFINE_string('out', os.path.join(ROOT, 'docs', 'results'), 'Where the report writes its files.')
flags.DEFINE_integer('num_targets', 500, 'Held-out targets for the reconstruction figures.')
flags.DEFINE_integer('num_samples', 1000, 'Unconditional samples scored (r2).')
flags.DEFINE_integer('num_curve_samples', 200, "Samples scored per kept export for r2's curves.")
flags.DEFINE_list('train_flags', [], 'Extra train.py flags for every run (e.g. --max_minutes=30).')
FLAGS = flags.FLAGS


def _name(config):
  return os.path.basename(config)


def run_dir(config, seed):
  return os.path.join(FLAGS.runs_dir, _key(config, seed))


def _key(config, seed):
  """A run's name in results.json, curves/ and the figures: <config>-seed<k>."""
  return f'{_name(config)}-seed{seed}'


def _runs(reproduction):
  return [(config, int(seed)) for config in REPRODUCTIONS[reproduction] for seed in FLAGS.seeds]


def runs_to_train(results):
  """[(config, seed)] of --reproductions, each once, less those `results` (results.json) already holds."""
  runs = []
  for reproduction in FLAGS.reproductions:
    stored = stored_runs(reproduction, results)
    for config, seed in _runs(reproduction):
      key = _key(config, seed)
      if key in stored:
        print(
            f'[reproduce] {key}: not trained again, results.json has it ({stored[key]["source"]}; '
            'delete that entry to retrain)',
            flush=True,
        )
      elif (config, seed) not in runs:  # A run two reproductions share (r1's D agent and its ablation).
        runs.append((config, seed))
  return runs


def train() -> int:
  """Starts every run as its own `launch/train.py --role=all` and waits for all of them."""
  os.makedirs(FLAGS.runs_dir, exist_ok=True)
  procs = {}
  for config, seed in runs_to_train(read_results()):
    directory = run_dir(config, seed)
    command = [
        sys.executable,
        os.path.join(ROOT, 'launch', 'train.py'),
        f'--flagfile={os.path.join(ROOT, "configs", config + ".cfg")}',
        f'--root_dir={directory}',
        f'--seed={seed}',
        *FLAGS.train_flags,
    ]
    if FLAGS.data_dir:
      command.append(f'--data_dir={FLAGS.data_dir}')
    log = open(directory + '.out', 'ab')  # pylint: disable=consider-using-with
    procs[directory] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    print(
        f'[reproduce] {os.path.basename(directory)}: pid {procs[directory].pid}, log {log.name}', flush=True
    )
  try:
    while any(proc.poll() is None for proc in procs.values()):
      snapshot_exports(procs)
      time.sleep(SNAPSHOT_POLL_SECONDS)
    snapshot_exports(procs)
    codes = {run: proc.wait() for run, proc in procs.items()}
  except KeyboardInterrupt:  # Each run checkpoints on SIGINT; wait for them to finish doing so.
    for proc in procs.values():
      proc.send_signal(signal.SIGINT)
    codes = {run: proc.wait() for run, proc in procs.items()}
  print(f'[reproduce] exit codes: {codes}', flush=True)
  return max((abs(c) for c in codes.values()), default=0)


# Each run's export is rewritten at every checkpoint; train() keeps a copy of each one it sees under
# <run>/export_history/step_<learner step>/ so that a report can score the agent along the way (r2's curve
# of the digit score against frames, which no TensorBoard scalar holds).
EXPORT_HISTORY = 'export_history'
SNAPSHOT_POLL_SECONDS = 30


def snapshot_exports(run_dirs):
  """Copies each run's current export into its export history if that learner step is not there yet."""
  for directory in run_dirs:
    export = components.export_dir(directory)
    try:
      step = int(painter_lib.read_export_metadata(export).get('learner_step') or 0)
    except (painter_lib.ModelError, OSError, ValueError):
      continue  # No export yet, or one being replaced right now: the next poll sees it.
    destination = os.path.join(directory, EXPORT_HISTORY, f'step_{step:08d}')
    if step and not os.path.isdir(destination):
      try:
        shutil.copytree(export, destination + '.partial', dirs_exist_ok=True)
        if int(painter_lib.read_export_metadata(destination + '.partial').get('learner_step')) == step:
          os.replace(destination + '.partial', destination)
      except (shutil.Error, painter_lib.ModelError, OSError, ValueError, TypeError):
        pass  # The export was renamed under the copy; the next poll copies it again.


def export_history(directory):
  """[(learner step, export directory)] of `directory`'s export history, oldest first."""
  root = os.path.join(directory, EXPORT_HISTORY)
  names = (
      sorted(n for n in os.listdir(root) if n.startswith('step_') and '.' not in n)
      if os.path.isdir(root)
      else []
  )
  return [(int(n[len('step_') :]), os.path.join(root, n)) for n in names]


# --- reading runs --------------------------------------------------------------------------------------


def scalar_series(log_dir) -> dict:
  """{tag: [(learner_step, value), ...]} from the TensorBoard event files directly in `log_dir`."""
  if not os.path.isdir(log_dir):
    return {}  # E.g. no evaluator for an unconditional run.
  accumulator = event_accumulator.EventAccumulator(log_dir, size_guidance={event_accumulator.TENSORS: 0})
  accumulator.Reload()
  series = {}
  for tag in accumulator.Tags()['tensors']:
    events = sorted(accumulator.Tensors(tag), key=lambda e: e.wall_time)
    points = [(e.step, tf.make_ndarray(e.tensor_proto)) for e in events]
    # Numeric scalars only (images are tensors too, and so is the custom-scalars layout, a string).
    if points and points[0][1].size == 1 and points[0][1].dtype.kind in 'fiu':
      # A step logged twice (a resumed run repeats the steps after its checkpoint; a population member
      # that copied another's checkpoint relives the steps after it) keeps its latest value.
      latest = {step: float(value) for step, value in points}
      series[tag] = sorted(latest.items())
  return series


class Run:
  """One trained run: its config, learning curves (against frames) and export.

  `member`: member i of the population that (config, seed) trained, rather than a single run.
  """

  def __init__(self, config, seed, member=None):
    self.name, self.seed, self.dir = _name(config), seed, run_dir(config, seed)
    self.key = _key(config, seed)
    if member is not None:
      self.dir = run_dir_lib.PopulationDir(self.dir).member(member).root
      self.key, self.member = f'{self.key}-member{member}', member
    self.export = components.export_dir(self.dir)
    with open(run_dir_lib.RunDir(self.dir).config_file) as f:  # Flat (config.to_dict): batch_size, ...
      settings = json.load(f)
    self.frames_per_step = settings['batch_size'] * (settings['episode_length'] - 1)
    self.train = scalar_series(dashboard.learner_log_dir(self.dir))
    self.eval = scalar_series(dashboard.eval_log_dir(self.dir))
    metadata = painter_lib.read_export_metadata(self.export)
    self.learner_steps = int(metadata.get('learner_step') or 0)
    self.frames = self.learner_steps * self.frames_per_step

  def curve(self, tag, source='train'):
    series = (self.train if source == 'train' else self.eval).get(tag, [])
    return [s * self.frames_per_step for s, _ in series], [v for _, v in series]

  def last_third_median(self, tag):
    _, values = self.curve(tag)
    return float(np.median(values[len(values) * 2 // 3 :])) if values else None

  def painter(self):
    return painter_lib.Painter.from_saved_model(self.export)


def _trained(config, seed):
  directory = run_dir(config, seed)
  population = run_dir_lib.PopulationDir(directory)
  if os.path.isfile(population.state_file):  # A population: every member's export.
    with open(population.state_file) as f:
      members = json.load(f)['num_members']
    return all(os.path.isdir(population.member(i).export) for i in range(members))
  return os.path.isdir(components.export_dir(directory))


def _missing(reproduction, stored=()):
  """Run directories of `reproduction` with no export here and no entry in `stored` (keys name-seedN)."""
  return [run_dir(c, s) for c, s in _runs(reproduction) if not _trained(c, s) and _key(c, s) not in stored]


# --- runs reported by an earlier call (their directories are elsewhere) -------------------------------

CURVES_DIR = 'curves'  # Under --out: <run>.json, the curves a report draws of that run.


def _curves_path(key):
  return os.path.join(FLAGS.out, CURVES_DIR, key + '.json')


def write_curves(run, tags):
  """Keeps `run`'s curves of `tags` ([(source, tag)], source 'train' or 'eval') against frames."""
  curves = {}
  for source, tag in tags:
    frames, values = run.curve(tag, source)
    curves.setdefault(source, {})[tag] = [frames, [float(f'{v:.6g}') for v in values]]
  os.makedirs(os.path.dirname(_curves_path(run.key)), exist_ok=True)
  image_io.write_json(_curves_path(run.key), {'frames_per_step': run.frames_per_step, **curves})


class StoredRun:
  """A run an earlier report evaluated: its results.json entry and the curves that report kept (if any)."""

  def __init__(self, config, seed, entry):
    self.name, self.seed, self.entry = _name(config), seed, entry
    self.key = _key(config, seed)
    self.frames, self.learner_steps = entry['frames'], entry.get('learner_steps')
    self.curves = {}
    if os.path.exists(_curves_path(self.key)):
      with open(_curves_path(self.key)) as f:
        self.curves = json.load(f)

  def curve(self, tag, source='train'):
    frames, values = self.curves.get(source, {}).get(tag, ([], []))
    return list(frames), list(values)


def stored_runs(reproduction, results):
  """{key: entry}: runs of `reproduction` not trained here that `results` (results.json) already evaluated.

  Only runs scored on held-out targets have such entries, and only if they were evaluated on as many
  targets as this call uses; an entry that was itself stored keeps the date of the report that evaluated
  it. A reconstruction reproduction (RECONSTRUCTION) takes any reconstruction entry (r1 and its ablation
  share the D agent); a strokes one (STROKES) only its own, since r3 and precision each trained a run
  named strokes-seed<k> of their own.
  """
  if reproduction in RECONSTRUCTION:
    earliers = [e for e in (results or {}).values() if isinstance(e, dict)]
    scored = lambda earlier, entry: earlier.get('num_targets') == FLAGS.num_targets and 'heldout' in entry
  elif reproduction in STROKES:
    earliers = [(results or {}).get(reproduction, {})]
    scored = lambda earlier, entry: entry.get('num_targets') == FLAGS.num_targets and 'greedy' in entry
  else:
    return {}
  pool = {}
  for earlier in earliers:
    for key, entry in earlier.get('runs', {}).items():
      if scored(earlier, entry):
        pool[key] = dict(entry, source=entry.get('source', f'stored (evaluated {earlier.get("written")})'))
  return {
      _key(c, s): pool[_key(c, s)]
      for c, s in _runs(reproduction)
      if not _trained(c, s) and _key(c, s) in pool
  }


# --- figures -------------------------------------------------------------------------------------------


def _smooth(values, window):
  values = np.asarray(values, np.float64)
  if len(values) < window:
    return values
  kernel = np.ones(window) / window
  head = [values[: i + 1].mean() for i in range(window - 1)]
  return np.concatenate([head, np.convolve(values, kernel, mode='valid')])


def plot_curves(curves, path, title, ylabel, smooth=1, logy=False):
  """curves: {label: (frames, values)} → one PNG line plot."""
  # Here, not at the top: choosing the Agg backend is process-wide, so it waits until a figure is drawn
  # (importing this module, as the tests do, leaves matplotlib alone).
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top  # after use('Agg')

  figure, axes = plt.subplots(figsize=(6, 3.6), dpi=110)
  for label, (frames, values) in curves.items():
    if len(frames):
      axes.plot(frames, _smooth(values, smooth), label=label, marker='o' if len(frames) < 20 else None)
  axes.set_xlabel('environment frames')
  axes.set_ylabel(ylabel)
  if logy:
    axes.set_yscale('log')
  axes.set_title(title)
  axes.grid(alpha=0.3)
  axes.legend(fontsize=8)
  figure.tight_layout()
  figure.savefig(path)
  plt.close(figure)
  return path


def _sample_grid(samples, reals, columns=16):
  """float32 image: rows of agent samples, a grey band, rows of real images."""

  def rows(images):
    images = images[: len(images) // columns * columns]
    width = images.shape[1]
    return (
        images.reshape(-1, columns, width, width, images.shape[-1])
        .transpose(0, 2, 1, 3, 4)
        .reshape(-1, columns * width, images.shape[-1])
    )

  top, bottom = rows(samples), rows(reals)
  band = np.full((4, top.shape[1], top.shape[2]), 0.5, np.float32)
  return np.concatenate([top, band, bottom], 0)


def _figure(name):
  return os.path.join(FLAGS.out, name + '.png')


# --- reports -------------------------------------------------------------------------------------------


def _stats(values):
  values = np.asarray(values, np.float64)
  return {
      'mean': float(values.mean()),
      'sem': float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0,
  }


def _reconstruction_figures(runs, targets, baselines):
  """Held-out MSE of each run under each decoding, greedy search and the blank canvas (same targets)."""
  figures, results = {}, {}
  for run in runs:
    painter = run.painter()
    for n in (1, 4):
      if n not in baselines:
        baselines[n] = evaluation.greedy_search_baseline(painter, targets, n, seed=0)
    decodings = {'sample': ('sample', 1), 'greedy': ('greedy', 1), 'best_of_4': ('sample', 4)}
    out = {}
    for name, (decoding, n) in decodings.items():
      result = evaluation.evaluate(
          painter, targets, num_samples=n, seed=0, decoding=decoding, baseline=baselines[n]
      )
      out[name] = dict(
          _stats(result.agent_mse),
          renders_per_target=result.renders_per_target,
          beats_search_fraction=float((result.agent_mse < result.baseline_mse).mean()),
      )
      if name == 'greedy':
        figures[f'{run.key}_grid'] = evaluation.write_grid(_figure(f'{run.key}_grid'), result)
    out['blank'] = _stats(result.blank_mse)
    results[run.key] = out
    print(
        f'[reproduce] {run.name} seed {run.seed}: '
        + ', '.join(f'{k} {v["mean"]:.4f}±{v["sem"]:.4f}' for k, v in out.items()),
        flush=True,
    )
  search = {f'greedy_search_n{n}': _stats(b[1]) for n, b in sorted(baselines.items())}
  return figures, results, search


# What report_reconstruction draws of each run, kept in curves/<run>.json for a later report.
R1_CURVES = (
    ('eval', 'eval/agent_mse'),
    ('train', 'entropy'),
    ('train', 'diagnostics/normaliser_std'),
    ('train', 'l2_to_target'),
    ('train', 'd_score_real'),
    ('train', 'd_score_fake'),
)


def report_reconstruction(reproduction, results):
  """r1 (and its ablations): held-out MSE, search, blank, targets, curves. Stored runs from `results`."""
  stored = stored_runs(reproduction, results)
  runs = [Run(c, s) for c, s in _runs(reproduction) if _key(c, s) not in stored]
  if not runs:
    raise app.UsageError(
        f'{reproduction}: no run directory here to evaluate (every run would come from ' 'results.json)'
    )
  config = components.load_config(runs[0].dir)
  if FLAGS.data_dir:
    config = dataclasses.replace(config, data_dir=FLAGS.data_dir)
  targets = components.load_targets(config, 'test', limit=FLAGS.num_targets)
  figures, per_run, search = _reconstruction_figures(runs, targets, {})
  for run in runs:
    write_curves(run, R1_CURVES)
  per_run.update({key: entry['heldout'] for key, entry in stored.items()})
  for key, entry in stored.items():
    print(f'[reproduce] {key}: from results.json, {entry["source"]}', flush=True)
  runs += [StoredRun(c, s, stored[_key(c, s)]) for c, s in _runs(reproduction) if _key(c, s) in stored]
  by_config = {}
  for run in runs:
    by_config.setdefault(run.name, []).append(per_run[run.key])
  summary = {}
  for name, seeds in by_config.items():
    summary[name] = {
        k: {
            'mean_over_seeds': float(np.mean([s[k]['mean'] for s in seeds])),
            'per_seed': [s[k]['mean'] for s in seeds],
        }
        for k in seeds[0]
    }
  blank = per_run[next(iter(per_run))]['blank']['mean']
  d, l2 = summary.get('mnist_d'), summary.get('mnist_l2')
  targets_met = {}
  if d and l2:
    d_greedy = d['greedy']['mean_over_seeds']
    targets_met = {
        'd_greedy_le_half_blank': d_greedy <= 0.5 * blank,
        'd_below_l2 (greedy)': d_greedy < l2['greedy']['mean_over_seeds'],
        'd_best_of_4_below_search_n4': d['best_of_4']['mean_over_seeds'] < search['greedy_search_n4']['mean'],
    }

  curves = {f'{LABELS.get(r.name, r.name)}, seed {r.seed}': r.curve('eval/agent_mse', 'eval') for r in runs}
  frames = max((max(r.curve('eval/agent_mse', 'eval')[0] or [0]) for r in runs), default=0)
  curves['blank canvas'] = ([0, frames], [blank, blank])
  figures[f'{reproduction}_heldout_mse'] = plot_curves(
      curves,
      _figure(f'{reproduction}_heldout_mse'),
      'Conditional MNIST: held-out MSE (128 test digits, sampled)',
      'mean squared error per pixel',
  )
  for tag, title, ylabel, name, smooth, logy in (
      ('entropy', 'policy entropy per step (sum over sub-actions)', 'nats', 'entropy', 5, False),
      # Log scale: D's returns and −l2's differ by two orders of magnitude.
      (
          'diagnostics/normaliser_std',
          'running std of episode returns (reward scale)',
          'σ of returns',
          'reward_std',
          1,
          True,
      ),
      (
          'l2_to_target',
          'l2 of the final canvas (training episodes)',
          'mean squared error',
          'train_l2',
          10,
          False,
      ),
  ):
    name = f'{reproduction}_{name}'
    figures[name] = plot_curves(
        {f'{LABELS.get(r.name, r.name)}, seed {r.seed}': r.curve(tag) for r in runs},
        _figure(name),
        'Conditional MNIST: ' + title,
        ylabel,
        smooth=smooth,
        logy=logy,
    )
  figures[f'{reproduction}_d_scores'] = plot_curves(
      {
          f'{LABELS.get(r.name, r.name)} s{r.seed}: D({what})': r.curve(f'd_score_{what}')
          for r in runs
          for what in ('real', 'fake')
      },
      _figure(f'{reproduction}_d_scores'),
      'Conditional MNIST: D scores',
      'mean D output',
      smooth=10,
  )
  return {
      'runs': {
          r.key: r.entry
          if isinstance(r, StoredRun)
          else {
              'frames': r.frames,
              'learner_steps': r.learner_steps,
              'heldout': per_run[r.key],
              'entropy_last_third_median': r.last_third_median('entropy'),
              'd_real_last_third_median': r.last_third_median('d_score_real'),
              'd_fake_last_third_median': r.last_third_median('d_score_fake'),
              'normaliser_std_last_third_median': r.last_third_median('diagnostics/normaliser_std'),
          }
          for r in runs
      },
      'summary': summary,
      'search': search,
      'blank': blank,
      'num_targets': len(targets),
      'targets_met': targets_met,
      'figures': {k: os.path.relpath(v, FLAGS.out) for k, v in figures.items()},
  }


def stored_r2_curves(reproduction, results):
  """{label: (frames, values)} per score of R2's constant-rate runs as results.json keeps them (their kept
  exports' scores), to draw beside another unconditional reproduction at the same frames; {} for r2 itself,
  whose runs are reported from their directories."""
  if reproduction == 'r2':
    return {}
  curves = {'confidence': {}, 'classes': {}}
  for key, entry in results.get('r2', {}).get('runs', {}).items():
    history = entry.get('history', [])
    name, seed = key.rsplit('-seed', 1)
    label = f'{LABELS.get(name, name)}, seed {seed} (stored)'
    frames = [h['frames'] for h in history]
    curves['confidence'][label] = (frames, [h['mean_confidence'] for h in history])
    curves['classes'][label] = (frames, [h['classes_with_2_percent'] for h in history])
  return curves


def report_unconditional(reproduction, results):
  """R2's report for `reproduction`'s runs (r2 and its retries): digit scores of samples, their curves
  along the kept exports (beside R2's stored constant-rate curves for a reproduction other than r2),
  entropy, reward scale and D scores; figures named <reproduction>_*."""
  out = {'runs': {}}
  classifier = digit_score.train_classifier(FLAGS.data_dir)
  reals = data.load_images('mnist', 'test', data_dir=FLAGS.data_dir, channels=1)[: FLAGS.num_samples]
  out['real_test_digits'] = digit_score.score(classifier.model, reals.astype(np.float32) / 255)
  out['classifier_test_accuracy'] = classifier.test_accuracy
  runs = [Run(config, seed) for config, seed in _runs(reproduction)]
  figures, curves = {}, {'confidence': {}, 'classes': {}}
  for score, stored in stored_r2_curves(reproduction, results).items():
    curves[score].update(stored)
  for run in runs:
    key = run.key
    samples = np.stack([p.canvas for p in run.painter().paint(None, num_samples=FLAGS.num_samples, seed=0)])
    out['runs'][key] = dict(
        digit_score.score(classifier.model, samples),
        frames=run.frames,
        learner_steps=run.learner_steps,
        entropy_last_third_median=run.last_third_median('entropy'),
    )
    # One config: <reproduction>_samples_seed<k>; several (r2_retries): each run's own name.
    sample_grid = f'{reproduction}_samples_' + (
        f'seed{run.seed}' if len(REPRODUCTIONS[reproduction]) == 1 else key
    )
    figures[sample_grid] = image_io.write_png(
        _figure(sample_grid),
        image_io.upscale_nearest(_sample_grid(samples[:64], reals[:32].astype(np.float32) / 255), 2),
    )
    # Along the way: the exports train() kept, FLAGS.num_curve_samples samples each.
    history = []
    for step, export in export_history(run.dir):
      painter = painter_lib.Painter.from_saved_model(export)
      paintings = painter.paint(None, num_samples=FLAGS.num_curve_samples, seed=0)
      canvases = np.stack([p.canvas for p in paintings])
      history.append(dict(digit_score.score(classifier.model, canvases), frames=step * run.frames_per_step))
      print(
          f'[reproduce] {reproduction} {key} at {history[-1]["frames"]:,} frames: confidence '
          f'{history[-1]["mean_confidence"]:.3f}, {history[-1]["classes_with_2_percent"]} classes',
          flush=True,
      )
    out['runs'][key]['history'] = [
        {k: h[k] for k in ('frames', 'mean_confidence', 'classes_with_2_percent', 'class_fractions')}
        for h in history
    ]
    label = f'{LABELS.get(run.name, run.name)}, seed {run.seed}'
    curves['confidence'][label] = ([h['frames'] for h in history], [h['mean_confidence'] for h in history])
    curves['classes'][label] = (
        [h['frames'] for h in history],
        [h['classes_with_2_percent'] for h in history],
    )
  frames = max((max(c[0] or [0]) for c in curves['confidence'].values()), default=0)
  curves['confidence']['real test digits'] = ([0, frames], [out['real_test_digits']['mean_confidence']] * 2)
  curves['classes']['real test digits'] = (
      [0, frames],
      [out['real_test_digits']['classes_with_2_percent']] * 2,
  )
  figures[f'{reproduction}_confidence'] = plot_curves(
      curves['confidence'],
      _figure(f'{reproduction}_confidence'),
      f'Unconditional MNIST: classifier confidence ({FLAGS.num_curve_samples} samples)',
      'mean max-softmax',
  )
  figures[f'{reproduction}_classes'] = plot_curves(
      curves['classes'],
      _figure(f'{reproduction}_classes'),
      f'Unconditional MNIST: classes with ≥ 2 % of {FLAGS.num_curve_samples} samples',
      'digit classes',
  )
  for tag, title, ylabel, name, smooth, logy in (
      (
          'entropy',
          'policy entropy per step (sum over sub-actions)',
          'nats',
          f'{reproduction}_entropy',
          5,
          False,
      ),
      (
          'diagnostics/normaliser_std',
          'running std of episode returns (reward scale)',
          'σ of returns',
          f'{reproduction}_reward_std',
          1,
          True,
      ),
  ):
    figures[name] = plot_curves(
        {f'{LABELS.get(r.name, r.name)}, seed {r.seed}': r.curve(tag) for r in runs},
        _figure(name),
        'Unconditional MNIST: ' + title,
        ylabel,
        smooth=smooth,
        logy=logy,
    )
  figures[f'{reproduction}_d_scores'] = plot_curves(
      {f's{r.seed}: D({what})': r.curve(f'd_score_{what}') for r in runs for what in ('real', 'fake')},
      _figure(f'{reproduction}_d_scores'),
      'Unconditional MNIST: D scores',
      'mean D output',
      smooth=10,
  )
  seeds = list(out['runs'].values())
  out['targets_met'] = {
      'classes_ge_8 (every seed)': all(r['classes_with_2_percent'] >= 8 for r in seeds),
      'mean_confidence_ge_0.8 (every seed)': all(r['mean_confidence'] >= 0.8 for r in seeds),
  }
  out['figures'] = {k: os.path.relpath(v, FLAGS.out) for k, v in figures.items()}
  return out


LEARNER_START = re.compile(r'\[learner\] (?:resumed from \S+|starting fresh): step \d+, frames (\d+)')
LEARNER_STOP = re.compile(r'\[learner\] stopped: .*\. Step \d+, frames (\d+)\.')


def trained_frames(learner_log: str) -> int:
  """Frames a run's learner trained on over all its starts (its log: supervisor-appended), which in a
  population is less than its final frame count when a PBT copy took over another member's frames."""
  total, start = 0, None
  for match in re.finditer(f'{LEARNER_START.pattern}|{LEARNER_STOP.pattern}', learner_log):
    if match.group(1) is not None:
      start = int(match.group(1))
    elif start is not None:
      total, start = total + int(match.group(2)) - start, None
  return total


def report_population(reproduction, results):
  """Issue 18's measurement: each member as r1 scores a run, the best and the spread beside r1's single
  runs (results.json), the frames trained, the lineage, hyper-parameter and held-out MSE curves."""
  (config,), seed = REPRODUCTIONS[reproduction], int(FLAGS.seeds[0])
  directory = run_dir_lib.PopulationDir(run_dir(config, seed))
  with open(directory.state_file) as f:
    state = json.load(f)
  members = [Run(config, seed, member=i) for i in range(state['num_members'])]
  member_config = components.load_config(members[0].dir)
  if FLAGS.data_dir:
    member_config = dataclasses.replace(member_config, data_dir=FLAGS.data_dir)
  targets = components.load_targets(member_config, 'test', limit=FLAGS.num_targets)
  figures, per_member, search = _reconstruction_figures(members, targets, {})
  lineage = []
  if os.path.exists(directory.lineage):
    with open(directory.lineage) as f:
      lineage = [json.loads(line) for line in f if line.strip()]
  out = {'members': {}, 'lineage': lineage, 'search': search, 'num_targets': len(targets)}
  for run in members:
    with open(run_dir_lib.RunDir(run.dir).log('learner'), errors='replace') as f:
      trained = trained_frames(f.read())
    out['members'][run.key] = {
        'frames': run.frames,
        'frames_trained': trained,
        'heldout': per_member[run.key],
        'final_hyperparameters': state['hyperparameters'][run.member],
        'entropy_last_third_median': run.last_third_median('entropy'),
    }
  greedy = {k: v['heldout']['greedy']['mean'] for k, v in out['members'].items()}
  best = min(greedy, key=greedy.get)
  blank = per_member[best]['blank']['mean']
  single = results.get('r1', {}).get('summary', {}).get('mnist_d', {})
  out['best_member'] = best
  out['greedy'] = {
      'best': greedy[best],
      'worst': max(greedy.values()),
      'mean': float(np.mean(list(greedy.values()))),
      'std': float(np.std(list(greedy.values()), ddof=1)),
      'best_over_blank': greedy[best] / blank,
  }
  out['blank'] = blank
  out['frames_trained_total'] = sum(m['frames_trained'] for m in out['members'].values())
  if single:
    out['single_run_r1'] = {
        decoding: single[decoding] for decoding in ('sample', 'greedy', 'best_of_4') if decoding in single
    }
  print(
      f'[reproduce] {reproduction}: best member {best} greedy {greedy[best]:.4f} '
      f'({greedy[best] / blank:.2f} × blank), members {sorted(round(g, 4) for g in greedy.values())}; '
      f'frames trained {out["frames_trained_total"]:,}',
      flush=True,
  )
  label = lambda run: f'member {run.member}'
  curves = {label(r): r.curve('eval/agent_mse', 'eval') for r in members}
  for single_seed in (0, 1):  # R1's single runs, as their reports kept them (curves/).
    kept = StoredRun('reproductions/mnist_d', single_seed, {'frames': None})
    if kept.curves:
      curves[f'single run (r1), seed {single_seed}'] = kept.curve('eval/agent_mse', 'eval')
  frames = max((max(c[0] or [0]) for c in curves.values()), default=0)
  curves['blank canvas'] = ([0, frames], [blank, blank])
  figures[f'{reproduction}_heldout_mse'] = plot_curves(
      curves,
      _figure(f'{reproduction}_heldout_mse'),
      f'{LABELS[_name(config)]}: held-out MSE (128 test digits, sampled)',
      'mean squared error per pixel',
  )
  for tag, title, ylabel, logy in (
      ('policy_learning_rate', 'policy learning rate (PBT, decayed linearly)', 'learning rate', True),
      ('entropy_cost', 'entropy cost (PBT)', 'entropy cost', True),
      ('entropy', 'policy entropy per step', 'nats', False),
  ):
    name = f'{reproduction}_{tag}'
    figures[name] = plot_curves(
        {label(r): r.curve(tag) for r in members},
        _figure(name),
        f'{LABELS[_name(config)]}: {title}',
        ylabel,
        smooth=1 if tag != 'entropy' else 5,
        logy=logy,
    )
  out['figures'] = {k: os.path.relpath(v, FLAGS.out) for k, v in figures.items()}
  return out


STROKES_CURVES = (('train', 'l2_to_target'), ('train', 'entropy'), ('train', 'policy_learning_rate'))


def report_strokes(reproduction, results):
  """r3's report (and the precision comparison's): held-out MSE on strokes targets, curves, frames/s.

  Runs whose directories are gone come from `results` (stored_runs), with the curves an earlier report kept.
  """
  out = {'runs': {}}
  stored = stored_runs(reproduction, results)
  runs = [Run(config, seed) for config, seed in _runs(reproduction) if _key(config, seed) not in stored]
  if not runs:
    raise app.UsageError(
        f'{reproduction}: no run directory here to evaluate (every run would come from results.json)'
    )
  for run in runs:
    painter = run.painter()
    targets = components.load_targets(components.load_config(run.dir), 'test', limit=FLAGS.num_targets)
    result = evaluation.evaluate(painter, targets, decoding='greedy', seed=0)
    sampled = evaluation.evaluate(
        painter, targets, decoding='sample', seed=0, baseline=(result.baseline_canvases, result.baseline_mse)
    )
    evaluation.write_grid(_figure(f'{reproduction}_{run.name}_grid_seed{run.seed}'), result)
    blank = float(result.blank_mse.mean())
    out['runs'][run.key] = {
        'frames': run.frames,
        'greedy': _stats(result.agent_mse),
        'sample': _stats(sampled.agent_mse),
        'blank': blank,
        'greedy_over_blank': float(result.agent_mse.mean()) / blank,
        'target_met (greedy ≤ 0.7 × blank)': float(result.agent_mse.mean()) <= 0.7 * blank,
        'num_targets': len(targets),
        'entropy_last_third_median': run.last_third_median('entropy'),
        'learner_frames_per_s_median': float(np.median(run.curve('frames_per_s')[1] or [np.nan])),
    }
    print(f'[reproduce] {reproduction} {run.name} seed {run.seed}: ' f'{out["runs"][run.key]}', flush=True)
    write_curves(run, STROKES_CURVES)
  for key, entry in stored.items():
    out['runs'][key] = entry
    print(f'[reproduce] {key}: from results.json, {entry["source"]}', flush=True)
  runs += [StoredRun(c, s, stored[_key(c, s)]) for c, s in _runs(reproduction) if _key(c, s) in stored]
  out['summary'] = {}  # Per config, the mean over its seeds.
  for run in runs:
    entry = out['runs'][run.key]
    summary = out['summary'].setdefault(run.name, {'seeds': [], 'greedy': [], 'greedy_over_blank': []})
    summary['seeds'].append(run.seed)
    summary['greedy'].append(entry['greedy']['mean'])
    summary['greedy_over_blank'].append(entry['greedy_over_blank'])
  for summary in out['summary'].values():
    summary['greedy_mean_over_seeds'] = float(np.mean(summary['greedy']))
    summary['greedy_over_blank_mean_over_seeds'] = float(np.mean(summary['greedy_over_blank']))
  figures = {}
  for tag, title, ylabel, name, smooth in (
      ('l2_to_target', 'l2 of the final canvas (training episodes)', 'mean squared error', 'train_l2', 10),
      ('entropy', 'policy entropy per step (sum over sub-actions)', 'nats', 'entropy', 10),
      ('policy_learning_rate', 'policy learning rate', 'learning rate', 'learning_rate', 1),
  ):
    name = f'{reproduction}_{name}'
    figures[name] = plot_curves(
        {f'{LABELS.get(r.name, r.name)}, seed {r.seed}': r.curve(tag) for r in runs},
        _figure(name),
        'Quick start: ' + title,
        ylabel,
        smooth=smooth,
    )
  out['figures'] = {k: os.path.relpath(v, FLAGS.out) for k, v in figures.items()}
  return out


def read_results() -> dict:
  """results.json under --out as an earlier report left it ({} before the first)."""
  path = os.path.join(FLAGS.out, 'results.json')
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def report() -> int:
  os.makedirs(FLAGS.out, exist_ok=True)
  path = os.path.join(FLAGS.out, 'results.json')
  results = read_results()
  reporters = {
      'r1': lambda: report_reconstruction('r1', results),
      'r2': lambda: report_unconditional('r2', results),
      'r2_decayed': lambda: report_unconditional('r2_decayed', results),
      'r2_retries': lambda: report_unconditional('r2_retries', results),
      'r2_stroke_penalty': lambda: report_unconditional('r2_stroke_penalty', results),
      'r3': lambda: report_strokes('r3', results),
      'precision': lambda: report_strokes('precision', results),
      'r1_entropy_cost': lambda: report_reconstruction('r1_entropy_cost', results),
      'population': lambda: report_population('population', results),
      'population_shared_d': lambda: report_population('population_shared_d', results),
  }
  reported = 0
  for reproduction in FLAGS.reproductions:
    missing = _missing(reproduction, stored_runs(reproduction, results))
    if missing:
      print(
          f'[reproduce] {reproduction}: skipped, no export in {missing} (run --stage=train first)', flush=True
      )
      continue
    start = time.monotonic()
    results[reproduction] = reporters[reproduction]()
    results[reproduction]['written'] = time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())
    print(f'[reproduce] {reproduction}: reported in {time.monotonic() - start:.0f} s', flush=True)
    image_io.write_json(path, results)
    reported += 1
  print(json.dumps({k: results[k] for k in FLAGS.reproductions if k in results}, indent=1))
  return 0 if reported else 1


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  unknown = sorted(set(FLAGS.reproductions) - set(REPRODUCTIONS))
  if unknown:
    raise app.UsageError(f'--reproductions: {unknown} not among {sorted(REPRODUCTIONS)}')
  return train() if FLAGS.stage == 'train' else report()


if __name__ == '__main__':
  app.run(main)
