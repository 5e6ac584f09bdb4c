"""The multi-worker learner: two real MultiWorkerMirroredStrategy workers on loopback, and its pure parts.

* Two worker processes (tests/multi_worker_fixtures.py) train the real update on their halves of a fixed
  global batch: both take part (2 workers × 1 CPU = 2 replicas), their weights are equal to each other
  and to one worker's on the whole batch, one worker's stop vote stops both at the same step, and the
  chief's value reaches both.
* One real run, `launch/train.py --role=all --strategy=multi_worker --num_learner_workers=2` (smoke
  config, one actor): both workers train and listen on loopback only; SIGTERM to the non-chief stops both
  at the same step with one checkpoint, written by the chief, who alone wrote to the run directory; the
  same command resumes both from it, both survive a Reverb restart, and SIGTERM to the supervisor stops
  both at the same step. The learners run the compiled update, as a real run does.
* `Workers` in one process (one worker: no collective), TF_CONFIG generation and its listen address.
"""

import json
import os
import pathlib
import pickle
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

import multi_worker_fixtures as mwf
import reliability_fixtures as rf
from spiral_tf import config as config_lib
from spiral_tf.distributed import listen
from spiral_tf.distributed import placement
from spiral_tf.distributed import supervisor as supervisor_lib
from spiral_tf.learning import strategy as strategy_lib

ROOT = pathlib.Path(__file__).resolve().parent.parent
STEPS = 3  # The stop vote comes after mwf.STOP_AFTER (2) steps, before the third.
# Float32 sums in another order (a 2-way all-reduce of half-batch gradients against one whole-batch sum;
# convolutions over 2 examples against 4) differ by a few ulps, and Adam divides by √v: an element whose
# gradient is near 0 can move by up to ≈ lr (1e-3) per step whichever its sign. Measured on two problems
# (2026-12-02): median difference 3e-8 and 4e-7, at most 9e-5 and 3e-5, 99.99 % within 1e-5, while the
# updates moved the weights by a median 1.2e-3 and 2.4e-4.
CLOSE, MOST = 1e-5, 0.999  # At least MOST of the elements agree within CLOSE,
TYPICAL = 0.01  # the median difference is below 1 % of the median movement,
ATOL_MAX = 2 * 1e-3 * mwf.STOP_AFTER  # and none differs by more than the Adam bound of 2 steps.
WORKER_TIMEOUT_S = 300  # Two TensorFlow processes starting together on 2 loaded cores.
TRAIN = [
    sys.executable,
    str(ROOT / 'launch' / 'train.py'),
    '--flagfile=configs/smoke.cfg',
    '--strategy=multi_worker',
    '--num_learner_workers=2',
    '--num_actors=1',
    '--envs_per_actor=4',
    '--max_learner_steps=100000',
    '--max_minutes=0',
    '--checkpoint_every_minutes=60',
    '--log_every_seconds=0',
]
START_S = 400  # Four TensorFlow processes starting on 2 loaded cores.
STOPPED = re.compile(r'\[learner\] stopped: (.*)\. Step (\d+), frames')
RESUMED = re.compile(r'\[learner\] resumed from \S+: step (\d+),')


class Record(dict):
  __getattr__ = dict.__getitem__


def _worker_log(root, since=0):
  """The non-chief worker's output (its log under the run, written by the supervisor) from offset `since`."""
  return (root / 'logs' / 'learner-1.log').read_text(errors='replace')[since:]


def _run_files(root):
  return sorted(str(p.relative_to(root)) for p in root.rglob('*'))


@pytest.fixture(scope='module')
def two_worker_run(tmp_path_factory):
  tmp = tmp_path_factory.mktemp('two_worker_run')
  root = tmp / 'run'
  r = Record(root=root)
  first = rf.Watched(TRAIN + [f'--root_dir={root}'], tmp / 'first.log', cwd=ROOT)
  try:
    first.wait_for_step(1, START_S)  # One update: the chief's all-reduce needed the other worker.
    pids = first.started_pids()
    r.listening = {name: listen.listening_sockets(pids[name][0]) for name in ('learner', 'learner-1')}
    os.kill(pids['learner-1'][0], signal.SIGTERM)  # The non-chief worker alone.
    r.first_code = first.wait(240)
    r.first_output = first.text()
  finally:
    first.kill()
  r.first_worker_log = _worker_log(root)
  r.files_after_first = _run_files(root)
  offset = len((root / 'logs' / 'learner-1.log').read_text(errors='replace'))
  second = rf.Watched(TRAIN + [f'--root_dir={root}'], tmp / 'second.log', cwd=ROOT)
  try:
    m = second.wait_for(RESUMED.pattern, START_S)
    r.resumed_step = int(m.group(1))
    second.wait_for_step(r.resumed_step + 1, 240)
    r.step_at_reverb_kill, kill_time = second.step(), time.monotonic()
    os.kill(second.started_pids()['reverb'][0], signal.SIGKILL)
    second.wait_for(r'\[supervisor\] restarting reverb', 60, since=kill_time)
    # Past the batches each worker held or had in flight: these came through the restarted server.
    second.wait_for_step(r.step_at_reverb_kill + 3, 300)
    second.proc.send_signal(signal.SIGTERM)  # The supervisor.
    r.second_code = second.wait(240)
    r.second_output = second.text()
  finally:
    second.kill()
  r.second_worker_log = _worker_log(root, offset)
  return r


