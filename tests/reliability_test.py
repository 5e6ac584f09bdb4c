"""Reliability with real processes and a real Reverb server (`launch/train.py`, configs/smoke.cfg).

One shared run (the `run` fixture) goes through the faults in order and records what happened:
  1. --role=all trains; one actor is SIGKILLed mid-episode: the supervisor restarts it, the learner keeps
     training (no stall > 30 s);
  2. the Reverb server is SIGKILLed: the supervisor restarts it (empty), learner and actors reconnect in
     place (no process but the server dies);
  3. Ctrl-C (SIGINT) to the supervisor: final checkpoint, every process it started has exited;
  4. a restart resumes (step, frames, optimizers, D, TensorBoard steps); then a poisoned batch (the
     SPIRAL_TEST_NONFINITE_FILE hook multiplies the real images by NaN inside the real update) gives
     non-finite updates: each is skipped and logged, the third in a row stops the run with exit code 3 and a
     finite checkpoint whose counters show that the skipped updates left no trace.
Separately: crash-loop backoff of the supervisor (stand-in roles, tests/reliability_fixtures.py), the
non-finite guard against a NumPy copy of the weights, actors in another network namespace with a link cut,
and configuration errors refused before any process starts.
"""

import glob
import os
import pathlib
import random
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator
import tensorflow as tf

import reliability_fixtures as rf
from spiral_tf import config as config_lib
from spiral_tf.distributed import listen
from spiral_tf.distributed import supervisor as supervisor_lib
from spiral_tf.learning import nonfinite

ROOT = pathlib.Path(__file__).resolve().parent.parent
TRAIN = [sys.executable, str(ROOT / 'launch' / 'train.py'), '--flagfile=configs/smoke.cfg']
FRAMES_PER_STEP = 8 * 4  # smoke.cfg: batch 8, episode_length 5.
MAX_NONFINITE = 3
START_S = 240  # Start-up under load (TensorFlow in 4 processes on 2 cores).


