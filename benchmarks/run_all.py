r"""Runs every benchmark and writes one table: `benchmarks/results.json` and `benchmarks/results.md`.

Each benchmark script runs in its own process (`sys.executable`, the repository as working directory);
its last printed line is one JSON object, from which a few headline figures go into the table. The
machine it ran on (CPU model, cores, memory, load average before and after each script, date, versions)
goes with the table, because on 2 shared cores the load decides the figures.

  .venv/bin/python benchmarks/run_all.py              # full settings (≈ 30 min on 2 idle cores)
  .venv/bin/python benchmarks/run_all.py --quick      # fewer steps and settings: a sanity run
  .venv/bin/python benchmarks/run_all.py --only=env,scenes --out_dir=/tmp/bench
  .venv/bin/python benchmarks/run_all.py --update --only=pipeline   # rerun one, keep the other rows
  make benchmarks                                     # = the first line (QUICK=1: --quick)

A script that fails or prints no JSON becomes a "failed" row (its log is kept under --log_dir) and the
exit code is 1; the other scripts still run.
"""

import argparse
import dataclasses
import datetime
import importlib.metadata
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time
from typing import Callable

ROOT = pathlib.Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class Benchmark:
  """One script: its arguments for the record and for a quick run, and how to read its figures."""

  name: str
  script: str
  full_args: tuple
  quick_args: tuple
  # JSON object of the script → rows (figure, value, unit).
  figures: Callable[[dict], list]
  timeout_s: float


def _env_figures(r):
  return [
      ('painter: random actions', r['random_steps_per_s'], 'steps/s'),
      ('painter: paint every step', r['paint_steps_per_s'], 'steps/s'),
      ('painter: move every step', r['move_steps_per_s'], 'steps/s'),
      ('painter: render 256² → observe 64², random', r['random_steps_per_s_render256'], 'steps/s'),
      ('painter: reset', r['reset_ms'], 'ms'),
  ]


def _scenes_figures(r):
  return [
      ('scenes: random actions', r['steps_per_s'], 'steps/s'),
      ('scenes: add every step', r['add_steps_per_s'], 'steps/s'),
      ('scenes: render 64²', r['render_ms'], 'ms'),
      ('scenes: XML rebuild per step (the alternative)', r['xml_rebuild_step_ms'], 'ms'),
  ]


def _data_figures(r):
  rows = []
  for name, d in r.items():
    rows.append((f'data {name}: real_dataset batches of 64', d['pipeline_images_per_second'], 'images/s'))
    rows.append((f'data {name}: first load (decode + resize)', d['first_load_images_per_second'], 'images/s'))
  return rows


def _inference_figures(r):
  size = r['network_size']
  rows = [
      (f'inference ({size}): export_saved_model, repeat', r['export_repeat_s'], 's'),
      (f'inference ({size}): Painter.from_saved_model', r['load_s'], 's'),
  ]
  for key, value in r.items():
    if key.startswith('paint_batch') and key.endswith('_steps_per_s'):
      batch = key[len('paint_batch') : -len('_steps_per_s')]
      rows.append((f'inference ({size}): paint, {_plural(int(batch), "episode")} per call', value, 'steps/s'))
  return rows


def _network_figures(r):
  peak = r['matmul_peak_flops']
  sizes = [size for size in ('tiny', 'deepmind') if size in r]
  rows = [
      (f'network ({", ".join(sizes)} run): float32 matmul peak, 2048², best of run', peak / 1e9, 'GFLOP/s')
  ]
  for size in sizes:
    for batch, p in r[size]['policy'].items():
      rows.append((f'network ({size}): policy forward, batch {batch}', p['frames_per_s'], 'frames/s'))
      rows.append(
          (
              f'network ({size}): policy forward, batch {batch}, FLOP utilisation',
              100 * p['flops_per_s'] / peak,
              '% of peak',
          )
      )
    for mode in ('graph', 'xla'):
      learner = r[size].get('learner_' + mode)
      if learner:
        frames = round(learner['frames_per_s'] * learner['s_per_step'])  # batch × (episode_length − 1)
        rows.append(
            (
                f'network ({size}): learner update ({mode}), {frames} frames per update',
                learner['frames_per_s'],
                'frames/s',
            )
        )
        rows.append(
            (
                f'network ({size}): learner update ({mode}), FLOP utilisation',
                100 * learner['flops_per_s'] / peak,
                '% of peak',
            )
        )
  return rows