@pytest.fixture(scope='module')
def two_workers(tmp_path_factory):
  tmp = tmp_path_factory.mktemp('multi_worker')
  problem = tmp / 'problem.pkl'
  mwf.write_problem(problem)
  ports = [listen.free_port('127.0.0.1') for _ in range(2)]
  procs, outs = [], []
  for i, tf_config in enumerate(supervisor_lib.learner_tf_configs('127.0.0.1', ports)):
    out = tmp / f'worker-{i}.pkl'
    env = dict(os.environ, TF_CONFIG=tf_config, TF_CPP_MIN_LOG_LEVEL='2')
    log = open(tmp / f'worker-{i}.log', 'w')
    procs.append(
        (
            subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / 'tests' / 'multi_worker_fixtures.py'),
                    str(problem),
                    str(out),
                    str(STEPS),
                ],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            ),
            log,
        )
    )
    outs.append(out)
  try:
    for proc, _ in procs:
      proc.wait(WORKER_TIMEOUT_S)
  finally:
    for proc, log in procs:
      if proc.poll() is None:
        proc.kill()
        proc.wait()
      log.close()
  for i, (proc, _) in enumerate(procs):
    assert proc.returncode == 0, (tmp / f'worker-{i}.log').read_text()[-3000:]
  results = []
  for out in outs:
    with open(out, 'rb') as f:
      results.append(pickle.load(f))
  with open(problem, 'rb') as f:
    start = pickle.load(f)['weights']
  return results, mwf.reference(problem, mwf.STOP_AFTER), start


def test_both_workers_take_part_and_stop_at_the_same_step(two_workers):
  results, _, _ = two_workers
  assert [r['task'] for r in results] == ['worker:0', 'worker:1']
  assert [r['is_chief'] for r in results] == [True, False]
  assert all(r['num_workers'] == 2 and r['replicas'] == 2 for r in results)
  # Worker 1 alone voted to stop after mwf.STOP_AFTER steps; worker 0 stopped there too.
  assert [r['stopped_after'] for r in results] == [mwf.STOP_AFTER, mwf.STOP_AFTER]
  assert [r['chief_value'] for r in results] == [100.0, 100.0]


def test_two_workers_on_halves_equal_one_worker_on_the_whole_batch(two_workers):
  results, expected, start = two_workers
  for a, b in zip(results[0]['weights'], results[1]['weights']):
    np.testing.assert_array_equal(a, b)  # Mirrored: the same update applied on both.
  diffs = np.concatenate([np.abs(a - b).ravel() for a, b in zip(results[0]['weights'], expected)])
  moved = np.concatenate([np.abs(a - b).ravel() for a, b in zip(expected, start)])
  assert np.mean(diffs <= CLOSE) >= MOST, np.mean(diffs <= CLOSE)
  assert np.median(diffs) < TYPICAL * np.median(moved), (np.median(diffs), np.median(moved))
  assert diffs.max() < ATOL_MAX, diffs.max()


def test_sigterm_to_the_non_chief_stops_both_at_one_step_with_one_chief_checkpoint(two_worker_run):
  r = two_worker_run
  assert r.first_code == 0, r.first_output[-3000:]
  assert 'strategy multi_worker × 2' in r.first_output
  (chief,) = STOPPED.findall(r.first_output)
  (worker,) = STOPPED.findall(r.first_worker_log)
  assert chief[0] == 'stop requested by another learner worker' and worker[0] == 'stop requested'
  assert chief[1] == worker[1], (chief, worker)
  step = int(chief[1])
  assert step >= 1
  # One checkpoint (the final one: --checkpoint_every_minutes=60), written by the chief.
  assert sorted(p for p in r.files_after_first if p.startswith('checkpoints/ckpt-')) == [
      f'checkpoints/ckpt-{step}.data-00000-of-00001',
      f'checkpoints/ckpt-{step}.index',
  ]
  assert 'the chief wrote the checkpoint' in r.first_worker_log


def test_only_the_chief_writes_to_the_run_directory(two_worker_run):
  files = two_worker_run.files_after_first
  # The supervisor logs every process's output; nothing else in the run has a second writer.
  tops = sorted({p.split('/')[0] for p in files})
  assert tops == ['checkpoints', 'config.json', 'export', 'logs', 'status.json', 'tensorboard'], tops
  assert sorted(p for p in files if p.startswith('tensorboard/') and p.count('/') == 1) == [
      'tensorboard/learner'
  ]
  events = [p for p in files if p.startswith('tensorboard/learner/events.')]
  assert len(events) == 1, events  # One writer.
  assert sorted(p for p in files if p.startswith('logs/')) == [
      'logs/actor-0.log',
      'logs/learner-1.log',
      'logs/learner.log',
      'logs/reverb.log',
  ]


