"""End to end: Reverb + 2 actors + learner as real processes (`launch/train.py --role=all`).

One short run with the default strategy, then a resume of the same run directory under the mirrored
strategy (2 logical CPU replicas), 3 D updates per policy update and new learning rates: together they
show training under both strategies, checkpoints, continuous counters and optimizer state across a
restart, learning rates from the flags rather than the checkpoint, the D/policy update ratio, weights
reaching the actors, the fakes replay filling, and the TensorBoard tags. Config errors must fail before any
process starts.
"""

import glob
import os
import re

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator
import tensorflow as tf

import train_fixtures
from train_fixtures import BATCH
from train_fixtures import FIRST_STEPS
from train_fixtures import FRAMES_PER_EPISODE
from train_fixtures import IMAGE_TAGS
from train_fixtures import RESUMED_D_LEARNING_RATE
from train_fixtures import RESUMED_D_STEPS_PER_POLICY_STEP
from train_fixtures import RESUMED_POLICY_LEARNING_RATE
from train_fixtures import RESUMED_STEPS
from train_fixtures import SCALAR_TAGS

_train = train_fixtures.train


def _scalars(root_dir):
  """{tag: [(step, value)]} from every event file of the learner (TensorBoard run `learner`)."""
  values = {}
  for path in sorted(glob.glob(os.path.join(root_dir, 'tensorboard', 'learner', 'events.*'))):
    acc = event_accumulator.EventAccumulator(path, size_guidance={'tensors': 0})
    acc.Reload()
    for tag in acc.Tags()['tensors']:
      for event in acc.Tensors(tag):
        values.setdefault(tag, []).append((event.step, tf.make_ndarray(event.tensor_proto)))
  return values


@pytest.fixture(scope='module')
def run():
  """The run of tests/train_fixtures.py (shared with tests/tensorboard_test.py)."""
  r = train_fixtures.smoke_run()
  return r.root, r.first, r.second, r.first_checkpoint


def test_trains_and_checkpoints_with_both_strategies(run):
  root, first, second, _ = run
  assert f'stopped: reached --max_learner_steps={FIRST_STEPS}' in first.stdout
  assert 'strategy default × 1' in first.stdout
  assert 'strategy mirrored × 2' in second.stdout
  assert f'stopped: reached --max_learner_steps={RESUMED_STEPS}' in second.stdout
  assert (root / 'checkpoints' / f'ckpt-{RESUMED_STEPS}.index').exists()
  assert str(root / 'tensorboard') in second.stdout  # Tells the user where the logs are.


def test_resume_continues_counters_weights_and_optimizer(run):
  root, _, second, first_checkpoint = run
  assert re.search(
      rf'resumed from .*ckpt-{FIRST_STEPS}: step {FIRST_STEPS}, '
      rf'frames {FIRST_STEPS * BATCH * FRAMES_PER_EPISODE}',
      second.stdout,
  )
  final = tf.train.load_checkpoint(str(root / 'checkpoints' / f'ckpt-{RESUMED_STEPS}'))
  assert final.get_tensor('learner_step/.ATTRIBUTES/VARIABLE_VALUE') == RESUMED_STEPS
  assert final.get_tensor('frames/.ATTRIBUTES/VARIABLE_VALUE') == RESUMED_STEPS * BATCH * FRAMES_PER_EPISODE
  # Adam's step count continued from the first run rather than restarting at 0.
  assert final.get_tensor('policy_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE') == RESUMED_STEPS
  # D: one update per policy update in the first run, then RESUMED_D_STEPS_PER_POLICY_STEP.
  d_updates = FIRST_STEPS + (RESUMED_STEPS - FIRST_STEPS) * RESUMED_D_STEPS_PER_POLICY_STEP
  assert final.get_tensor('d_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE') == d_updates
  ratio = lambda step: 1 if step <= FIRST_STEPS else RESUMED_D_STEPS_PER_POLICY_STEP
  logged = sorted((step, int(v)) for step, v in _scalars(root)['d_steps'])
  assert logged == [(s, sum(ratio(t) for t in range(1, s + 1))) for s in range(1, RESUMED_STEPS + 1)], logged
  # The weights moved on from the first run's (they were trained further, not re-initialised far away).
  names = [
      n
      for n in first_checkpoint.get_variable_to_shape_map()
      if n.startswith('agent/') and n.endswith('VARIABLE_VALUE')
  ]
  assert names
  moved = [np.abs(final.get_tensor(n) - first_checkpoint.get_tensor(n)).max() for n in names]
  assert max(moved) > 0
  assert np.median(moved) < 0.1  # Small Adam steps from the restored weights.
  steps = [step for step, _ in _scalars(root)['policy_loss']]
  assert min(steps) == 1 and max(steps) == RESUMED_STEPS and len(set(steps)) == RESUMED_STEPS