def _pipeline_figures(r):
  target = round(100 * r['busy_target'])
  learners = {run['size']: f', {run["learner"]} learner' for run in r['runs']}
  rows = []
  for size, best in r['needed'].items():
    reached = best['learner_busy_fraction'] >= r['busy_target']
    which = 'fewest actors × envs keeping' if reached else 'no setting kept; the busiest, for'
    rows.append(
        (
            f'end-to-end ({size}{learners[size]}): {which} the learner ≥ {target} % busy',
            f'{best["num_actors"]} × {best["envs_per_actor"]}',
            'actors × envs',
        )
    )
  for run in r['runs']:
    setting = (
        f'{run["size"]}{learners[run["size"]]}, {_plural(run["num_actors"], "actor")} × '
        f'{_plural(run["envs_per_actor"], "env")}'
    )
    rows.append((f'end-to-end ({setting}): learner frames/s', run['frames_per_s'], 'frames/s'))
    rows.append((f'end-to-end ({setting}): learner busy', 100 * run['learner_busy_fraction'], '%'))
  return rows


def _actor_figures(r):
  rows = []
  for a in r['actors']:
    where = f'actor ({r["network_size"]}, {r["environment"]}, {_plural(a["envs_per_actor"], "env")})'
    rows.append((f'{where}: CPU per frame', a['actor_cpu_ms_per_frame'], 'CPU-ms'))
    rows.append((f'{where}: frames per core-second', a['frames_per_cpu_second'], 'frames/s'))
  return rows


def _flop_figures(r):
  where = f'FLOPs ({r["dataset"]}, {r["network_size"]}, batch {r["batch_size"]})'
  return [
      (f'{where}: policy per frame', r['policy_flops_per_frame'] / 1e6, 'MFLOP'),
      (f'{where}: learner per step', r['learner_flops_per_step'] / 1e9, 'GFLOP'),
  ]


def _plural(n, noun):
  return f'{n} {noun}' if n == 1 else f'{n} {noun}s'


