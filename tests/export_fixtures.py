"""A briefly trained tiny agent in the training-run layout, shared by the export / painter / evaluation tests.

`trained_run()` (once per process) builds a tiny conditional grey painter from a small Config, acts a batch of
real episodes in libmypaint against procedural-stroke targets, applies a few learner updates
(spiral_tf/learning/learner_step.py: V-trace + WGAN-GP, the learner's own code), and writes the run directory
as the learner does: config.json and checkpoints/ (agent, discriminator, optimizers, learner_step, frames).
"""

import atexit
import dataclasses
import functools
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPISODE_LENGTH = 4
BATCH = 4
UPDATES = 2


@dataclasses.dataclass
class Run:
  root_dir: str
  config: object
  agent: object  # the trained agent (live, in this process)
  initial_weights: list  # its weights before training
  learner_step: int
  train_images: np.ndarray  # uint8 targets it trained on


def tiny_config(root_dir, **overrides):
  from spiral_tf import config as config_lib  # pylint: disable=g-import-not-at-top

  values = dict(
      root_dir=root_dir,
      dataset='strokes',
      conditional=True,
      episode_length=EPISODE_LENGTH,
      grid_width=16,
      network_size='tiny',
      batch_size=BATCH,
      fakes_replay_size=BATCH,
      reward='l2',
      jit_compile=False,
      use_color=False,
  )
  values.update(overrides)
  return config_lib.validate(config_lib.from_dict(values))  # Flat names: reward is Config.learner's.


def _episodes(agent, envs, length):
  """One batched episode of every env, as trajectory.py lays it out (batch-major, like Reverb yields)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from spiral_tf.distributed import actor  # pylint: disable=g-import-not-at-top
  from spiral_tf.replay import trajectory  # pylint: disable=g-import-not-at-top

  steps, core = actor.run_episode(envs, agent, tf.function(agent.step), length)  # the actor's own loop
  return trajectory.batch_major(steps, core, policy_step=0)


@functools.lru_cache(maxsize=None)
def trained_run() -> Run:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from spiral_tf import components  # pylint: disable=g-import-not-at-top
  from spiral_tf.data import strokes  # pylint: disable=g-import-not-at-top

  root_dir = tempfile.mkdtemp(prefix='spiral_export_test_')
  atexit.register(shutil.rmtree, root_dir, True)
  config = tiny_config(os.path.join(root_dir, 'run'))
  images, _ = strokes.render(
      2 * BATCH, seed=0, split='train', channels=1, **components.dataset_options(config)
  )
  envs = [components.make_environment(config, images=images, seed=i) for i in range(BATCH)]
  agent = components.make_agent(config)
  discriminator = components.make_discriminator(config)
  initial = [v.numpy().copy() for v in agent.trainable_variables]
  update = components.make_learner_update(config, agent, discriminator, tf.distribute.get_strategy())
  learner_step = tf.Variable(0, dtype=tf.int64)
  frames = tf.Variable(0, dtype=tf.int64)
  for _ in range(UPDATES):
    batch = _episodes(agent, envs, config.episode_length)
    update.step(batch, images[:BATCH].astype(np.float32) / 255.0)
    learner_step.assign_add(1)
    frames.assign_add(BATCH * (config.episode_length - 1))
  checkpoint = tf.train.Checkpoint(
      agent=agent,
      discriminator=discriminator,
      policy_optimizer=update.policy_optimizer,
      d_optimizer=update.d_optimizer,
      learner_step=learner_step,
      frames=frames,
  )
  manager = tf.train.CheckpointManager(checkpoint, os.path.join(config.root_dir, 'checkpoints'), 3)
  manager.save(checkpoint_number=int(learner_step.numpy()))
  components.save_config(config, config.root_dir)
  return Run(config.root_dir, config, agent, initial, int(learner_step.numpy()), images)


@functools.lru_cache(maxsize=None)
def exported_model() -> str:
  """`launch/export.py --root_dir=<trained run>` in a subprocess; returns the export directory."""
  run = trained_run()
  result = subprocess.run(
      [sys.executable, os.path.join(REPO, 'launch', 'export.py'), f'--root_dir={run.root_dir}'],
      capture_output=True,
      text=True,
      cwd=REPO,
      timeout=300,
      check=False,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  export_dir = os.path.join(run.root_dir, 'export')
  assert export_dir in result.stdout, result.stdout
  return export_dir


def run_python(code, *args, env=None, timeout=300):
  """Runs `python -c code args...` from the repository root; returns the CompletedProcess."""
  environ = dict(os.environ, **(env or {}))
  return subprocess.run(
      [sys.executable, '-c', code, *args],
      capture_output=True,
      text=True,
      cwd=REPO,
      env=environ,
      timeout=timeout,
      check=False,
  )


def run_script(script, *args, env=None, timeout=300):
  """Runs `python launch/<script> args...`; returns the CompletedProcess."""
  return subprocess.run(
      [sys.executable, os.path.join(REPO, 'launch', script), *args],
      capture_output=True,
      text=True,
      cwd=REPO,
      env=dict(os.environ, **(env or {})),
      timeout=timeout,
      check=False,
  )
