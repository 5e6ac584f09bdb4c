"""The multi-worker learner: two real MultiWorkerMirroredStrategy workers on loopback, and its pure parts.

* Two worker processes (tests/multi_worker_fixtures.py) train the real update on their halves of a fixed
  global batch: both take part (2 workers × 1 CPU = 2 replicas), their weights are equal to each other
  and to one worker's on the whole batch, one worker's stop vote stops both at the same step, and the
  chief's value reaches both.
* `Workers` in one process (one worker: no collective), TF_CONFIG generation and its listen address.
"""
import json
import os
import pathlib
import pickle
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import multi_worker_fixtures as mwf
from spiral_tf.distributed import listen
from spiral_tf.distributed import supervisor as supervisor_lib
from spiral_tf.learning import strategy as strategy_lib

ROOT = pathlib.Path(__file__).resolve().parent.parent
STEPS = 3  # The stop vote comes after mwf.STOP_AFTER (2) steps, before the third.
# Float32 sums in another order (a 2-way all-reduce of half-batch gradients against one whole-batch sum)
# differ by a few ulps, and Adam divides by √v: an element whose gradient is near 0 can move by up to ≈ lr
# (1e-3) per step whichever its sign. Measured (2026-12-02): median difference 3e-8, max 8.6e-5, 0.008 % of
# the elements beyond 1e-6, while the updates moved the weights by a median 1.2e-3.
CLOSE, MOST = 1e-6, 0.999  # At least MOST of the elements agree within CLOSE ...
ATOL_MAX = 2 * 1e-3 * mwf.STOP_AFTER  # ... and none differs by more than the Adam bound of 2 steps.
WORKER_TIMEOUT_S = 300  # Two TensorFlow processes starting together on 2 loaded cores.


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
    procs.append((subprocess.Popen([sys.executable, str(ROOT / 'tests' / 'multi_worker_fixtures.py'),
                                    str(problem), str(out), str(STEPS)], env=env, cwd=ROOT, stdout=log,
                                   stderr=subprocess.STDOUT), log))
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
  return results, mwf.reference(problem, mwf.STOP_AFTER)


def test_both_workers_take_part_and_stop_at_the_same_step(two_workers):
  results, _ = two_workers
  assert [r['task'] for r in results] == ['worker:0', 'worker:1']
  assert [r['is_chief'] for r in results] == [True, False]
  assert all(r['num_workers'] == 2 and r['replicas'] == 2 for r in results)
  # Worker 1 alone voted to stop after mwf.STOP_AFTER steps; worker 0 stopped there too.
  assert [r['stopped_after'] for r in results] == [mwf.STOP_AFTER, mwf.STOP_AFTER]
  assert [r['chief_value'] for r in results] == [100.0, 100.0]


def test_two_workers_on_halves_equal_one_worker_on_the_whole_batch(two_workers):
  results, expected = two_workers
  for a, b in zip(results[0]['weights'], results[1]['weights']):
    np.testing.assert_array_equal(a, b)  # Mirrored: the same update applied on both.
  diffs = np.concatenate([np.abs(a - b).ravel() for a, b in zip(results[0]['weights'], expected)])
  assert np.mean(diffs <= CLOSE) >= MOST, np.mean(diffs <= CLOSE)
  assert diffs.max() < ATOL_MAX, diffs.max()


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


@pytest.mark.parametrize('tf_config, address', [
    (None, None),
    ({'cluster': {'worker': ['127.0.0.1:1', '127.0.0.1:2']}, 'task': {'type': 'worker', 'index': 1}},
     '127.0.0.1'),
    ({'cluster': {'worker': ['10.0.0.1:1', '[::1]:2']}, 'task': {'type': 'worker', 'index': 1}}, '::1'),
    ({'cluster': {'worker': ['learner-a:1']}, 'task': {'type': 'worker', 'index': 0}}, None),  # A name.
    ({'cluster': {}, 'task': {'type': 'worker', 'index': 0}}, None),
])
def test_worker_listen_address_is_this_tasks_address_in_tf_config(tf_config, address):
  environ = {} if tf_config is None else {'TF_CONFIG': json.dumps(tf_config)}
  assert strategy_lib.worker_listen_address(environ) == address