def _scalar_events(root_dir, tag):
  """[(wall_time, step, value)] of `tag` from every event file of the run, in file order."""
  events = []
  for path in sorted(glob.glob(os.path.join(root_dir, 'tensorboard', 'learner', 'events.*'))):
    acc = event_accumulator.EventAccumulator(path, size_guidance={'tensors': 0})
    acc.Reload()
    if tag in acc.Tags()['tensors']:
      events += [(e.wall_time, e.step, float(tf.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]
  return events


def _checkpoint(root, step):
  return tf.train.load_checkpoint(str(root / 'checkpoints' / f'ckpt-{step}'))


def _value(reader, name):
  return reader.get_tensor(f'{name}/.ATTRIBUTES/VARIABLE_VALUE')


class Record(dict):
  __getattr__ = dict.__getitem__


@pytest.fixture(scope='module')
def run(tmp_path_factory):
  """The shared run (module docstring, steps 1–4); returns what the tests check."""
  tmp = tmp_path_factory.mktemp('reliability')
  root = tmp / 'run'
  flags = [
      f'--root_dir={root}',
      '--log_every_seconds=0',
      '--max_learner_steps=100000',
      '--max_minutes=10',
      '--checkpoint_every_minutes=60',
      f'--max_nonfinite_updates={MAX_NONFINITE}',
  ]
  r = Record(root=root)
  first = rf.Watched(TRAIN + flags, tmp / 'first.log', cwd=ROOT)
  try:
    # 1. Actor death.
    first.wait_for_step(3, START_S)
    # Who listens where: every process the supervisor started, and the supervisor.
    r.listening = {name: listen.listening_sockets(pids[0]) for name, pids in first.started_pids().items()}
    r.listening['supervisor'] = listen.listening_sockets(first.pid)
    r.reverb_log = (root / 'logs' / 'reverb.log').read_text()
    actor_pid = first.started_pids()['actor-0'][0]
    r.step_at_actor_kill, r.actor_kill_time = first.step(), time.monotonic()
    os.kill(actor_pid, signal.SIGKILL)
    first.wait_for(r'\[supervisor\] restarting actor-0', 30, since=r.actor_kill_time)
    first.wait_for_step(r.step_at_actor_kill + 4, 60)
    r.actor_log = root / 'logs' / 'actor-0.log'
    deadline = time.monotonic() + 120  # The restarted actor acts (its second start line in its log).
    while r.actor_log.read_text().count('[actor 0] ') < 2 and time.monotonic() < deadline:
      time.sleep(0.5)
    r.actor_pids = first.started_pids()['actor-0']
    r.actor_restart_steps = first.step()
    # 2. Reverb server death.
    reverb_pid = first.started_pids()['reverb'][0]
    r.step_at_reverb_kill, r.reverb_kill_time = first.step(), time.monotonic()
    os.kill(reverb_pid, signal.SIGKILL)
    first.wait_for(r'\[supervisor\] restarting reverb', 30, since=r.reverb_kill_time)
    # More steps than the queue, in-flight samples and prefetch hold: new episodes reached the new server.
    first.wait_for_step(r.step_at_reverb_kill + 6, 180)
    # 3. Ctrl-C.
    r.pids = first.started_pids()
    r.sigint_time = time.monotonic()
    first.proc.send_signal(signal.SIGINT)
    r.first_code = first.wait(240)
    r.first_output = first.text()
    r.first_steps = first.step_times()
    r.stopped_step = int(re.search(r'stopped: stop requested\. Step (\d+)', r.first_output).group(1))
    r.stopped_checkpoint = _checkpoint(root, r.stopped_step)
  finally:
    first.kill()
  # 4. Resume, then non-finite updates.
  poison = tmp / 'poison'
  env = dict(os.environ, **{'SPIRAL_TEST_NONFINITE_FILE': str(poison)})
  second = rf.Watched(TRAIN + flags, tmp / 'second.log', cwd=ROOT, env=env)
  try:
    second.wait_for_step(r.stopped_step + 3, START_S)
    r.step_at_poison = second.step()
    poison.touch()
    r.second_code = second.wait(240)
    r.second_output = second.text()
    r.second_pids = second.started_pids()
  finally:
    second.kill()
  m = re.search(r'stopped: --max_nonfinite_updates.*Step (\d+), frames (\d+)\.', r.second_output)
  assert m, r.second_output[-3000:]
  r.final_step, r.final_frames = int(m.group(1)), int(m.group(2))
  return r


def test_by_default_only_reverb_listens_and_only_on_loopback(run):
  port = int(re.search(r'\[reverb\] serving on 127\.0\.0\.1, port (\d+)', run.reverb_log).group(1))
  assert run.listening.pop('reverb') == {('127.0.0.1', port)}
  assert run.listening == {'learner': set(), 'actor-0': set(), 'actor-1': set(), 'supervisor': set()}


def test_bind_shim_narrows_wildcard_binds_only(tmp_path):
  """The LD_PRELOAD library on plain sockets: wildcard binds narrowed, explicit ones untouched."""
  probe = (
      'import socket\n'
      'for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::"), '
      '(socket.AF_INET, "127.0.0.2")):\n'
      '  s = socket.socket(family)\n'
      '  try: s.bind((host, 0)); print(s.getsockname()[0])\n'
      '  except OSError: print("refused")\n'
  )

  def bound(address):
    env = listen.preload_env(address)
    return subprocess.run(
        [sys.executable, '-c', probe], env=env, capture_output=True, text=True, check=True, timeout=30
    ).stdout.split()

  assert bound('127.0.0.1') == ['127.0.0.1', '::ffff:127.0.0.1', '127.0.0.2']
  assert bound('0.0.0.0') == ['0.0.0.0', '::', '127.0.0.2']  # Wildcard: no shim at all.
  assert 'LD_PRELOAD' not in listen.preload_env('0.0.0.0', environ={})
  assert bound('::1') == ['refused', '::1', '127.0.0.2']  # An IPv4 socket cannot serve ::1: no widening.


def test_reverb_role_alone_picks_a_port_on_loopback_only(tmp_path):
  """`--role=reverb` by hand (no supervisor: it preloads the shim by re-executing itself), port 0."""
  server = rf.Watched(
      TRAIN + [f'--root_dir={tmp_path / "run"}', '--role=reverb'], tmp_path / 'reverb.log', cwd=ROOT
  )
  try:
    port = int(server.wait_for(r'\[reverb\] serving on 127\.0\.0\.1, port (\d+)', START_S).group(1))
    assert port != 0
    assert listen.listening_sockets(server.pid) == {('127.0.0.1', port)}
    with open(f'/proc/{server.pid}/environ', 'rb') as f:  # The same process, re-executed with the shim.
      assert f'{listen.ADDRESS_ENV}=127.0.0.1'.encode() in f.read().split(b'\0')
    socket.create_connection(('127.0.0.1', port), timeout=5).close()
    server.proc.send_signal(signal.SIGTERM)
    assert server.wait(60) == 0, server.tail()
  finally:
    server.kill()


def test_bind_address_of_another_host_is_refused_before_any_process(tmp_path):
  command = TRAIN + [f'--root_dir={tmp_path / "run"}', '--reverb_bind_address=192.0.2.1']  # TEST-NET-1.
  result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
  assert result.returncode == 2, result.stderr[-2000:]
  assert '--reverb_bind_address=192.0.2.1 cannot be listened on here' in result.stderr
  assert '[supervisor] started' not in result.stdout
  assert not (tmp_path / 'run').exists()


def test_actor_sigkill_is_restarted_and_learner_keeps_training(run):
  out = run.first_output
  assert re.search(r'\[supervisor\] actor-0 exited with code -9 after [\d.]+ s; restarting it in', out)
  assert len(run.actor_pids) == 2 and run.actor_pids[0] != run.actor_pids[1]
  assert run.actor_log.read_text().count('[actor 0] ') >= 2, 'the restarted actor never acted'
  # The learner trained on (actor-1 alone) while actor-0 restarted, and never waited 30 s for a batch.
  window = [(t, s) for t, s in run.first_steps if run.actor_kill_time - 5 <= t <= run.reverb_kill_time]
  assert window[-1][1] >= run.step_at_actor_kill + 4
  gaps = np.diff([t for t, _ in window])
  assert gaps.max() < 30, f'learner stalled {gaps.max():.0f} s after an actor died'
  assert 'no episodes from the actors' not in out[out.index('restarting actor-0') :]
  # Only the killed actor died: the learner and the other actor are the first ones.
  assert len(run.pids['learner']) == 1 and len(run.pids['actor-1']) == 1


def test_reverb_restart_learner_and_actors_reconnect(run):
  out = run.first_output
  after = out[out.index('[supervisor] reverb exited') :]
  assert re.search(r'\[supervisor\] reverb exited with code -9', after)
  assert len(run.pids['reverb']) == 2
  # Nobody else died (actors reconnect in place; see README, Operations) and the learner went on.
  assert not re.search(r'\[supervisor\] (actor-\d|learner) exited', after)
  assert max(s for _, s in run.first_steps) >= run.step_at_reverb_kill + 6


def test_ctrl_c_checkpoints_and_stops_every_process(run):
  assert run.first_code == 0, run.first_output[-3000:]
  assert 'SIGINT: stopping (learner checkpoints first)' in run.first_output
  assert f'checkpoint: {run.root}/checkpoints/ckpt-{run.stopped_step}' in run.first_output
  assert _value(run.stopped_checkpoint, 'learner_step') == run.stopped_step
  everyone = [pid for pids in run.pids.values() for pid in pids]
  assert len(everyone) == 6  # reverb ×2, learner, actor-0 ×2, actor-1.
  assert [pid for pid in everyone if rf.alive(pid, 'train.py')] == []


def test_restart_resumes_counters_optimizers_d_and_tensorboard(run):
  s, out = run.stopped_step, run.second_output
  assert re.search(rf'resumed from .*ckpt-{s}: step {s}, frames {s * FRAMES_PER_STEP}', out)
  final = _checkpoint(run.root, run.final_step)
  assert run.final_step > s and run.final_frames == run.final_step * FRAMES_PER_STEP
  assert _value(final, 'learner_step') == run.final_step
  assert _value(final, 'frames') == run.final_step * FRAMES_PER_STEP
  for optimizer in ('policy_optimizer', 'd_optimizer'):  # Adam continued; skipped updates left no count.
    assert _value(final, f'{optimizer}/_iterations') == run.final_step
  # Policy and D weights continue from the stopped run: moved, by small Adam steps.
  for prefix in ('agent/', 'discriminator/'):
    names = [
        n
        for n in run.stopped_checkpoint.get_variable_to_shape_map()
        if n.startswith(prefix) and n.endswith('VARIABLE_VALUE') and 'optimizer' not in n
    ]
    assert names, prefix
    moved = [np.abs(final.get_tensor(n) - run.stopped_checkpoint.get_tensor(n)).max() for n in names]
    assert max(moved) > 0 and np.median(moved) < 0.1, (prefix, np.median(moved))
  # One TensorBoard curve across both runs: every step once, none missing.
  steps = [step for _, step, _ in _scalar_events(run.root, 'policy_loss')]
  assert sorted(steps) == list(range(1, run.final_step + 1))
  frames = dict((step, v) for _, step, v in _scalar_events(run.root, 'frames_per_s'))
  assert min(frames) == 1 and max(frames) == run.final_step


def test_nonfinite_updates_are_skipped_then_stop_with_good_checkpoint(run):
  out = run.second_output
  # The supervisor passes on the learner's exit code 3: stopped by non-finite updates.
  assert run.second_code == 3, out[-3000:]
  assert '[supervisor] learner exited with code 3' in out
  skipped = re.findall(r'skipped a non-finite update at step (\d+) \(non-finite: ([^)]*)\)', out)
  assert len(skipped) == MAX_NONFINITE
  assert {int(step) for step, _ in skipped} == {run.final_step}  # The step did not advance.
  assert all('d_loss' in names for _, names in skipped)
  assert f'{MAX_NONFINITE} non-finite updates in a row' in out
  final = _checkpoint(run.root, run.final_step)
  for name in final.get_variable_to_shape_map():
    value = final.get_tensor(name)
    if np.issubdtype(np.asarray(value).dtype, np.floating):
      assert np.isfinite(value).all(), name
  # The checkpoint from before the resume is still there and unchanged.
  before = _checkpoint(run.root, run.stopped_step)
  for name in before.get_variable_to_shape_map():
    np.testing.assert_array_equal(before.get_tensor(name), run.stopped_checkpoint.get_tensor(name))
  skipped_tb = _scalar_events(run.root, 'nonfinite_updates_skipped')
  assert [v for _, _, v in skipped_tb] == [1.0, 2.0, 3.0]
  assert all(not rf.alive(pid, 'train.py') for pids in run.second_pids.values() for pid in pids)


# --- supervisor: crash-loop backoff ------------------------------------------------------------------------


def test_restart_delay_doubles_for_quick_deaths_up_to_the_cap():
  delays = [supervisor_lib.restart_delay(n, backoff_s=5, max_backoff_s=30) for n in range(0, 7)]
  assert delays == [0, 0, 5, 10, 20, 30, 30]


def test_crash_looping_actor_is_restarted_with_growing_delays(tmp_path, capsys):
  """Real supervisor, stand-in roles: the actor exits at once, every time, for 9 s."""
  config = config_lib.Config(root_dir=str(tmp_path), num_actors=1)
  sup = supervisor_lib.Supervisor(
      str(ROOT / 'tests' / 'reliability_fixtures.py'),
      ['--learner_seconds=9'],
      config,
      poll_s=0.05,
      healthy_after_s=5,
      backoff_s=0.5,
      max_backoff_s=2,
  )
  assert sup.run() == 0
  out = capsys.readouterr().out
  delays = [
      float(d)
      for d in re.findall(r'actor-0 exited with code 1 after [\d.]+ s; restarting it in ' r'([\d.]+) s', out)
  ]
  assert delays[:5] == [0.0, 0.5, 1.0, 2.0, 2.0], out
  assert 'crash loop: 4 quick exits in a row' in out
  # Without backoff a 50 ms poll would restart it ~100 times in 9 s; with it, 0+0.5+1+2+2+2 s → ≤ 8.
  starts = len(re.findall(r'started actor-0', out))
  assert 5 <= starts <= 8, out
  assert 'restarting reverb' not in out  # The healthy server was left alone.


# --- non-finite guard ------------------------------------------------------------------------------------


def test_guard_restores_weights_and_optimizer_after_a_nan_update():
  """A real learner update on a NaN batch: everything is as before it (checked against NumPy copies)."""
  import network_fixtures as nf  # pylint: disable=g-import-not-at-top
  from spiral_tf.learning import learner_step  # pylint: disable=g-import-not-at-top
  from spiral_tf.networks import agent as agent_lib  # pylint: disable=g-import-not-at-top
  from spiral_tf.networks import discriminator as d_lib  # pylint: disable=g-import-not-at-top

  action_spec, obs_spec = nf.painter_specs(grid=8, width=16, conditional=True)
  agent = agent_lib.Agent(action_spec, obs_spec, size=nf.MICRO, conditional=True)
  d = d_lib.Discriminator(channels=nf.MICRO_D, input_shape=[16, 16, 2])
  episodes = nf.sampled_episodes(agent, action_spec, obs_spec, 2, 3, seed=5)
  real = np.random.default_rng(6).uniform(size=(2, 16, 16, 1)).astype(np.float32)
  learner = learner_step.LearnerUpdate(
      agent, d, config_lib.LearnerConfig(), conditional=True, jit_compile=False
  )
  variables = [
      *agent.variables,
      *d.variables,
      *learner.policy_optimizer.variables,
      *learner.d_optimizer.variables,
      *learner.normaliser.variables,
  ]
  guard = nonfinite.NonFiniteGuard(variables, max_in_a_row=2)
  # D's fakes with NaN canvases (a conditional D's real pairs are the fakes' targets, so NaN must come in
  # through the fakes).
  finals = {k: episodes['observation'][k][:, -1] for k in ('canvas', 'target')}
  poisoned = dict(finals, canvas=finals['canvas'] * np.float32('nan'))

  guard.snapshot()
  assert guard.accept(learner.step(episodes, real))  # A good update is kept...
  good = [v.numpy().copy() for v in variables]
  assert int(learner.num_updates) == 1
  for attempt in (1, 2):
    guard.snapshot()
    metrics = learner.step(episodes, real, poisoned)
    assert not np.isfinite(metrics['d_loss'].numpy())
    assert not guard.accept(metrics)  # ...a NaN one is undone, Adam's moments and step count included.
    for v, before in zip(variables, good):
      np.testing.assert_array_equal(v.numpy(), before, err_msg=v.name)
    assert guard.in_a_row == attempt and guard.exhausted == (attempt == 2)
  assert 'd_loss' in guard.bad_metrics(metrics) and 'policy_loss' not in guard.bad_metrics(metrics)
  guard.snapshot()
  assert guard.accept(learner.step(episodes, real)) and guard.in_a_row == 0 and guard.skipped == 2
  assert int(learner.num_updates) == 2


def test_guard_catches_non_finite_weights_behind_finite_metrics():
  v = tf.Variable([1.0, 2.0])
  guard = nonfinite.NonFiniteGuard([v], max_in_a_row=1)
  guard.snapshot()
  v.assign([np.inf, 0.0])
  assert not guard.accept({'loss': tf.constant(0.5)})
  np.testing.assert_array_equal(v.numpy(), [1.0, 2.0])
  with pytest.raises(ValueError, match='max_in_a_row=0'):
    nonfinite.NonFiniteGuard([v], max_in_a_row=0)


# --- actors on another host (network namespaces) ------------------------------------------------------------


@pytest.fixture
def two_hosts():
  """Two network namespaces joined by a veth pair (reliability_fixtures.two_hosts)."""
  try:
    with rf.two_hosts() as hosts:
      yield hosts
  except rf.NoNamespaces as e:
    pytest.skip(str(e))


def _reachable(ns, host, port):
  probe = f'import socket; socket.create_connection(("{host}", {port}), timeout=1.5)'
  return (
      subprocess.run(
          ['ip', 'netns', 'exec', ns, sys.executable, '-c', probe], capture_output=True, timeout=30
      ).returncode
      == 0
  )


def test_actor_on_another_host_survives_a_link_cut(two_hosts, tmp_path):
  """Reverb + learner on host A, the only actor on host B; the link goes down for 6 s and comes back."""
  a, b, b_dev = two_hosts
  port = random.randrange(20000, 60000)
  root = tmp_path / 'run'
  common = TRAIN + [
      f'--root_dir={root}',
      '--log_every_seconds=0',
      '--max_learner_steps=100000',
      '--max_minutes=10',
  ]
  procs = []
  try:
    # Reverb listens on host A's link address only (not on its loopback, not everywhere).
    reverb = rf.Watched(
        rf.on_host(a)
        + common
        + ['--role=reverb', f'--reverb_port={port}', '--reverb_bind_address=10.231.0.1'],
        tmp_path / 'reverb.log',
        cwd=ROOT,
    )
    procs.append(reverb)
    learner = rf.Watched(
        rf.on_host(a) + common + ['--role=learner', f'--reverb_address=10.231.0.1:{port}'],
        tmp_path / 'learner.log',
        cwd=ROOT,
    )
    procs.append(learner)
    actor = rf.Watched(
        rf.on_host(b) + common + ['--role=actor', '--task=0', f'--reverb_address=10.231.0.1:{port}'],
        tmp_path / 'actor.log',
        cwd=ROOT,
    )
    procs.append(actor)
    learner.wait_for_step(3, START_S)
    assert listen.listening_sockets(reverb.pid) == {('10.231.0.1', port)}
    assert _reachable(b, '10.231.0.1', port)
    rf.ip('-n', b, 'link', 'set', b_dev, 'down')
    cut = time.monotonic()
    assert not _reachable(b, '10.231.0.1', port)  # Host B really is cut off.
    time.sleep(max(0.0, 6 - (time.monotonic() - cut)))
    rf.ip('-n', b, 'link', 'set', b_dev, 'up')
    restored_step = learner.step()
    # More steps than the queue, in-flight samples and prefetch can hold: fed by the actor after the cut.
    learner.wait_for_step(restored_step + 6, 180)
    assert actor.proc.poll() is None and reverb.proc.poll() is None
    # Learner SIGTERM: final checkpoint, exit 0.
    learner.proc.send_signal(signal.SIGTERM)
    assert learner.wait(180) == 0, learner.tail()
    stopped = int(learner.wait_for(r'stopped: stop requested\. Step (\d+)', 5).group(1))
    assert stopped >= restored_step + 6
    assert (root / 'checkpoints' / f'ckpt-{stopped}.index').exists()
    for proc in (actor, reverb):
      proc.proc.send_signal(signal.SIGTERM)
      proc.wait(60)
    assert all(p.proc.poll() is not None for p in procs)
  finally:
    for proc in procs:
      proc.kill()


# --- bad configuration -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    'flags, named',
    [
        (['--reverb_address=localhost'], '--reverb_address'),
        (['--reverb_address=localhost:99999'], '--reverb_address'),
        (['--reverb_port=70000'], '--reverb_port'),
        (['--max_nonfinite_updates=0'], '--max_nonfinite_updates'),
        (['--reverb_bind_address=myhost'], '--reverb_bind_address'),
        (['--root_dir=/etc/hostname/run'], '--root_dir'),
        (['--policy_learning_rate=nan'], '--policy_learning_rate'),
    ],
)
def test_bad_configuration_is_refused_before_any_process(tmp_path, flags, named):
  command = TRAIN + [f'--root_dir={tmp_path / "run"}', *flags]
  result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
  assert result.returncode == 2, result.stderr[-2000:]
  assert f'configuration error: {named}' in result.stderr
  assert '[supervisor] started' not in result.stdout
  assert not (tmp_path / 'run').exists()


def test_root_dir_that_is_a_file_is_named(tmp_path):
  blocker = tmp_path / 'file'
  blocker.write_text('x')
  with pytest.raises(config_lib.ConfigError, match='--root_dir: .* exists and is not a directory'):
    config_lib.validate(config_lib.Config(root_dir=str(blocker)))
  assert config_lib.validate(config_lib.Config(root_dir=str(tmp_path / 'new' / 'run'))).root_dir
  assert not (tmp_path / 'new').exists()  # Validation creates nothing.
