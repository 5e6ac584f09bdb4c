"""First signs of life of a learner: what a step will cost, and a line at least every 30 s until it runs.

A deepmind-size learner on a CPU takes minutes to its first step (TensorFlow start-up, XLA compilation,
the actors filling the queue) and ≈ 15–20 s per step after that. So the learner says at its start what a
step is expected to take (a figure measured on a 2-core machine, scaled to this host's cores), prints a
progress line every `interval_s` while it builds, waits for its first batches (queue fill, frames the
actors have written) or runs its first update, and once two steps are done prints the step time it
measured.

Usage (spiral_tf/distributed/learner.py):
  heartbeat = Heartbeat(config, cores=os.cpu_count()); heartbeat.start()   # phase 'building'
  heartbeat.waiting(address)     # datasets made: report the queue until the first batch
  heartbeat.updating()           # first batch in hand: the first update runs (compiles)
  heartbeat.stepped(seconds)     # after each learner step; the heartbeat ends after the second
"""

import threading
import time

from spiral_tf.distributed import console

# Learner seconds per frame (one action of one episode) on a 2-core AMD EPYC with the CelebA settings
# (batch 64 × 19 frames): (network_size, jit_compile) → seconds per frame. XLA on the deepmind network:
# benchmarks/run_on_host.py, configs/celeba.cfg, 2026-12-01 with load average 3–7 (15–18 s per step, the
# first one ≈ 100 s more for the compilation; under load 11–14 the compilation took more than 5 minutes);
# the others: benchmarks/results.md, network_throughput at load ≈ 1.5 (deepmind with TensorFlow's
# kernels 289 frames/s, tiny 986, tiny XLA 182). Other jobs on the host make steps slower.
MEASURED_CORES = 2
SECONDS_PER_FRAME = {
    ('deepmind', True): 16.0 / 1216,
    ('deepmind', False): 1 / 289,
    ('tiny', True): 1 / 182,
    ('tiny', False): 1 / 986,
}
COMPILE_SECONDS = {
    ('deepmind', True): 100.0,
    ('deepmind', False): 10.0,
    ('tiny', True): 40.0,
    ('tiny', False): 5.0,
}
INTERVAL_S = 20.0
QUEUE = 'queue'  # spiral_tf/replay/tables.py's table of whole episodes (not imported: it imports TensorFlow).


def expected_step_seconds(network_size: str, jit_compile: bool, frames_per_step: int, cores: int) -> float:
  """The measured CPU step time, scaled to this step's frames and to `cores` (linear in both)."""
  per_frame = SECONDS_PER_FRAME[(network_size, bool(jit_compile))]
  return per_frame * frames_per_step * MEASURED_CORES / max(1, cores)


def announcement(config, cores: int) -> str:
  """What a learner step will cost on this host's CPU, as the learner prints it at its start."""
  frames = config.batch_size * config.frames_per_episode
  key = (config.network_size, bool(config.jit_compile))
  if config.strategy == 'tpu' or key not in SECONDS_PER_FRAME:
    return f'[learner] {frames:,} frames per learner step; no measured step time for this device'
  step = expected_step_seconds(config.network_size, config.jit_compile, frames, cores)
  compiled = 'XLA' if config.jit_compile else 'TensorFlow kernels'
  compile_s = COMPILE_SECONDS[key] * MEASURED_CORES / max(1, cores)
  return (
      f'[learner] on a CPU a learner step takes ≈ {_seconds(step)} ({config.network_size} network, '
      f'{compiled}, {frames:,} frames: ≤ {frames / step:,.0f} frames/s), the first ≈ '
      f'{_seconds(compile_s)} more (compilation) — measured on {MEASURED_CORES} cores, scaled to '
      f'{cores}; slower when other jobs share them'
  )


def _seconds(s: float) -> str:
  return f'{s:.2f} s' if s < 1 else f'{s:.1f} s' if s < 10 else f'{s:.0f} s'


