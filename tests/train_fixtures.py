"""One short real training run (`launch/train.py --role=all`, configs/smoke.cfg), shared by the tests that
read a run: tests/train_test.py checks the training, tests/tensorboard_test.py serves its TensorBoard logs,
tests/console_test.py reads its console. (Each real run costs about a minute of both cores: one run read by
three files instead of three runs.)

`smoke_run()` (once per process, so the tests share it when pytest runs them together) trains FIRST_STEPS
learner steps with the default strategy and 3 actors × 2 environments packed into 2 processes
(--local_actors=2), then resumes the same run directory for RESUMED_STEPS under the mirrored strategy
(2 logical CPU replicas), with 3 D updates per policy update, new learning rates and --verbosity=0.

Usage:
  run = train_fixtures.smoke_run()
  run.root, run.first.stdout, run.second.stdout, run.first_checkpoint
  train_fixtures.train(root_dir, '--max_learner_steps=2')    # any other run (a CompletedProcess)
"""

import atexit
import dataclasses
import functools
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
TRAIN = [sys.executable, str(ROOT / 'launch' / 'train.py'), '--flagfile=configs/smoke.cfg']
FIRST_STEPS, RESUMED_STEPS = 4, 8
RESUMED_D_STEPS_PER_POLICY_STEP = 3  # The first run keeps the default, 1.
# The first run keeps the default learning rates (1e-4); the resumed run must use these, not the checkpoint's.
RESUMED_POLICY_LEARNING_RATE, RESUMED_D_LEARNING_RATE = 3e-4, 2e-4
BATCH, FRAMES_PER_EPISODE = 8, 4  # smoke.cfg: batch 8, episode_length 5.
# The first run's actors: 3 actors × 2 environments packed into 2 processes × 3 (tests/console_test.py).
FIRST_ACTORS = ('--num_actors=3', '--envs_per_actor=2', '--local_actors=2')

# What the learner logs (TensorBoard run `learner`).
SCALAR_TAGS = (
    'policy_loss',
    'value_loss',
    'entropy',
    'd_loss_real',
    'd_loss_fake',
    'gradient_penalty',
    'd_score_real',
    'd_score_fake',
    'reward_mean',
    'l2_to_target',
    'frames_per_s',
    'learner_steps_per_s',
    'queue_size',
    'fakes_size',
    'policy_lag_steps',
    'd_steps',
    'policy_learning_rate',
    'entropy_cost',
)
IMAGE_TAGS = ('targets_and_renders', 'strokes')


@dataclasses.dataclass
class SmokeRun:
  root: pathlib.Path
  first: subprocess.CompletedProcess  # the first FIRST_STEPS steps
  second: subprocess.CompletedProcess  # the resumed run, to RESUMED_STEPS
  first_checkpoint: object  # tf.train.load_checkpoint of ckpt-FIRST_STEPS (gone after the resume)


def train(root_dir, *flags, timeout=300):
  # The tests stop their runs by steps. smoke.cfg's 2-minute limit could end a first run on a slow, loaded
  # machine before its 4 steps (the first update compiles for 20-30 s there): the limit here is a minute
  # below the timeout, so that a slow run fails naming its stop reason rather than the timeout.
  minutes = max(timeout - 60, timeout / 2) / 60
  return subprocess.run(
      TRAIN + [f'--root_dir={root_dir}', '--log_every_seconds=0', f'--max_minutes={minutes:g}', *flags],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=timeout,
  )


@functools.lru_cache(maxsize=None)
def smoke_run() -> SmokeRun:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  base = tempfile.mkdtemp(prefix='spiral_smoke_run_')
  atexit.register(shutil.rmtree, base, True)
  root = pathlib.Path(base) / 'run'
  first = train(root, f'--max_learner_steps={FIRST_STEPS}', *FIRST_ACTORS)
  assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
  first_checkpoint = tf.train.load_checkpoint(str(root / 'checkpoints' / f'ckpt-{FIRST_STEPS}'))
  second = train(
      root,
      f'--max_learner_steps={RESUMED_STEPS}',
      '--strategy=mirrored',
      '--num_cpu_replicas=2',
      f'--d_steps_per_policy_step={RESUMED_D_STEPS_PER_POLICY_STEP}',
      f'--policy_learning_rate={RESUMED_POLICY_LEARNING_RATE}',
      f'--d_learning_rate={RESUMED_D_LEARNING_RATE}',
      '--verbosity=0',
  )
  assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
  return SmokeRun(root, first, second, first_checkpoint)
