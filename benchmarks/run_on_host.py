r"""A training config as a new user starts it (`launch/train.py --flagfile=F`, `--role=all`), watched.

Starts the run, samples the memory of its whole process tree every `--sample_s` seconds (resident and
proportional set sizes of the supervisor and every descendant, /proc/<pid>/smaps_rollup; and the host's
MemAvailable), reads its console, and after `--seconds` sends it SIGINT (Ctrl-C) and waits for it to stop.
Reports the time to the first console line after the supervisor's own start-up lines, to the first learner
step, the peak memory (of the run, and of each role), the learner's busy fraction and frames/s (its last
progress line, and frames over the time since its first step), how long the Ctrl-C stop took and the exit
code. Nothing here changes the run: it is the same command a user types.

  .venv/bin/python benchmarks/run_on_host.py --config=configs/celeba.cfg --seconds=180 \
      --data_dir=../shared/data --root_dir=/tmp/celeba --out=/tmp/celeba.json

The last printed line is one JSON object. Not part of `run_all.py` (minutes per config).
"""

import argparse
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
STARTED = re.compile(r'^\[supervisor\] started (\S+) \(pid (\d+)\)')
STEP = re.compile(r'^\[learner\] step (\d+)  frames ([\d,]+)  (\d+) frames/s.*?(?:busy ([\d.]+))?$')


