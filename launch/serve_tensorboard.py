r"""Serves the TensorBoard of a training run on this machine — what `make tensorboard` runs.

  make tensorboard                                  # the run under runs/ that logged last
  make tensorboard RUN=runs/mnist                   # that run (or a directory of runs, to compare them)
  python launch/serve_tensorboard.py --run=runs/strokes --port=0 -- --reload_interval=5

It finds the run's `tensorboard/` directory (spiral_tf/dashboard.py: one TensorBoard run per writer,
`learner` and `eval`), picks a free port (6006, TensorBoard's usual one, or the next free; `--port=0`: one
the OS picks), prints the URL and the Custom Scalars page, then becomes the venv's own `tensorboard`
(exec: the same process id, Ctrl-C stops it), listening on 127.0.0.1 only. Arguments after `--` go to
tensorboard unchanged. No logs where it looks: a message naming the place, exit status 1. (Not called
tensorboard.py: a script's directory comes first on sys.path, and that name would hide the package.)
"""

import glob
import os
import socket
import sys

from absl import app
from absl import flags

from spiral_tf import dashboard

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
flags.DEFINE_string(
    'run',
    None,
    'A run directory (with tensorboard/), or any directory holding TensorBoard '
    'logs; default: the run under --runs_dir that logged last.',
)
flags.DEFINE_string('runs_dir', os.path.join(ROOT, 'runs'), 'Where to look for the latest run.')
flags.DEFINE_string('host', '127.0.0.1', 'Address to listen on (loopback: only this machine).')
flags.DEFINE_integer('port', 6006, 'First port to try (the next free one is used); 0: any free port.')
FLAGS = flags.FLAGS

EVENTS = 'events.out.tfevents.*'
PKG_RESOURCES_WARNING = 'ignore:pkg_resources is deprecated as an API:UserWarning'
PORTS_TRIED = 100


class LaunchError(Exception):
  pass


def _event_files(directory):
  return glob.glob(os.path.join(directory, '**', EVENTS), recursive=True)


def _run_of(event_file, runs_dir):
  """The run an event file belongs to: the parent of its nearest `tensorboard/` ancestor below runs_dir."""
  top = os.path.abspath(runs_dir)
  path = os.path.dirname(os.path.abspath(event_file))
  while os.path.basename(path) != dashboard.LOG_DIR:
    if path == top or os.path.dirname(path) == path:
      return os.path.dirname(event_file)  # Not in a training run's layout: its own directory.
    path = os.path.dirname(path)
  return os.path.dirname(path)


def latest_run(runs_dir):
  """(run directory whose newest event file is the newest, how many runs there are)."""
  newest = {}
  for path in _event_files(runs_dir):
    run = _run_of(path, runs_dir)
    newest[run] = max(newest.get(run, 0.0), os.path.getmtime(path))
  if not newest:
    raise LaunchError(
        f'no TensorBoard logs under {_show(runs_dir)}: train a run first (make train), or '
        'name one with RUN=<run directory>'
    )
  return max(newest, key=newest.get), len(newest)


def log_dir_of(run):
  """What to give `tensorboard --logdir` for --run: its tensorboard/ if it is a run, else itself."""
  if not os.path.isdir(run):
    raise LaunchError(f'--run={run} is not a directory')
  candidate = dashboard.log_dir(run)
  directory = candidate if os.path.isdir(candidate) else run
  if not _event_files(directory):
    raise LaunchError(
        f'no TensorBoard logs under {_show(directory)} (a training run writes them to '
        f'<run>/{dashboard.LOG_DIR}/ once its learner starts)'
    )
  return directory


def tensorboard_runs(log_dir):
  """The TensorBoard run names under `log_dir` (directories holding event files), as it will list them."""
  return sorted({os.path.relpath(os.path.dirname(p), log_dir) for p in _event_files(log_dir)})


def free_port(host, first):
  """`first` if nothing listens there, else the next free port; 0: whatever the OS gives."""
  candidates = [0] if first == 0 else range(first, first + PORTS_TRIED)
  for port in candidates:
    with socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET, socket.SOCK_STREAM) as s:
      try:
        s.bind((host, port))
      except OSError:
        continue
      return s.getsockname()[1]
  raise LaunchError(f'no free port on {host} in {first}–{first + PORTS_TRIED - 1}; try --port=0')


def _show(path):
  relative = os.path.relpath(path)
  return path if relative.startswith('..') else relative


def main(argv):
  passthrough = argv[1:]  # After `--`: tensorboard's own flags.
  binary = os.path.join(os.path.dirname(sys.executable), 'tensorboard')
  if not os.access(binary, os.X_OK):
    print(
        f'serve_tensorboard.py: error: no tensorboard beside {sys.executable} (run make setup)',
        file=sys.stderr,
    )
    return 1
  try:
    if FLAGS.run:
      log_dir, where = log_dir_of(FLAGS.run), ''
    else:
      run, count = latest_run(FLAGS.runs_dir)
      log_dir = log_dir_of(run)
      where = f' — the latest of {count} run{"s" * (count > 1)} under {_show(FLAGS.runs_dir)}'
    port = free_port(FLAGS.host, FLAGS.port)
  except LaunchError as e:
    print(f'serve_tensorboard.py: error: {e}', file=sys.stderr)
    return 1
  host = f'[{FLAGS.host}]' if ':' in FLAGS.host else FLAGS.host
  url = f'http://{host}:{port}/'
  print(
      f'[tensorboard] {_show(log_dir)} (runs: {", ".join(tensorboard_runs(log_dir))}){where}\n'
      f'[tensorboard] starting at {url}  (Custom Scalars: {url}#custom_scalars; Ctrl-C stops it)',
      flush=True,
  )
  # tensorboard 2.15 imports pkg_resources, which warns on every start; requirements.txt pins a setuptools
  # that still has it, so the warning says nothing to act on here.
  env = dict(os.environ)
  env['PYTHONWARNINGS'] = ','.join(filter(None, [env.get('PYTHONWARNINGS'), PKG_RESOURCES_WARNING]))
  # exec, not a child: the printed process is TensorBoard itself, and Ctrl-C or a kill of its pid ends it.
  # The logdir as shown above (relative to here when below here): TensorBoard prints it in its side bar.
  os.execve(
      binary,
      [binary, f'--logdir={_show(log_dir)}', f'--host={FLAGS.host}', f'--port={port}', *passthrough],
      env,
  )


if __name__ == '__main__':
  app.run(main)
