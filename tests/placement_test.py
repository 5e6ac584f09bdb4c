"""`--role=all` on the host it is given: placement, the memory guard, first signs of life, console filter.

Placement (spiral_tf/distributed/placement.py) is a pure function of the host's facts, tested on the plans it
makes — among them the CelebA config on this development machine (2 cores, 23.5 GiB) and on the host running
the test. The supervisor's running memory watch runs with the stand-in roles of tests/reliability_fixtures.py
and a stand-in /proc/meminfo. The learner's heartbeat (spiral_tf/distributed/startup.py) and the console
filter (spiral_tf/distributed/console.py) are tested on the lines they make and the real lines they sort. End
to end: tests/console_test.py.
"""

import dataclasses
import io
import pathlib
import re
import sys
import threading
import time

import pytest

import real_data
from spiral_tf import config as config_lib
from spiral_tf.distributed import console
from spiral_tf.distributed import placement
from spiral_tf.distributed import startup
from spiral_tf.distributed import supervisor as supervisor_lib

ROOT = pathlib.Path(__file__).resolve().parent.parent
GIB = 2**30
# The development machine of the issue: 2 cores, 23.5 GiB, ≈ 19 GiB free when the issue was filed.
DEV_HOST = placement.Host(cores=2, memory_total=int(23.5 * GIB), memory_available=19 * GIB)
# A CelebA-like footprint with round figures: learner 5, Reverb 1, actor 1 GiB (+ 10 MiB per env).
FOOT = placement.Footprint(
    learner=5 * GIB, reverb=GIB, actor=GIB, per_env=10 * 2**20, evaluator=GIB, supervisor=0
)


def _flagfile_config(path, **overrides) -> config_lib.Config:
  """The Config a flagfile gives (nested --flagfile included), as launch/train.py would build it."""
  values = {}

  def read(p):
    for line in (ROOT / p).read_text().splitlines():
      line = line.strip()
      if not line or line.startswith('#'):
        continue
      name, _, value = line[2:].partition('=')
      if name == 'flagfile':
        read(value)
      else:
        values[name] = value

  read(path)
  # Flag names are flat; the update's settings are Config.learner's fields.
  types = {
      f.name: f.type for cls in (config_lib.Config, config_lib.LearnerConfig) for f in dataclasses.fields(cls)
  }
  defaults = config_lib.to_dict(config_lib.Config())
  typed = {}
  for name, value in values.items():
    default = defaults[name]
    if isinstance(default, bool):
      typed[name] = value.lower() in ('1', 'true')
    elif isinstance(default, tuple):
      typed[name] = tuple(int(x) for x in value.split(','))
    elif isinstance(default, int) or 'int' in str(types[name]):
      typed[name] = int(value)
    elif isinstance(default, float) or 'float' in str(types[name]):  # --discount's default is None.
      typed[name] = float(value)
    else:
      typed[name] = value
  typed.update(overrides)
  return config_lib.from_dict(typed)


# --- plans from host facts ---------------------------------------------------------------------------------


def test_paper_request_on_two_cores_packs_64_envs_into_two_processes():
  p = placement.plan(DEV_HOST, num_actors=64, envs_per_actor=1, footprint=FOOT)
  assert p.actor_envs == (32, 32)
  assert p.total_envs == 64 and p.repacked
  assert [p.first_env(i) for i in range(2)] == [0, 32]
  assert p.memory_needed == 5 * GIB + GIB + 2 * GIB + 64 * 10 * 2**20
  assert p.describe().startswith(
      '64 actors × 1 env requested; this host (2 cores, 23.5 GiB, 19.0 GiB '
      'available): 2 actor processes × 32 envs [one per core'
  )