BENCHMARKS = (
    Benchmark(
        'env', 'benchmarks/env_throughput.py', (), ('--steps=500', '--repeats=2'), _env_figures, timeout_s=600
    ),
    Benchmark(
        'scenes',
        'benchmarks/scenes_throughput.py',
        (),
        ('--steps=300', '--repeats=2', '--rebuild_episodes=1'),
        _scenes_figures,
        timeout_s=900,
    ),
    Benchmark(
        'data',
        'benchmarks/data_throughput.py',
        (),
        ('--datasets=mnist', '--batches=50'),
        _data_figures,
        timeout_s=1800,
    ),
    Benchmark(
        'inference',
        'benchmarks/inference_throughput.py',
        ('--network_size=deepmind',),
        ('--network_size=tiny', '--batch_sizes=1,4', '--repeats=1'),
        _inference_figures,
        timeout_s=900,
    ),
    # XLA:CPU compiles the deepmind-size update for many minutes (docs/full_scale.md), so that size is
    # measured with TensorFlow's kernels only, here and in the pipeline.
    Benchmark(
        'network',
        'benchmarks/network_throughput.py',
        ('--sizes=tiny',),
        (
            '--sizes=tiny',
            '--policy_batches=1,16',
            '--batch_size=16',
            '--learner_steps=1',
            '--policy_seconds=1',
            '--learner_modes=xla',
            '--conv_paths=false',
        ),
        _network_figures,
        timeout_s=2400,
    ),
    Benchmark(
        'network_deepmind',
        'benchmarks/network_throughput.py',
        ('--sizes=deepmind', '--learner_modes=graph', '--conv_paths=false'),
        (
            '--sizes=deepmind',
            '--policy_batches=16',
            '--batch_size=4',
            '--learner_steps=1',
            '--policy_seconds=1',
            '--learner_modes=graph',
            '--conv_paths=false',
        ),
        _network_figures,
        timeout_s=2400,
    ),
    Benchmark(
        'actor_cost',
        'benchmarks/actor_cost.py',
        ('--flagfile=configs/celeba.cfg', '--envs=1,16', '--episodes=4'),
        ('--flagfile=configs/strokes.cfg', '--envs=4', '--episodes=1'),
        _actor_figures,
        timeout_s=1200,
    ),
    Benchmark(
        'flop_counts',
        'benchmarks/flop_counts.py',
        ('--flagfile=configs/celeba.cfg',),
        ('--flagfile=configs/strokes.cfg',),
        _flop_figures,
        timeout_s=900,
    ),
    # The tiny learner with TensorFlow's kernels (configs/strokes.cfg) and with XLA:CPU, ≈ 5× slower.
    Benchmark(
        'pipeline',
        'benchmarks/pipeline_throughput.py',
        ('--sizes=tiny', '--train_flags=jit_compile=false'),
        (
            '--sizes=tiny',
            '--train_flags=jit_compile=false',
            '--actors=1',
            '--envs_per_actor=8',
            '--seconds=20',
            '--warmup_seconds=10',
        ),
        _pipeline_figures,
        timeout_s=3600,
    ),
    Benchmark(
        'pipeline_xla',
        'benchmarks/pipeline_throughput.py',
        ('--sizes=tiny', '--train_flags=jit_compile=true'),
        (
            '--sizes=tiny',
            '--train_flags=jit_compile=true',
            '--actors=1',
            '--envs_per_actor=8',
            '--seconds=20',
            '--warmup_seconds=10',
        ),
        _pipeline_figures,
        timeout_s=3600,
    ),
    Benchmark(
        'pipeline_deepmind',
        'benchmarks/pipeline_throughput.py',
        ('--sizes=deepmind', '--train_flags=jit_compile=false'),
        (
            '--sizes=deepmind',
            '--train_flags=jit_compile=false',
            '--actors=1',
            '--envs_per_actor=2',
            '--seconds=20',
            '--warmup_seconds=10',
        ),
        _pipeline_figures,
        timeout_s=3600,
    ),
)


def machine_facts() -> dict:
  """What the figures depend on: CPU, cores, memory, date, software versions, commit."""
  facts = {
      'date_utc': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
      'cpu_model': _cpu_model(),
      'cpu_count': os.cpu_count(),
      'memory_gib': _memory_gib(),
      'platform': platform.platform(),
      'python': platform.python_version(),
  }
  for package in ('tensorflow', 'dm-reverb', 'tf-agents', 'mujoco', 'numpy'):
    try:
      facts[package] = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
      facts[package] = 'not installed'
  facts['libmypaint'] = _command_output(['pkg-config', '--modversion', 'libmypaint'])
  facts['git_commit'] = _command_output(['git', '-C', str(ROOT), 'rev-parse', '--short', 'HEAD'])
  return facts


def _cpu_model():
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or 'unknown'


def _memory_gib():
  try:
    with open('/proc/meminfo') as f:
      for line in f:
        if line.startswith('MemTotal:'):
          return round(int(line.split()[1]) / 2**20, 1)
  except OSError:
    pass
  return None


def _command_output(command):
  try:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return 'unknown'


def last_json_line(text: str) -> dict:
  """The last non-empty line of `text`, which must be one JSON object."""
  lines = [line for line in text.splitlines() if line.strip()]
  if not lines:
    raise ValueError('the script printed nothing')
  try:
    value = json.loads(lines[-1])
  except json.JSONDecodeError as e:
    raise ValueError(f'the last line is not JSON ({e}): {lines[-1][:200]!r}') from e
  if not isinstance(value, dict):
    raise ValueError(f'the last line is JSON but not an object: {lines[-1][:200]!r}')
  return value