def _children():
  """{ppid: [pid]} of every process on the host."""
  out = {}
  for entry in os.listdir('/proc'):
    if not entry.isdigit():
      continue
    try:
      with open(f'/proc/{entry}/stat', encoding='ascii', errors='replace') as f:
        ppid = int(f.read().rsplit(')', 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
      continue
    out.setdefault(ppid, []).append(int(entry))
  return out


def tree(pid):
  """pid and all its descendants."""
  children, todo, seen = _children(), [pid], []
  while todo:
    p = todo.pop()
    seen.append(p)
    todo += children.get(p, [])
  return seen


def memory(pid):
  """(rss, pss) bytes of one process, or None if it is gone."""
  try:
    with open(f'/proc/{pid}/smaps_rollup', encoding='ascii') as f:
      fields = dict(line.split(':', 1) for line in f if ':' in line and not line.startswith(' '))
  except OSError:
    return None
  kb = lambda name: int(fields.get(name, '0 kB').split()[0]) * 1024
  return kb('Rss'), kb('Pss')


def cpu_seconds(pid):
  """User + system CPU seconds a process has used so far (0 if it is gone)."""
  try:
    with open(f'/proc/{pid}/stat', encoding='ascii', errors='replace') as f:
      fields = f.read().rsplit(')', 1)[1].split()
  except OSError:
    return 0.0
  return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def mem_available():
  with open('/proc/meminfo', encoding='ascii') as f:
    for line in f:
      if line.startswith('MemAvailable:'):
        return int(line.split()[1]) * 1024
  return 0


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  parser.add_argument('--config', required=True)
  parser.add_argument('--seconds', type=float, default=180)
  parser.add_argument('--sample_s', type=float, default=3.0)
  parser.add_argument('--stop_timeout_s', type=float, default=300)
  parser.add_argument('--out', default=None, help='Also write the JSON here, and the console to OUT.log.')
  args, train_flags = parser.parse_known_args()
  command = [sys.executable, str(ROOT / 'launch' / 'train.py'), f'--flagfile={args.config}', *train_flags]
  lines, roles = [], {}
  start = time.monotonic()
  proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

  def read():
    for line in proc.stdout:
      line = line.rstrip('\n')
      lines.append((time.monotonic() - start, line))
      m = STARTED.match(line)
      if m:
        roles[int(m.group(2))] = m.group(1).split('-')[0]  # actor-3 → actor

  reader = threading.Thread(target=read, daemon=True)
  reader.start()
  peak = {'rss': 0, 'pss': 0}
  peak_role_pss, min_available, samples = {}, mem_available(), 0
  cpu = {}  # pid → latest CPU seconds
  available_at_start = min_available
  stop_sent = None
  while proc.poll() is None:
    now = time.monotonic() - start
    if stop_sent is None and now >= args.seconds:
      proc.send_signal(signal.SIGINT)
      stop_sent = now
    if stop_sent is not None and now - stop_sent > args.stop_timeout_s:
      proc.kill()
      break
    rss = pss = 0
    per_role = {}
    for pid in tree(proc.pid):
      m = memory(pid)
      if m is None:
        continue
      rss, pss = rss + m[0], pss + m[1]
      cpu[pid] = max(cpu.get(pid, 0.0), cpu_seconds(pid))
      role = roles.get(pid, 'supervisor' if pid == proc.pid else 'other')
      per_role[role] = per_role.get(role, 0) + m[1]
    for role, value in per_role.items():
      peak_role_pss[role] = max(peak_role_pss.get(role, 0), value)
    peak['rss'], peak['pss'] = max(peak['rss'], rss), max(peak['pss'], pss)
    min_available = min(min_available, mem_available())
    samples += 1
    time.sleep(args.sample_s)
  code = proc.wait()
  end = time.monotonic() - start
  reader.join(10)
  text = [line for _, line in lines]
  own = [(t, line) for t, line in lines if not line.startswith('[supervisor] ')]
  steps = [(t, STEP.match(line)) for t, line in lines if STEP.match(line)]
  first_step_s = steps[0][0] if steps else None
  result = {
      'config': args.config,
      'flags': train_flags,
      'seconds': args.seconds,
      'plan': [line for line in text if line.startswith('[supervisor] plan') or 'actor process' in line][:3],
      'first_line_after_supervisor_s': own[0][0] if own else None,
      'first_line': own[0][1] if own else None,
      'first_learner_step_s': first_step_s,
      'learner_steps': int(steps[-1][1].group(1)) if steps else 0,
      'frames': int(steps[-1][1].group(2).replace(',', '')) if steps else 0,
      'last_frames_per_s': float(steps[-1][1].group(3)) if steps else None,
      'last_busy': float(steps[-1][1].group(4)) if steps and steps[-1][1].group(4) else None,
      'peak_rss_gib': peak['rss'] / 2**30,
      'peak_pss_gib': peak['pss'] / 2**30,
      'peak_pss_gib_by_role': {k: round(v / 2**30, 3) for k, v in sorted(peak_role_pss.items())},
      'mem_available_start_gib': available_at_start / 2**30,
      'mem_available_min_gib': min_available / 2**30,
      'samples': samples,
      'stop_s': None if stop_sent is None else end - stop_sent,
      'exit_code': code,
      'console_lines': len(text),
      # CPU the run got (sampled; the last few seconds of each process are missed): cores on average.
      'cpu_cores_used': sum(cpu.values()) / max(end, 1e-9),
      'cpu_cores_used_by_role': {
          role: round(
              sum(
                  v
                  for pid, v in cpu.items()
                  if roles.get(pid, 'supervisor' if pid == proc.pid else 'other') == role
              )
              / end,
              3,
          )
          for role in sorted(set(roles.values()) | {'supervisor'})
      },
      'load_average_end': os.getloadavg()[0],
  }
  if len(steps) >= 2:
    (t0, m0), (t1, m1) = steps[0], steps[-1]
    frames = int(m1.group(2).replace(',', '')) - int(m0.group(2).replace(',', ''))
    result['frames_per_s_since_first_step'] = frames / max(t1 - t0, 1e-9)
  if args.out:
    pathlib.Path(args.out).write_text(json.dumps(result, indent=1) + '\n')
    pathlib.Path(args.out + '.log').write_text(''.join(f'{t:7.1f} {line}\n' for t, line in lines))
  print(json.dumps(result))


if __name__ == '__main__':
  main()