def test_more_cores_more_processes_and_the_total_is_kept():
  host = placement.Host(cores=16, memory_total=256 * GIB, memory_available=250 * GIB)
  p = placement.plan(host, num_actors=64, envs_per_actor=1, footprint=FOOT)
  assert p.actor_envs == (4,) * 16
  p = placement.plan(host, num_actors=10, envs_per_actor=3, footprint=FOOT)  # 30 over 10: as configured.
  assert p.actor_envs == (3,) * 10 and not p.repacked and p.reason.startswith('as configured')


def test_memory_bounds_the_processes_before_the_cores_do():
  # 32 cores, but 60 % of 32 GiB = 19.2 GiB: 19.2 − 5 − 1 − 64 envs × 10 MiB = 12.6 GiB → 12 actors.
  host = placement.Host(cores=32, memory_total=32 * GIB, memory_available=30 * GIB)
  p = placement.plan(host, num_actors=64, envs_per_actor=1, footprint=FOOT)
  assert p.processes == 12 and p.total_envs == 64
  assert sorted(set(p.actor_envs)) == [5, 6]  # 64 = 4 × 6 + 8 × 5: as even as it gets.
  assert p.memory_needed <= placement.BUDGET_FRACTION * host.memory_total
  assert 'memory' in p.reason
  # Less available than the budget (another job holds memory): sized to what is available.
  busy = dataclasses.replace(host, memory_available=10 * GIB)
  assert placement.plan(busy, 64, 1, FOOT).processes == 3  # (10 − 6.6) // 1


def test_uneven_shares_are_seeded_apart():
  p = placement.plan(DEV_HOST, num_actors=5, envs_per_actor=1, footprint=FOOT)
  assert p.actor_envs == (3, 2)
  assert [p.first_env(i) for i in range(2)] == [0, 3]
  envs = [p.first_env(i) + j for i, k in enumerate(p.actor_envs) for j in range(k)]
  assert envs == list(range(5))  # Every environment once: none dropped, none twice.
  assert '2 actor processes (1 × 3 + 1 × 2 envs)' in p.describe()


def test_local_actors_overrides_the_host_rule():
  p = placement.plan(DEV_HOST, num_actors=64, envs_per_actor=1, footprint=FOOT, local_actors=4)
  assert p.actor_envs == (16,) * 4 and p.reason == '--local_actors=4'
  p = placement.plan(DEV_HOST, num_actors=2, envs_per_actor=4, footprint=FOOT, local_actors=1)
  assert p.actor_envs == (8,)
  with pytest.raises(
      placement.PlacementError,
      match=r'--local_actors=9 is more processes than the run has '
      r'environments \(2 actors × 4 envs = 8\).*at most --local_actors=8',
  ):
    placement.plan(DEV_HOST, num_actors=2, envs_per_actor=4, footprint=FOOT, local_actors=9)


def test_guard_refuses_a_run_bigger_than_the_host_naming_figures_and_flags():
  small = placement.Host(cores=2, memory_total=8 * GIB, memory_available=6 * GIB)
  with pytest.raises(placement.PlacementError) as error:
    placement.plan(small, num_actors=64, envs_per_actor=1, footprint=FOOT, evaluator=True)
  message = str(error.value)
  assert 'this run needs ≈ 8.6 GiB (learner 5.0, Reverb 1.0, 1 actor process × 1.0' in message
  assert 'this host has 6.0 GiB available (of 8.0 GiB)' in message
  for flag in (
      '--num_actors × --envs_per_actor = 64 × 1',
      '--evaluator=false',
      '--jit_compile=false',
      '--batch_size',
  ):
    assert flag in message, message
  # An explicit --local_actors that does not fit is refused with the number that does.
  with pytest.raises(
      placement.PlacementError,
      match=r'^--local_actors=20: this run needs ≈ 26\.6 GiB .* ' r'at most --local_actors=12 fit',
  ):
    placement.plan(DEV_HOST, 64, 1, FOOT, local_actors=20)


