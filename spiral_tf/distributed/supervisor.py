"""`--role=all`: runs one training job on this machine as supervised subprocesses.

The supervisor imports neither TensorFlow nor Reverb: it only starts `launch/train.py` again once per role
(a Reverb server, the learner, `num_actors` actors), each in its own session so that Ctrl-C reaches the
supervisor alone and the shutdown order stays ours: learner first (it writes a final checkpoint), then the
actors and the server.

How many actor processes run here, with how many environments each, is the plan's
(spiral_tf/distributed/placement.py: sized to the host's cores and memory, or `--local_actors`); it is printed
before anything starts. Without a plan, the config's `--num_actors` × `--envs_per_actor` run as given.

A dead actor, server or evaluator is restarted. One that dies soon after its start (within `healthy_after_s`)
is in a crash loop: each further quick death doubles the delay before its next start (`backoff_s`, up to
`max_backoff_s`), so a broken host or configuration costs a log line per attempt, not a busy CPU.

With `--num_learner_workers=N` (and `--strategy=multi_worker`) the learner is N processes, `learner` (the
chief, on the console) and `learner-1` … `learner-<N-1>`, each with its TF_CONFIG naming all N on free
ports of the loopback address (or of `--reverb_bind_address` when it is one address), their TensorFlow
servers held there by the same shim as Reverb. Stopping the learner signals every worker (they stop at the
same step: spiral_tf/distributed/learner.py); a worker that fails stops the run, since the others cannot
train without it.

Console: the supervisor's lines and the learner's progress, warnings and errors; everything a role prints goes
to its log under `root_dir/logs/` (spiral_tf/distributed/console.py; `show_all` lifts the learner's filter).
Memory: every `memory_poll_s` the host's available memory is read; below the floor the console says so
(with each role's resident memory), and below the critical floor the run stops as on Ctrl-C — the
learner checkpoints — before the kernel's OOM killer picks a process.

Usage:
  exit_code = Supervisor(train_py, argv, config, plan=placement.plan(...)).run()
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

from spiral_tf import config as config_lib
from spiral_tf import run_dir
from spiral_tf.distributed import console
from spiral_tf.distributed import listen
from spiral_tf.distributed import placement

LEARNER_SHUTDOWN_S = 180.0
CHILD_SHUTDOWN_S = 20.0
# Crash-loop backoff: a child that lived less than HEALTHY_AFTER_S before dying waits BACKOFF_S, then
# 2 × BACKOFF_S, ... (at most MAX_BACKOFF_S) before each further restart.
HEALTHY_AFTER_S = 60.0
BACKOFF_S = 5.0
MAX_BACKOFF_S = 300.0
MEMORY_POLL_S = 5.0
MEMORY_WARN_EVERY_S = 60.0
# Flags the supervisor sets per child; the user's own values of them are dropped from the children's argv.
_PER_CHILD_FLAGS = ('--role', '--task', '--reverb_address', '--first_env')


def restart_delay(quick_deaths: int, backoff_s: float = BACKOFF_S, max_backoff_s: float = MAX_BACKOFF_S):
  """Seconds to wait before restarting a child after `quick_deaths` short-lived runs in a row."""
  if quick_deaths <= 1:
    return 0.0  # One early death (e.g. killed, or the server restarting) is not yet a loop.
  return min(max_backoff_s, backoff_s * 2 ** (quick_deaths - 2))


def learner_tf_configs(host: str, ports: list[int]) -> list[str]:
  """TF_CONFIG of each of len(ports) learner workers on `host` (worker 0 is the chief).

  Usage:
    env = dict(os.environ, TF_CONFIG=learner_tf_configs('127.0.0.1', [41234, 41235])[1])
  """
  where = f'[{host}]' if ':' in host else host
  cluster = {'worker': [f'{where}:{port}' for port in ports]}
  return [json.dumps({'cluster': cluster, 'task': {'type': 'worker', 'index': i}}) for i in range(len(ports))]


class Supervisor:
  """Starts, watches and stops the roles of a run (see module docstring)."""

  def __init__(
      self,
      train_py: str,
      argv: list[str],
      config: config_lib.Config,
      poll_s: float = 0.5,
      healthy_after_s: float = HEALTHY_AFTER_S,
      backoff_s: float = BACKOFF_S,
      max_backoff_s: float = MAX_BACKOFF_S,
      plan: placement.Plan | None = None,
      show_all: bool = False,
      memory_poll_s: float = MEMORY_POLL_S,
      meminfo=placement.read_meminfo,
  ):
    self._train_py = train_py
    self._argv = [a for a in argv if not a.startswith(_PER_CHILD_FLAGS)]
    self._config = config
    self._actor_envs = plan.actor_envs if plan else (config.envs_per_actor,) * config.num_actors
    self._plan = plan
    self._show_all = show_all
    self._tees = []
    self._memory_poll_s, self._meminfo = memory_poll_s, meminfo
    self._memory_checked_at = self._memory_warned_at = -float('inf')
    self._poll_s = poll_s
    self._stopping = False
    self._procs: dict[str, subprocess.Popen] = {}
    self._logs = {}
    self.restarts: dict[str, int] = {}
    self._healthy_after_s, self._backoff_s, self._max_backoff_s = healthy_after_s, backoff_s, max_backoff_s
    self._started_at: dict[str, float] = {}
    self._quick_deaths: dict[str, int] = {}
    self._restart_at: dict[str, float] = {}  # Dead children waiting out their backoff.
    self.log_dir = run_dir.RunDir(config.root_dir).logs
    self._learners = ['learner'] + [f'learner-{i}' for i in range(1, config.num_learner_workers)]

  def _command(self, role, *extra):
    return [sys.executable, self._train_py, *self._argv, f'--role={role}', *extra]

  def _start(self, name, command, to_console=False, env=None):
    out = self._logs.get(name) or open(os.path.join(self.log_dir, f'{name}.log'), 'ab')
    self._logs[name] = out
    if to_console:  # Both streams through a filter (distributed/console.py) to the console and the log.
      env = dict(env or os.environ, PYTHONUNBUFFERED='1')
      proc = subprocess.Popen(
          command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, env=env
      )
      lock = threading.Lock()
      self._tees = [
          console.Tee(proc.stdout, sys.stdout, out, lock, self._show_all),
          console.Tee(proc.stderr, sys.stderr, out, lock, self._show_all),
      ]
      for tee in self._tees:
        tee.start()
    else:
      proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    self._procs[name] = proc
    self._started_at[name] = time.monotonic()
    console.say(f'[supervisor] started {name} (pid {self._procs[name].pid})')

  def _start_actor(self, i):
    self._start(
        f'actor-{i}',
        self._command(
            'actor',
            f'--task={i}',
            f'--reverb_address={self._address}',
            f'--envs_per_actor={self._actor_envs[i]}',
            f'--first_env={sum(self._actor_envs[:i])}',
        ),
    )

  def _start_evaluator(self):
    self._start('evaluator', self._command('evaluator', f'--reverb_address={self._address}'))

  def _start_reverb(self):
    self._start('reverb', self._command('reverb', f'--reverb_port={self._port}'), env=self._reverb_env)

  def _on_signal(self, signum, frame):
    del frame
    if not self._stopping:
      console.say(f'[supervisor] {signal.Signals(signum).name}: stopping (learner checkpoints first)')
    self._stopping = True

  def run(self) -> int:
    bind = self._config.reverb_bind_address
    try:  # The server listens on --reverb_bind_address only (spiral_tf/distributed/listen.py).
      self._port = self._config.reverb_port or listen.free_port(bind)
      self._reverb_env = listen.preload_env(bind)
    except RuntimeError as e:
      console.say(f'[supervisor] {e}', error=True)
      return 2
    host = '127.0.0.1' if listen.is_wildcard(bind) else bind
    self._address = f'[{host}]:{self._port}' if ':' in host else f'{host}:{self._port}'
    os.makedirs(self.log_dir, exist_ok=True)
    if self._plan is not None:
      console.say(f'[supervisor] plan: {self._plan.describe()}')
    previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
      self._start_reverb()
      learner_flags = self._plan.learner_flags if self._plan else ()
      command = self._command('learner', f'--reverb_address={self._address}', *learner_flags)
      for name, env in zip(self._learners, self._learner_envs(host)):
        self._start(name, command, to_console=name == 'learner', env=env)
      for i in range(len(self._actor_envs)):
        self._start_actor(i)
      if self._config.evaluator:
        self._start_evaluator()
      console.say(f'[supervisor] logs of the other roles: {self.log_dir}')
      return self._watch()
    finally:
      self._shutdown()
      self._join_tees(5.0)
      for s, handler in previous.items():
        signal.signal(s, handler)
      for f in self._logs.values():
        f.close()

  def _learner_envs(self, host):
    """The environment of each learner worker (None: this one's), with TF_CONFIG when there are several."""
    if len(self._learners) == 1:
      return [None]
    ports = [listen.free_port(host) for _ in self._learners]
    return [
        dict(listen.preload_env(host), TF_CONFIG=tf_config) for tf_config in learner_tf_configs(host, ports)
    ]

  def _watch(self) -> int:
    learner = self._procs['learner']
    while True:
      if self._stopping:
        return self._stop_learner()
      code = learner.poll()
      if code is not None:
        self._join_tees()
        console.say(f'[supervisor] learner exited with code {code}')
        return code
      for name in self._learners[1:]:
        code = self._procs[name].poll()
        if code not in (None, 0):  # 0: it stopped with the chief, which follows.
          console.say(
              f'[supervisor] {name} exited with code {code}: stopping the learner (its workers '
              'train only together)'
          )
          self._stopping = True
      self._check_memory()
      for name, proc in list(self._procs.items()):
        if name in self._learners or proc.poll() is None:
          continue
        # A dead actor or server is restarted; the learner keeps training meanwhile.
        if name not in self._restart_at:
          self._schedule_restart(name, proc.returncode)
        elif time.monotonic() >= self._restart_at[name]:
          del self._restart_at[name]
          self._restart(name)
      time.sleep(self._poll_s)

  def _join_tees(self, timeout_s=60.0):
    """Lets the learner's last lines reach the console before the supervisor's own.

    A tee ends at its pipe's EOF, at once after the learner exits; the bound only guards against a pipe
    some other process still holds. 10 s lost the last lines on 2 cores loaded by two test suites.
    """
    for tee in self._tees:
      tee.join(timeout_s)

  def _check_memory(self):
    """Warns below the floor of available memory; stops the run cleanly below the critical floor."""
    now = time.monotonic()
    if now - self._memory_checked_at < self._memory_poll_s:
      return
    self._memory_checked_at = now
    try:
      info = self._meminfo()
      total, available = info['MemTotal'], info['MemAvailable']
    except (OSError, KeyError):
      return
    if available >= placement.FLOOR_FRACTION * total:
      return
    critical = available < placement.CRITICAL_FRACTION * total
    if not critical and now - self._memory_warned_at < MEMORY_WARN_EVERY_S:
      return
    self._memory_warned_at = now
    roles = ', '.join(f'{name} {rss / placement.GIB:.1f}' for name, rss in self._resident().items())
    console.say(
        f'[supervisor] warning: this host has {available / placement.GIB:.1f} GiB of memory '
        f'available ({available / total:.0%} of {total / placement.GIB:.1f} GiB; the floor is '
        f'{placement.FLOOR_FRACTION:.0%}); resident GiB: {roles}. Fewer actor processes '
        f'(--local_actors) or environments (--envs_per_actor) need less.'
    )
    if critical and not self._stopping:
      console.say(
          f'[supervisor] below {placement.CRITICAL_FRACTION:.0%} of memory available: stopping '
          "(learner checkpoints first) before the kernel's OOM killer picks a process"
      )
      self._stopping = True

  def _resident(self) -> dict:
    """{role: resident bytes} of the running children (largest first)."""
    out = {}
    for name, proc in self._procs.items():
      try:
        with open(f'/proc/{proc.pid}/statm', encoding='ascii') as f:
          out[name] = int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
      except (OSError, ValueError, IndexError):
        continue
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))

  def _schedule_restart(self, name, code):
    lived = time.monotonic() - self._started_at[name]
    quick = self._quick_deaths.get(name, 0) + 1 if lived < self._healthy_after_s else 0
    self._quick_deaths[name] = quick
    delay = restart_delay(quick, self._backoff_s, self._max_backoff_s)
    self._restart_at[name] = time.monotonic() + delay
    loop = f'; crash loop: {quick} quick exits in a row' if delay else ''
    console.say(
        f'[supervisor] {name} exited with code {code} after {lived:.1f} s; '
        f'restarting it in {delay:.1f} s{loop}'
    )

  def _restart(self, name):
    self.restarts[name] = self.restarts.get(name, 0) + 1
    console.say(f'[supervisor] restarting {name} (restart {self.restarts[name]})')
    if name == 'reverb':
      self._start_reverb()
    elif name == 'evaluator':
      self._start_evaluator()
    else:
      self._start_actor(int(name.split('-')[1]))

  def _stop_learner(self) -> int:
    """SIGTERM to every learner worker; each checkpoints (only the chief's stays); the chief's exit code."""
    workers = [self._procs[name] for name in self._learners]
    for proc in workers:
      if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + LEARNER_SHUTDOWN_S
    for name, proc in zip(self._learners, workers):
      try:
        proc.wait(max(0.1, deadline - time.monotonic()))
      except subprocess.TimeoutExpired:
        console.say(f'[supervisor] {name} did not stop in time; killing it')
        proc.kill()
        proc.wait()
    self._join_tees()
    return workers[0].returncode

  def _shutdown(self):
    """Stops every child we started (actors before the server), by pid."""
    order = [n for n in self._procs if n.startswith('actor')] + ['evaluator', *self._learners, 'reverb']
    for name in order:
      proc = self._procs.get(name)
      if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + CHILD_SHUTDOWN_S
    for name in order:
      proc = self._procs.get(name)
      if proc is None:
        continue
      try:
        proc.wait(max(0.1, deadline - time.monotonic()))
      except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
