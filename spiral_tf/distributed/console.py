"""A readable console for `--role=all`: the learner's output, with the start-up noise left in its log.

The supervisor shows its own lines (the plan, starts, restarts) and the learner's: progress lines,
warnings and errors. Everything the learner prints also goes to `root_dir/logs/learner.log`, where the
lines kept off the console are: TensorFlow's C++ start-up lines (CUDA plugin registration, CPU feature
notices), gym's deprecation banner, and the INFO lines of Python logging (absl, TensorFlow: e.g. the
SavedModel writer's per-checkpoint "Assets written to ..."). The other roles write to their own logs
only, as before. Passing `--verbosity` (absl's flag, any value) shows the learner's output unfiltered, and
`--verbosity=0` or more also turns TensorFlow's C++ INFO lines back on (TF_CPP_MIN_LOG_LEVEL).

Every console line a training process writes is written by `say` (its docstring is the contract).

Usage:
  say(f'[learner] stopped: {reason}.')
  tee = Tee(proc.stdout, sys.stdout, log_file, lock, show_all=False); tee.start(); ...; tee.join()
"""

import re
import sys
import threading

# TensorFlow's C++ logging: "2026-12-01 21:10:02.316668: E external/local_xla/...cuda_dnn.cc:9261] ...".
_CPP = re.compile(r'^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: ([IWEF]) \S+\] (.*)$')
# absl's log format, Python ("I1201 21:10:28.839980 140643534400384 builder_impl.py:801] ...") and C++
# before its initialisation ("I0000 00:00:1796159702.680635    6494 device_compiler.h:186] ...").
_ABSL = re.compile(r'^([IWEF])\d{4} [\d:.]+ +\d+ \S+:\d+\] ')
# Python logging's default format, at INFO or DEBUG: "INFO:tensorflow:Assets written to: ...".
_PY_INFO = re.compile(r'^(INFO|DEBUG):[\w.]+:')
# C++ warnings and errors that every TensorFlow process on a CPU-only host prints at start-up.
_CPP_STARTUP = re.compile(
    r'Unable to register cu(DNN|FFT|BLAS) factory|TF-TRT Warning|Could not find cuda drivers|'
    r'failed call to cuInit|oneDNN custom operations are on|This TensorFlow binary is optimized|'
    r'Could not find TensorRT|cuda_diagnostics|retrieving CUDA diagnostic information|'
    r'SetPriority unimplemented for this stream'
)
# absl's C++ notice when XLA first logs.
_ABSL_CPP_NOTICE = 'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR'
# gym's banner at import (tf_agents imports gym).
_GYM = (
    'Gym has been unmaintained since 2022',
    'Please upgrade to Gymnasium',
    'See the migration guide at https://gymnasium.farama.org/',
)


# Reentrant: a signal handler (the supervisor's) may say a line while the main thread is inside say.
_SAY_LOCK = threading.RLock()


def say(line: str, *, error: bool = False) -> None:
  """Writes one console line of a training process to stdout (stderr if `error`) and flushes it.

  This is the program's user interface, not logging: users read these lines on the console of
  `--role=all` (the supervisor's own and the learner's, copied by `Tee`) and in `root_dir/logs/`, and the
  tests and benchmarks parse some of them (tests/console_test.py, train_test.py, reliability_test.py,
  tensorboard_test.py; benchmarks/pipeline_throughput.py reads `[learner] step `). Their wording is
  therefore an interface: change it together with its readers. The lines:

    [supervisor] ...       the plan, starts, exits, restarts, memory warnings, the stop   (supervisor.py)
    [learner] ...          start-up progress, the run's settings, progress every N steps, waits for
                           data, skipped non-finite updates, the stop with its checkpoint and export
                           (learner.py, summaries.py, startup.py)
    [reverb] serving on H, port P,  [actor k] k environments ...,  [evaluator] learner step ...
                           each role's start or score, in its log            (roles.py, evaluator.py)
    train.py: configuration error: ...   on stderr, as launch/train.py writes its own    (roles.py)

  `line` may hold several lines (one per `\n`). It is written in one call and flushed at once, under a
  lock: the supervisor reads a child's pipe line by line and tests wait for a line, so nothing may sit in
  a buffer, and a heartbeat thread's line never interleaves with the main thread's. Diagnostics that
  nobody reads this way go to absl logging instead.
  """
  stream = sys.stderr if error else sys.stdout
  with _SAY_LOCK:
    stream.write(line + '\n')
    stream.flush()


def is_noise(line: str) -> bool:
  """Whether a line of the learner's output stays off the console by default (it still reaches the log)."""
  line = line.rstrip('\r\n')
  m = _CPP.match(line)
  if m:
    return m.group(1) == 'I' or bool(_CPP_STARTUP.search(m.group(2)))
  m = _ABSL.match(line)
  if m:
    return m.group(1) == 'I'
  return bool(_PY_INFO.match(line)) or line.startswith(_GYM) or line == _ABSL_CPP_NOTICE


def tf_cpp_min_log_level(verbosity: int) -> str:
  """TF_CPP_MIN_LOG_LEVEL for an absl verbosity (0 INFO, -1 WARNING, -2 ERROR, -3 FATAL)."""
  return str(min(3, max(0, -verbosity)))


class Tee(threading.Thread):
  """Copies a child's output stream, line by line, to its log and (unless noise) to the console."""

  def __init__(self, source, console, log, lock: threading.Lock, show_all: bool = False):
    super().__init__(daemon=True, name='console-tee')
    self._source, self._console, self._log, self._lock = source, console, log, lock
    self._show_all = show_all
    self.hidden = 0

  def run(self):
    # Reading never stops before the child's end: a full pipe would block the learner. A log or console
    # that fails (disk full, a closed terminal) is given up, not the reading.
    log_ok = console_ok = True
    for raw in iter(self._source.readline, b''):
      if log_ok:
        try:
          with self._lock:
            self._log.write(raw)
            self._log.flush()
        except (OSError, ValueError):
          log_ok = False
      line = raw.decode('utf-8', errors='replace')
      if not (self._show_all or not is_noise(line)):
        self.hidden += 1
      elif console_ok:
        try:
          self._console.write(line if line.endswith('\n') else line + '\n')
          self._console.flush()
        except (OSError, ValueError):
          console_ok = False
    self._source.close()