def _subset_partition(tmp_path):
  """A data directory whose CelebA partition file has the subset's splits (7,508 / 907 / 928), no images."""
  directory = tmp_path / 'celeba'
  (directory / 'img_align_celeba').mkdir(parents=True)
  splits = [0] * 7508 + [1] * 907 + [2] * 928
  (directory / 'list_eval_partition.txt').write_text(
      ''.join(f'{i + 1:06d}.jpg {s}\n' for i, s in enumerate(splits))
  )
  return tmp_path


@pytest.mark.parametrize('data', ['partition file written here', 'real subset'])
def test_celeba_config_on_the_development_machine_makes_a_plan_that_fits(data, tmp_path):
  data_dir = (
      _subset_partition(tmp_path) if data == 'partition file written here' else (real_data.require('celeba'))
  )
  config = _flagfile_config('configs/celeba.cfg', data_dir=str(data_dir))
  assert (config.num_actors, config.envs_per_actor, config.network_size) == (64, 1, 'deepmind')
  footprint = placement.footprint(config)
  assert placement.train_images(config) > 1000  # Counted from the partition file, not the full set.
  p = placement.plan(DEV_HOST, config.num_actors, config.envs_per_actor, footprint)
  assert p.actor_envs == (32, 32)
  assert p.memory_needed <= placement.BUDGET_FRACTION * DEV_HOST.memory_total, p.describe()
  # With the full CelebA (162,770 training faces, 2 GB in every actor) it still fits, as two processes.
  full = placement.footprint(config, images=162_770)
  assert placement.plan(DEV_HOST, 64, 1, full).processes == 2


def test_celeba_config_on_this_host_makes_a_plan_that_fits(tmp_path):
  host = placement.host_facts()
  assert host.cores >= 1 and 0 < host.memory_available <= host.memory_total
  if host.memory_total < 12 * GIB:
    pytest.skip(f'this host has {host.memory_total / GIB:.1f} GiB; the deepmind learner alone takes ≈ 5')
  config = _flagfile_config('configs/celeba.cfg', data_dir=str(tmp_path))  # images given: no files read
  p = placement.plan(host, 64, 1, placement.footprint(config, images=10_000))
  assert 1 <= p.processes <= host.cores and p.total_envs == 64
  assert p.memory_needed <= placement.BUDGET_FRACTION * host.memory_total


def test_every_paper_config_fits_the_development_machine():
  for name in ('celeba', 'celeba_unconditional', 'mnist', 'omniglot', 'mujoco'):
    config = _flagfile_config(f'configs/{name}.cfg')
    images = placement.TRAIN_IMAGES[config.dataset]  # Full datasets: the largest footprint.
    p = placement.plan(
        DEV_HOST, config.num_actors, config.envs_per_actor, placement.footprint(config, images=images)
    )
    assert p.actor_envs == (32, 32), name
    assert p.memory_needed <= 0.6 * DEV_HOST.memory_total, (name, p.describe())


def test_local_actors_beyond_the_environments_is_a_configuration_error(tmp_path):
  with pytest.raises(config_lib.ConfigError, match='--local_actors: 9 is not between 0'):
    config_lib.validate(
        config_lib.Config(root_dir=str(tmp_path), num_actors=2, envs_per_actor=4, local_actors=9)
    )


def test_meminfo_is_read_in_bytes():
  info = placement.read_meminfo()
  assert info['MemTotal'] > info['MemAvailable'] > 0
  assert info['MemTotal'] > 2**28  # bytes, not kB


# --- the supervisor's memory watch ----------------------------------------------------------------------


def _supervisor(tmp_path, available_fraction, learner_seconds):
  config = config_lib.Config(root_dir=str(tmp_path), num_actors=1)
  total = 16 * GIB
  meminfo = lambda: {'MemTotal': total, 'MemAvailable': int(available_fraction * total)}
  # The stand-in actor exits at once; a long healthy_after_s would back off its restarts.
  return supervisor_lib.Supervisor(
      str(ROOT / 'tests' / 'reliability_fixtures.py'),
      [f'--learner_seconds={learner_seconds}'],
      config,
      poll_s=0.05,
      backoff_s=0.5,
      max_backoff_s=1,
      memory_poll_s=0.1,
      meminfo=meminfo,
  )