class Heartbeat(threading.Thread):
  """Prints a line every `interval_s` until the learner's first steps are done (module docstring)."""

  def __init__(
      self,
      config,
      cores: int,
      interval_s: float = INTERVAL_S,
      clock=time.monotonic,
      printer=None,
      server_info=None,
  ):
    super().__init__(daemon=True, name='learner-heartbeat')
    self._config, self._cores, self._interval_s, self._clock = config, cores, interval_s, clock
    self._print = printer or console.say
    self._server_info = server_info  # address → reverb server_info (tests pass a stand-in)
    self._lock = threading.Lock()
    self._done = threading.Event()
    self._phase, self._address = 'building', None
    self._start = self._phase_start = clock()
    self._steps, self._step_seconds = 0, []

  @classmethod
  def disabled(cls):
    beat = cls.__new__(cls)
    beat._done = threading.Event()  # pylint: disable=protected-access
    beat._done.set()  # pylint: disable=protected-access
    return beat

  def run(self):
    self._print(announcement(self._config, self._cores))
    while not self._done.wait(self._interval_s):
      line = self.line()
      if line:
        self._print(line)

  def _set(self, phase, **kw):
    if self._done.is_set():
      return
    with self._lock:
      self._phase, self._phase_start = phase, self._clock()
      for k, v in kw.items():
        setattr(self, f'_{k}', v)

  def waiting(self, address: str):
    self._set('waiting', address=address)

  def updating(self):
    """A batch is in hand; marks the first update (later calls change nothing)."""
    if self._phase == 'waiting':
      self._set('updating')

  def stepped(self, seconds: float):
    """After a learner step that took `seconds` (batch fetch excluded); prints the step time at the 2nd."""
    if self._done.is_set():
      return
    with self._lock:
      self._steps += 1
      self._step_seconds.append(seconds)
      steps = self._steps
    if steps == 1:
      self._set('second step')
    elif steps >= 2:
      self._done.set()
      frames = self._config.batch_size * self._config.frames_per_episode
      first, step = self._step_seconds[0], self._step_seconds[-1]
      self._print(
          f'[learner] measured: a learner step takes {_seconds(step)} here (≤ '
          f'{frames / max(step, 1e-9):,.0f} frames/s); the first took {_seconds(first)} '
          f'(compilation included), {_seconds(self._clock() - self._start)} after the start'
      )

  def stop(self):
    self._done.set()

  def line(self) -> str | None:
    """The progress line of the current phase (None once the first steps are done)."""
    if self._done.is_set():
      return None
    with self._lock:
      phase, since, address = self._phase, self._clock() - self._phase_start, self._address
    elapsed = f'{self._clock() - self._start:.0f} s since the start'
    if phase == 'building':
      return f'[learner] building the networks and the update ({elapsed})'
    if phase == 'waiting':
      return f'[learner] waiting for the first batch ({elapsed}): {self._queue(address)}'
    if phase == 'updating':
      return f'[learner] first update running for {since:.0f} s (it compiles the update first; ' f'{elapsed})'
    return f'[learner] step 2 running for {since:.0f} s ({elapsed})'

  def _queue(self, address) -> str:
    c = self._config
    try:
      if self._server_info is not None:
        info = self._server_info(address)
      else:
        # Lazy: Reverb loads TensorFlow; this module runs without it (its tests, the stand-in servers).
        import reverb  # pylint: disable=g-import-not-at-top

        info = reverb.Client(address).server_info(timeout=5)
      queue = info[QUEUE]
      episodes = queue.rate_limiter_info.insert_stats.completed
    except Exception as e:  # pylint: disable=broad-except — a restarting server: say so, try again.
      return f'Reverb at {address} not answering ({type(e).__name__})'
    frames = episodes * c.frames_per_episode
    # The learner's dataset takes episodes out of the queue as they come, so the count written tells more.
    return (
        f'the actors have written {episodes:,} episodes ({frames:,} frames; a batch takes '
        f'{c.batch_size}), {queue.current_size} still in the queue'
    )