def run_one(benchmark: Benchmark, quick: bool, log_dir: pathlib.Path) -> dict:
  """Runs one script; returns its record (arguments, seconds, loads, JSON, rows or error)."""
  args = benchmark.quick_args if quick else benchmark.full_args
  command = [sys.executable, str(ROOT / benchmark.script), *args]
  log_path = log_dir / f'{benchmark.name}.log'
  record = {
      'script': benchmark.script,
      'args': list(args),
      'log': str(log_path),
      'started_utc': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M'),
      'load_average_before': round(os.getloadavg()[0], 2),
  }
  print(
      f'[run_all] {benchmark.name}: {" ".join(command[1:])}  (load {record["load_average_before"]})',
      flush=True,
  )
  start = time.monotonic()
  try:
    with open(log_path, 'w') as log:
      # stderr (TensorFlow's start-up chatter) goes to the log only; stdout is parsed.
      result = subprocess.run(
          command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True, timeout=benchmark.timeout_s
      )
      log.write('\n--- stdout ---\n' + result.stdout)
    if result.returncode != 0:
      raise RuntimeError(f'exit code {result.returncode}; last output: {result.stdout[-500:]!r}')
    record['result'] = last_json_line(result.stdout)
    record['rows'] = [[figure, value, unit] for figure, value, unit in benchmark.figures(record['result'])]
  except subprocess.TimeoutExpired:
    record['error'] = f'timed out after {benchmark.timeout_s:.0f} s'
  except (RuntimeError, ValueError, KeyError, TypeError) as e:
    record['error'] = f'{type(e).__name__}: {e}'
  record['seconds'] = round(time.monotonic() - start, 1)
  record['load_average_after'] = round(os.getloadavg()[0], 2)
  status = record.get('error', f'{len(record.get("rows", []))} figures')
  print(f'[run_all] {benchmark.name}: {status} in {record["seconds"]:.0f} s (log {log_path})', flush=True)
  return record


def _format_value(value):
  if isinstance(value, (int, float)) and not isinstance(value, bool):
    if abs(value) >= 100:
      return f'{value:,.0f}'
    if abs(value) >= 10:
      return f'{value:.1f}'
    return f'{value:.3g}'
  return str(value)


def markdown(report: dict) -> str:
  """One Markdown table (figure, value, unit, script) and the machine it ran on."""
  m = report['machine']
  lines = [
      f'Run {m["date_utc"]} ({"quick" if report["quick"] else "full"} settings) on {m["cpu_model"]}, '
      f'{m["cpu_count"]} cores, {m["memory_gib"]} GiB; load average (1 min) '
      f'{report["load_average_before"]:.2f} before, {report["load_average_after"]:.2f} after; '
      f'{report["seconds"] / 60:.1f} min in all.',
      f'Python {m["python"]}, TensorFlow {m["tensorflow"]}, dm-reverb {m["dm-reverb"]}, '
      f'MuJoCo {m["mujoco"]}, NumPy {m["numpy"]}, libmypaint {m["libmypaint"]}; commit '
      f'{m["git_commit"]}; {m["platform"]}.',
      '',
      '| figure | value | unit | script |',
      '|---|---:|---|---|',
  ]
  for name, record in report['benchmarks'].items():
    script = f'`{pathlib.Path(record["script"]).name}`'
    if 'error' in record:
      lines.append(f'| {name}: **failed** ({record["error"][:120]}) | — | — | {script} |')
      continue
    for figure, value, unit in record['rows']:
      lines.append(f'| {figure} | {_format_value(value)} | {unit} | {script} |')
  lines += [
      '',
      'Load average (1 min) before → after each script: '
      + '; '.join(
          f'{name} {r["load_average_before"]:.1f} → {r["load_average_after"]:.1f} '
          f'({r["seconds"] / 60:.1f} min'
          + (f' from {r["started_utc"][11:]}' if 'started_utc' in r else '')
          + ')'
          for name, r in report['benchmarks'].items()
      )
      + '.',
  ]
  for update in report.get('updates', []):
    lines.append(
        f'Rerun {update["date_utc"]} (`--update`): {", ".join(update["benchmarks"])}; load '
        f'{update["load_average_before"]:.2f} before, {update["load_average_after"]:.2f} after.'
    )
  return '\n'.join(lines) + '\n'