def test_supervisor_warns_when_available_memory_falls_below_the_floor(tmp_path, capsys):
  sup = _supervisor(tmp_path, available_fraction=0.08, learner_seconds=3)
  assert sup.run() == 0  # The stand-in learner ends the run after 3 s: a warning does not stop it.
  out = capsys.readouterr().out
  warnings = re.findall(
      r'\[supervisor\] warning: this host has 1\.3 GiB of memory available \(8% of '
      r'16\.0 GiB; the floor is 10%\); resident GiB: .*learner [\d.]+.*--local_actors',
      out,
  )
  assert len(warnings) == 1, out  # Once a minute, not at every poll.
  assert 'stopping' not in out


def test_supervisor_stops_the_run_cleanly_below_the_critical_floor(tmp_path, capsys):
  sup = _supervisor(tmp_path, available_fraction=0.02, learner_seconds=60)
  start = time.monotonic()
  code = sup.run()
  assert time.monotonic() - start < 30  # Not the stand-in learner's 60 s.
  out = capsys.readouterr().out
  assert 'below 4% of memory available: stopping (learner checkpoints first)' in out
  assert code == -15  # The learner was asked to stop (SIGTERM), as on Ctrl-C.


def test_memory_floor_leaves_a_healthy_host_alone(tmp_path, capsys):
  assert _supervisor(tmp_path, available_fraction=0.5, learner_seconds=1).run() == 0
  assert 'of memory available' not in capsys.readouterr().out


# --- first signs of life --------------------------------------------------------------------------------


class _Clock:

  def __init__(self):
    self.t = 100.0

  def __call__(self):
    return self.t


class _Info:
  """A Reverb TableInfo stand-in: current_size and rate_limiter_info.insert_stats.completed."""

  def __init__(self, size, inserted):
    self.current_size = size
    self.rate_limiter_info = type('R', (), {'insert_stats': type('S', (), {'completed': inserted})()})()


def test_expected_step_time_is_the_measured_one_scaled_to_the_host():
  config = _flagfile_config('configs/celeba.cfg')
  frames = config.batch_size * config.frames_per_episode
  assert frames == 1216
  assert startup.expected_step_seconds('deepmind', True, frames, cores=2) == pytest.approx(16.0)
  assert startup.expected_step_seconds('deepmind', True, frames, cores=8) == pytest.approx(4.0)
  line = startup.announcement(config, cores=2)
  assert line.startswith(
      '[learner] on a CPU a learner step takes ≈ 16 s (deepmind network, XLA, '
      '1,216 frames: ≤ 76 frames/s), the first ≈ 100 s more'
  ), line


def test_heartbeat_reports_each_phase_then_the_measured_step_time():
  config = _flagfile_config('configs/celeba.cfg')
  clock, printed = _Clock(), []
  beat = startup.Heartbeat(
      config,
      cores=2,
      clock=clock,
      printer=printed.append,
      server_info=lambda address: {'queue': _Info(12, 40)},
  )
  clock.t += 15
  assert beat.line() == '[learner] building the networks and the update (15 s since the start)'
  beat.waiting('localhost:1')
  clock.t += 20
  assert beat.line() == (
      '[learner] waiting for the first batch (35 s since the start): the actors have '
      'written 40 episodes (760 frames; a batch takes 64), 12 still in the queue'
  )
  beat.updating()
  clock.t += 50
  beat.updating()  # Every later batch calls it too: the phase's start stays.
  clock.t += 10
  assert beat.line().startswith('[learner] first update running for 60 s')
  beat.stepped(110.0)
  clock.t += 30
  assert beat.line() == '[learner] step 2 running for 30 s (125 s since the start)'
  beat.stepped(17.5)
  assert printed == [
      '[learner] measured: a learner step takes 18 s here (≤ 69 frames/s); the first took '
      '110 s (compilation included), 125 s after the start'
  ]
  assert beat.line() is None  # Done: the progress lines take over.
  beat.stepped(17.0)
  assert len(printed) == 1