def test_resume_takes_the_learning_rates_of_its_flags(run):
  # Adam checkpoints its learning rate: restoring alone would keep the first run's 1e-4.
  root, _, second, first_checkpoint = run
  final = tf.train.load_checkpoint(str(root / 'checkpoints' / f'ckpt-{RESUMED_STEPS}'))
  for optimizer, resumed in (
      ('policy_optimizer', RESUMED_POLICY_LEARNING_RATE),
      ('d_optimizer', RESUMED_D_LEARNING_RATE),
  ):
    name = f'{optimizer}/_learning_rate/.ATTRIBUTES/VARIABLE_VALUE'
    assert first_checkpoint.get_tensor(name) == np.float32(1e-4)
    assert final.get_tensor(name) == np.float32(resumed), (optimizer, final.get_tensor(name))
  assert '[learner] policy learning rate 1e-4 → 3e-4 (from the flags)' in second.stdout
  assert '[learner] D learning rate 1e-4 → 2e-4 (from the flags)' in second.stdout


def test_tensorboard_scalars_and_images(run):
  root = run[0]
  scalars = _scalars(root)
  for tag in SCALAR_TAGS + IMAGE_TAGS:
    assert tag in scalars, f'missing TensorBoard tag {tag}; have {sorted(scalars)}'
  assert all(np.isfinite(v).all() for _, v in scalars['policy_loss'])
  image = scalars['targets_and_renders'][0][1]  # [width, height, encoded images...]
  assert int(image[0]) == 2 * 64 and int(image[1]) == 64  # Target beside render.


def test_weights_reach_actors_and_fakes_fill(run):
  scalars = _scalars(run[0])
  acting = [float(v) for _, v in sorted(scalars['acting_policy_step'])]
  assert max(acting) > 0, f'actors never acted with weights newer than step 0: {acting}'
  assert max(float(v) for _, v in scalars['fakes_size']) >= BATCH


@pytest.mark.parametrize(
    'flags, named',
    [
        (['--dataset=imagenet'], '--dataset'),
        (['--grid_width=128'], '--grid_width'),
        (['--strategy=mirrored', '--num_cpu_replicas=3'], '--batch_size'),
        (['--d_steps_per_policy_step=0'], '--d_steps_per_policy_step'),
    ],
)
def test_config_error_fails_before_any_process(tmp_path, flags, named):
  root = tmp_path / 'bad'
  result = _train(root, *flags, timeout=60)
  assert result.returncode == 2
  assert named in result.stderr and 'configuration error' in result.stderr
  assert '[supervisor] started' not in result.stdout
  assert not root.exists()


def test_an_unreachable_tpu_stops_the_run_with_a_configuration_error(tmp_path):
  # --tpu reaches make_strategy in the learner process; its StrategyError ends the run with exit code 2.
  result = _train(tmp_path / 'tpu', '--strategy=tpu', '--tpu=grpc://127.0.0.1:1', timeout=120)
  assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
  assert (
      "configuration error: --strategy=tpu: no TPU reachable with --tpu='grpc://127.0.0.1:1'" in result.stderr
  )
  assert 'Connection refused' in result.stderr
  assert '[supervisor] learner exited with code 2' in result.stdout