def _previous_report(parser, args, out_dir):
  path = out_dir / 'results.json'
  if not args.only:
    parser.error('--update needs --only (which scripts to rerun)')
  try:
    report = json.loads(path.read_text())
  except (OSError, json.JSONDecodeError) as e:
    parser.error(f'--update: cannot read {path} ({e}); run without --update first')
  if report.get('quick') != args.quick:
    parser.error(
        f'--update: {path} holds a {"quick" if report.get("quick") else "full"} run; '
        f'pass the same --quick setting'
    )
  return report


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--quick', action='store_true', help='fewer steps, repeats and settings')
  parser.add_argument(
      '--only', default='', help='comma-separated subset of: ' + ','.join(b.name for b in BENCHMARKS)
  )
  parser.add_argument(
      '--out_dir', default=str(ROOT / 'benchmarks'), help='where results.json and results.md go'
  )
  parser.add_argument(
      '--log_dir',
      default=os.path.join(tempfile.gettempdir(), 'spiral_tf_benchmarks'),
      help="each script's full output",
  )
  parser.add_argument(
      '--update',
      action='store_true',
      help='with --only: rerun those scripts and replace their rows in the existing '
      'results.json (same --quick); the other rows stay',
  )
  args = parser.parse_args(argv)
  names = [n for n in args.only.split(',') if n]
  unknown = sorted(set(names) - {b.name for b in BENCHMARKS})
  if unknown:
    parser.error(f'--only: unknown {unknown}; choose from {",".join(b.name for b in BENCHMARKS)}')
  selected = [b for b in BENCHMARKS if not names or b.name in names]
  out_dir, log_dir = pathlib.Path(args.out_dir), pathlib.Path(args.log_dir)
  previous = _previous_report(parser, args, out_dir) if args.update else None
  out_dir.mkdir(parents=True, exist_ok=True)
  log_dir.mkdir(parents=True, exist_ok=True)

  load_before = round(os.getloadavg()[0], 2)
  records, start = {}, time.monotonic()
  for benchmark in selected:
    records[benchmark.name] = run_one(benchmark, args.quick, log_dir)
  seconds, load_after = round(time.monotonic() - start, 1), round(os.getloadavg()[0], 2)
  if previous:
    report = previous
    report.setdefault('updates', []).append(
        {
            'date_utc': machine_facts()['date_utc'],
            'benchmarks': list(records),
            'seconds': seconds,
            'load_average_before': load_before,
            'load_average_after': load_after,
        }
    )
    merged = {**report['benchmarks'], **records}
    # In BENCHMARKS order; rows of scripts no longer listed are dropped.
    report['benchmarks'] = {b.name: merged[b.name] for b in BENCHMARKS if b.name in merged}
  else:
    report = {
        'quick': args.quick,
        'machine': machine_facts(),
        'load_average_before': load_before,
        'load_average_after': load_after,
        'seconds': seconds,
        'benchmarks': records,
    }
  table = markdown(report)
  (out_dir / 'results.json').write_text(json.dumps(report, indent=1) + '\n')
  (out_dir / 'results.md').write_text(table)
  print(table)
  failed = [n for n, r in report['benchmarks'].items() if 'error' in r]
  print(
      f'[run_all] wrote {out_dir / "results.json"} and {out_dir / "results.md"}'
      + (f'; FAILED: {", ".join(failed)}' if failed else ''),
      flush=True,
  )
  print(
      json.dumps(
          {'results_json': str(out_dir / 'results.json'), 'failed': failed, 'seconds': report['seconds']}
      )
  )
  return 1 if failed else 0


if __name__ == '__main__':
  sys.exit(main())