def test_workers_listen_on_loopback_only(two_worker_run):
  for name, sockets in two_worker_run.listening.items():
    assert sockets and {host for host, _ in sockets} == {'127.0.0.1'}, (name, sockets)


def test_resume_reverb_restart_and_supervisor_sigterm_keep_both_workers_together(two_worker_run):
  r = two_worker_run
  assert r.second_code == 0, r.second_output[-3000:]
  stopped_first = int(STOPPED.findall(r.first_output)[0][1])
  worker_resumed = [int(s) for s in RESUMED.findall(r.second_worker_log)]
  assert r.resumed_step == stopped_first and worker_resumed == [stopped_first]
  (chief,) = STOPPED.findall(r.second_output)
  (worker,) = STOPPED.findall(r.second_worker_log)
  assert chief[0] == 'stop requested' and worker[0] == 'stop requested'
  assert chief[1] == worker[1] and int(chief[1]) >= r.step_at_reverb_kill + 3, (chief, worker)
  assert (r.root / 'checkpoints' / f'ckpt-{chief[1]}.index').exists()


def test_one_worker_decides_alone_without_a_collective():
  workers = strategy_lib.Workers(tf.distribute.get_strategy())
  assert (workers.is_chief, workers.num_workers, workers.task) == (True, 1, 'worker:0')
  assert workers.any_of(True, False, 0, 1) == (True, False, False, True)
  assert workers.broadcast_from_chief(7) == 7


def test_single_worker_multi_worker_strategy_is_its_own_chief(monkeypatch):
  monkeypatch.delenv('TF_CONFIG', raising=False)
  strategy = strategy_lib.make_strategy('multi_worker')
  workers = strategy_lib.Workers(strategy)
  assert (workers.is_chief, workers.num_workers) == (True, 1)
  # The all-reduce itself, on this worker's replica alone.
  np.testing.assert_array_equal(workers._sum_over_workers([1.0, 0.0, 3.0]), [1.0, 0.0, 3.0])


def test_tf_configs_name_every_worker_on_loopback_ports():
  configs = [json.loads(c) for c in supervisor_lib.learner_tf_configs('127.0.0.1', [5001, 5002])]
  assert [c['task'] for c in configs] == [{'type': 'worker', 'index': 0}, {'type': 'worker', 'index': 1}]
  assert all(c['cluster'] == {'worker': ['127.0.0.1:5001', '127.0.0.1:5002']} for c in configs)
  ipv6 = json.loads(supervisor_lib.learner_tf_configs('::1', [5003])[0])
  assert ipv6['cluster']['worker'] == ['[::1]:5003']


@pytest.mark.parametrize(
    'tf_config, address',
    [
        (None, None),
        (
            {'cluster': {'worker': ['127.0.0.1:1', '127.0.0.1:2']}, 'task': {'type': 'worker', 'index': 1}},
            '127.0.0.1',
        ),
        ({'cluster': {'worker': ['10.0.0.1:1', '[::1]:2']}, 'task': {'type': 'worker', 'index': 1}}, '::1'),
        ({'cluster': {'worker': ['learner-a:1']}, 'task': {'type': 'worker', 'index': 0}}, None),  # A name.
        ({'cluster': {}, 'task': {'type': 'worker', 'index': 0}}, None),
    ],
)
def test_worker_listen_address_is_this_tasks_address_in_tf_config(tf_config, address):
  environ = {} if tf_config is None else {'TF_CONFIG': json.dumps(tf_config)}
  assert strategy_lib.worker_listen_address(environ) == address


def test_learner_workers_need_the_multi_worker_strategy_and_split_the_batch(tmp_path):
  ok = config_lib.validate(
      config_lib.Config(root_dir=str(tmp_path), strategy='multi_worker', num_learner_workers=2, batch_size=8)
  )
  assert ok.num_replicas == 2
  with pytest.raises(
      config_lib.ConfigError, match='--num_learner_workers: 2 learner workers need ' '--strategy=multi_worker'
  ):
    config_lib.validate(config_lib.Config(root_dir=str(tmp_path), num_learner_workers=2))
  with pytest.raises(config_lib.ConfigError, match='--batch_size: 9 is not divisible by the 2 replicas'):
    config_lib.validate(
        config_lib.Config(
            root_dir=str(tmp_path), strategy='multi_worker', num_learner_workers=2, batch_size=9
        )
    )
  one, two = (
      placement.footprint(config_lib.Config(strategy='multi_worker', num_learner_workers=n), images=1000)
      for n in (1, 2)
  )
  assert one.learner < two.learner < 2 * one.learner  # TensorFlow twice; the batch's activations once.
