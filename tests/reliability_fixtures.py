"""Helpers of tests/reliability_test.py (and population_test.py): watched training processes, two
'hosts' (network namespaces), and a stand-in role binary.

`Watched` runs a command with its output in a file, timestamps every line as it arrives (a reader
thread), and waits for patterns; pids and learner steps are parsed from the lines.

Run as a script, this file stands in for `launch/train.py` under the supervisor (crash-loop test): it
reads `--role` and, without TensorFlow, plays a role that behaves as told:
  --role=actor     exits with code 1 at once (an actor that crashes right after its start)
  --role=reverb    sleeps until SIGTERM
  --role=learner   sleeps --learner_seconds, then exits 0 (ends the run)
"""

import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

STEP = re.compile(r'^\[learner\] step (\d+) ')
STARTED = re.compile(r'^\[supervisor\] started (\S+) \(pid (\d+)\)')


class Watched:
  """A subprocess whose output lines are kept with their arrival times."""

  def __init__(self, command, log_path, cwd=None, env=None):
    self.lines: list[tuple[float, str]] = []
    self._log = open(log_path, 'w')
    self.proc = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    self._lock = threading.Lock()
    self._reader = threading.Thread(target=self._read, daemon=True)
    self._reader.start()

  def _read(self):
    for line in self.proc.stdout:
      with self._lock:
        self.lines.append((time.monotonic(), line.rstrip('\n')))
      self._log.write(line)
      self._log.flush()

  @property
  def pid(self):
    return self.proc.pid

  def text(self, since: float = 0.0) -> str:
    with self._lock:
      return '\n'.join(line for t, line in self.lines if t >= since)

  def tail(self, n=60) -> str:
    with self._lock:
      return '\n'.join(line for _, line in self.lines[-n:])

  def find(self, pattern, since: float = 0.0):
    """All regex matches (re.Match) in the lines that arrived after `since`."""
    with self._lock:
      lines = [line for t, line in self.lines if t >= since]
    return [m for m in (re.search(pattern, line) for line in lines) if m]

  def wait_for(self, pattern, timeout, since: float = 0.0):
    """The first match of `pattern` after `since`; fails (with the output's tail) after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      found = self.find(pattern, since)
      if found:
        return found[0]
      if self.proc.poll() is not None:
        self._reader.join(5)
        found = self.find(pattern, since)
        if found:
          return found[0]
        raise AssertionError(f'process exited ({self.proc.returncode}) before {pattern!r}:\n{self.tail()}')
      time.sleep(0.2)
    raise AssertionError(f'no {pattern!r} within {timeout} s:\n{self.tail()}')

  def step(self) -> int:
    steps = [int(m.group(1)) for m in self.find(STEP)]
    return max(steps) if steps else 0

  def step_times(self) -> list[tuple[float, int]]:
    with self._lock:
      return [(t, int(m.group(1))) for t, m in ((t, STEP.search(line)) for t, line in self.lines) if m]

  def wait_for_step(self, step, timeout):
    deadline = time.monotonic() + timeout
    while self.step() < step:
      if self.proc.poll() is not None or time.monotonic() > deadline:
        raise AssertionError(f'learner step {self.step()} < {step} (exit {self.proc.poll()}):\n{self.tail()}')
      time.sleep(0.2)
    return self.step()

  def started_pids(self) -> dict[str, list[int]]:
    pids = {}
    for m in self.find(STARTED):
      pids.setdefault(m.group(1), []).append(int(m.group(2)))
    return pids

  def wait(self, timeout):
    try:
      return self.proc.wait(timeout)
    finally:
      self._reader.join(10)

  def kill(self):
    """SIGKILL to the process (only ours, by pid) if it still runs; then reap it."""
    if self.proc.poll() is None:
      self.proc.kill()
    self.proc.wait(30)
    self._reader.join(10)
    self._log.close()


class NoNamespaces(Exception):
  """Network namespaces cannot be made here (the message says why)."""


def ip(*args, check=True):
  return subprocess.run(['ip', *args], capture_output=True, text=True, check=check, timeout=30)


def on_host(ns):
  """The prefix that runs a command on 'host' `ns` (in that network namespace)."""
  return ['ip', 'netns', 'exec', ns]


@contextlib.contextmanager
def two_hosts():
  """Two network namespaces joined by a veth pair: yields ('host' A at 10.231.0.1, 'host' B at 10.231.0.2,
  B's end of the link); raises NoNamespaces if they cannot be made (needs root and iproute2)."""
  tag = f'{os.getpid() % 100000}{random.randrange(100)}'
  a, b = f'spa{tag}', f'spb{tag}'
  if os.geteuid() != 0 or shutil.which('ip') is None:
    raise NoNamespaces('network namespaces need root and iproute2 (`ip`)')
  made = []
  try:
    for ns in (a, b):
      result = ip('netns', 'add', ns, check=False)
      if result.returncode != 0:
        raise NoNamespaces(f'network namespaces unavailable here: ip netns add: {result.stderr.strip()}')
      made.append(ns)
    ip('link', 'add', f'va{tag}', 'type', 'veth', 'peer', 'name', f'vb{tag}')
    for ns, dev, address in ((a, f'va{tag}', '10.231.0.1/24'), (b, f'vb{tag}', '10.231.0.2/24')):
      ip('link', 'set', dev, 'netns', ns)
      ip('-n', ns, 'addr', 'add', address, 'dev', dev)
      ip('-n', ns, 'link', 'set', dev, 'up')
      ip('-n', ns, 'link', 'set', 'lo', 'up')
    yield a, b, f'vb{tag}'
  finally:
    for ns in made:
      ip('netns', 'del', ns, check=False)  # Takes its end of the veth pair (and so the pair) with it.


def alive(pid: int, marker: str) -> bool:
  """Whether `pid` is a live process whose command line contains `marker` (guards against pid reuse)."""
  try:
    with open(f'/proc/{pid}/cmdline', 'rb') as f:
      cmdline = f.read().decode(errors='replace')
    with open(f'/proc/{pid}/stat') as f:
      state = f.read().rsplit(')', 1)[1].split()[0]
  except (FileNotFoundError, ProcessLookupError, IndexError):
    return False
  return marker in cmdline and state != 'Z'


def _stand_in(argv):
  options = dict(a[2:].split('=', 1) for a in argv if a.startswith('--') and '=' in a)
  role = options.get('role')
  if role == 'actor':
    return 1
  if role == 'reverb':
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
      time.sleep(1)
  if role == 'learner':
    time.sleep(float(options.get('learner_seconds', '5')))
    return 0
  return 2


if __name__ == '__main__':
  sys.exit(_stand_in(sys.argv[1:]))