def test_heartbeat_prints_at_its_interval_while_waiting():
  config = config_lib.Config()
  printed = []
  beat = startup.Heartbeat(
      config,
      cores=2,
      interval_s=0.05,
      printer=printed.append,
      server_info=lambda address: (_ for _ in ()).throw(ConnectionError('down')),
  )
  beat.start()
  beat.waiting('localhost:1')
  time.sleep(0.5)
  beat.stop()
  beat.join(2)
  assert printed[0].startswith('[learner] on a CPU a learner step takes')
  waiting = [line for line in printed if 'waiting for the first batch' in line]
  assert len(waiting) >= 3, printed
  assert 'Reverb at localhost:1 not answering (ConnectionError)' in waiting[-1]


# --- the console filter -------------------------------------------------------------------------------------

NOISE = [  # Real lines of a learner's output (configs/smoke.cfg and configs/celeba.cfg on this machine).
    '2026-12-01 21:10:02.316668: E external/local_xla/xla/stream_executor/cuda/cuda_dnn.cc:9261] Unable to '
    'register cuDNN factory: Attempting to register factory for plugin cuDNN when one has already been '
    'registered',
    '2026-12-01 21:10:02.331231: E external/local_xla/xla/stream_executor/cuda/cuda_blas.cc:1515] Unable to '
    'register cuBLAS factory: Attempting to register factory for plugin cuBLAS when one has already been '
    'registered',
    '2026-12-01 21:15:02.713623: E external/local_xla/xla/stream_executor/stream_executor_internal.h:177] '
    'SetPriority unimplemented for this stream.',
    '2026-12-01 21:10:01.100000: I tensorflow/core/platform/cpu_feature_guard.cc:182] This TensorFlow binary '
    'is optimized to use available CPU instructions in performance-critical operations.',
    'Gym has been unmaintained since 2022 and does not support NumPy 2.0 amongst other critical '
    'functionality.',
    'Please upgrade to Gymnasium, the maintained drop-in replacement of Gym, or contact the authors of your '
    'software and request that they upgrade.',
    'See the migration guide at https://gymnasium.farama.org/introduction/migration_guide/ for additional '
    'information.',
    'I1201 21:10:29.765931 140643534400384 builder_impl.py:801] Assets written to: '
    '/tmp/w15/smoke1/.export.tmp-4253-412c1b64/assets',
    'I1201 21:10:29.768782 140643534400384 fingerprinting_utils.py:49] Writing fingerprint to '
    'x/fingerprint.pb',
    'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR',
    'I0000 00:00:1796159702.680635    6494 device_compiler.h:186] Compiled cluster using XLA!  This line is '
    'logged at most once for the lifetime of the process.',
    'INFO:tensorflow:Assets written to: /tmp/x/assets',
]
SHOWN = [
    '[learner] step 1  frames 1,216  12 frames/s  ETA no limit  D(real) 0.012  busy 0.933',
    '[supervisor] plan: 64 actors × 1 env requested',
    'Traceback (most recent call last):',
    '  File "/work/spiral_tf/distributed/learner.py", line 10, in run',
    'ValueError: something broke',
    'train.py: configuration error: --strategy=tpu: no TPU reachable',
    'W1201 21:10:29.765931 140643534400384 checkpoint.py:205] Value in checkpoint could not be found',
    '2026-12-01 21:10:02.316668: W tensorflow/core/framework/cpu_allocator_impl.cc:83] Allocation of '
    '1073741824 exceeds 10% of free system memory.',
    '2026-12-01 21:10:02.316668: E tensorflow/core/grappler/optimizers/meta_optimizer.cc:961] failed',
    '/work/x.py:3: UserWarning: something to know',
]


@pytest.mark.parametrize('line', NOISE)
def test_startup_noise_stays_off_the_console(line):
  assert console.is_noise(line + '\n')


@pytest.mark.parametrize('line', SHOWN)
def test_progress_warnings_and_errors_reach_the_console(line):
  assert not console.is_noise(line + '\n')


def test_tee_logs_every_line_and_shows_the_rest():
  source = io.BytesIO(''.join(line + '\n' for line in NOISE + SHOWN).encode())
  shown, log = io.StringIO(), io.BytesIO()
  tee = console.Tee(source, shown, log, threading.Lock())
  tee.run()
  assert log.getvalue().decode().splitlines() == NOISE + SHOWN
  assert shown.getvalue().splitlines() == SHOWN and tee.hidden == len(NOISE)
  everything = io.StringIO()
  console.Tee(io.BytesIO(log.getvalue()), everything, io.BytesIO(), threading.Lock(), show_all=True).run()
  assert everything.getvalue().splitlines() == NOISE + SHOWN


def test_tee_keeps_reading_when_the_console_is_gone():
  class Closed(io.StringIO):

    def write(self, text):
      raise BrokenPipeError('the terminal went away')

  source = io.BytesIO(b''.join(f'[learner] step {i}\n'.encode() for i in range(1000)))
  log = io.BytesIO()
  console.Tee(source, Closed(), log, threading.Lock()).run()
  assert source.closed  # Read to the end: the learner's pipe never fills up.
  assert log.getvalue().count(b'[learner] step') == 1000


def test_say_writes_whole_flushed_lines_to_stdout_or_stderr(monkeypatch):
  class Recorder(io.StringIO):
    flushed = ''

    def flush(self):
      self.flushed = self.getvalue()

  out, err = Recorder(), Recorder()
  monkeypatch.setattr(sys, 'stdout', out)
  monkeypatch.setattr(sys, 'stderr', err)
  console.say('[learner] stopped: max frames.\n[learner] checkpoint: ckpt-1')
  console.say('train.py: configuration error: bad', error=True)
  # Flushed at once: the supervisor and the tests read the pipe line by line.
  assert out.flushed == '[learner] stopped: max frames.\n[learner] checkpoint: ckpt-1\n'
  assert err.flushed == 'train.py: configuration error: bad\n'


def test_say_lines_from_two_threads_never_interleave(monkeypatch):
  out = io.StringIO()
  monkeypatch.setattr(sys, 'stdout', out)
  threads = [
      threading.Thread(target=lambda n=n: [console.say(f'[learner] {n} ' + 'x' * 200) for _ in range(200)])
      for n in range(2)
  ]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  lines = out.getvalue().splitlines()
  assert len(lines) == 400 and all(re.fullmatch(r'\[learner\] [01] x{200}', line) for line in lines)


def test_verbosity_maps_to_tensorflows_cpp_level():
  assert [console.tf_cpp_min_log_level(v) for v in (1, 0, -1, -2, -3, -9)] == ['0', '0', '1', '2', '3', '3']


# --- the learner's compiler on a CPU-only host -------------------------------------------------------------


def test_a_cpu_only_host_runs_the_learner_without_xla_unless_told():
  jit, note = placement.learner_jit(True, given=False, strategy='default', accelerator=False)
  assert jit is False and '--jit_compile=true keeps XLA' in note
  for given, accelerator, strategy in (
      (True, False, 'default'),
      (False, True, 'default'),
      (False, False, 'tpu'),
  ):
    assert placement.learner_jit(True, given, strategy, accelerator) == (True, None)
  assert placement.learner_jit(False, given=True, strategy='default', accelerator=False) == (False, None)
  p = placement.plan(DEV_HOST, 64, 1, FOOT, learner_flags=('--jit_compile=false',), notes=(note,))
  assert p.learner_flags == ('--jit_compile=false',) and p.describe().endswith(note)
