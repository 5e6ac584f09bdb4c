"""Builds the parts of a run from its `Config`, the same way in every role.

Every process (Reverb server, actors, learner, evaluator, export) builds its environment, agent and
discriminator here, so their specs and variable lists agree — Reverb's table signatures and the weight
tables depend on it.

Usage:
  env = make_environment(config, split='train', seed=7)
  agent = make_agent(config)                    # for environment_specs(config): no renderer needed
  discriminator = make_discriminator(config)
  trajectory_spec, fake_spec = specs(config)    # the Reverb tables' signatures
"""

import json
import os

import dm_env

from environments import libmypaint
from environments import targets as targets_lib
from spiral_tf import config as config_lib
from spiral_tf import data
from spiral_tf import files
from spiral_tf import run_dir
from spiral_tf.learning import learner_step
from spiral_tf.networks import agent as agent_lib
from spiral_tf.networks import discriminator as discriminator_lib
from spiral_tf.replay import trajectory


def export_dir(root_dir: str) -> str:
  """The run's latest SavedModel (spiral_tf/run_dir.py holds the layout)."""
  return run_dir.RunDir(root_dir).export


def make_renderer(config: config_lib.Config, seed: int | None = None) -> dm_env.Environment:
  """The bare renderer (no targets), as configured."""
  if config.environment == 'libmypaint':
    return libmypaint.LibMyPaint(**config.libmypaint_settings(), seed=seed)
  # Lazy: MuJoCo picks its GL backend when imported, and only scene runs load it.
  from environments import mujoco_scenes  # pylint: disable=g-import-not-at-top

  return mujoco_scenes.MujocoScenes(
      episode_length=config.episode_length, image_width=config.canvas_width, seed=seed
  )


def dataset_options(config: config_lib.Config) -> dict:
  """Procedural strokes are painted with the agent's own painter settings (so they are reachable)."""
  if config.dataset != 'strokes':
    return {}
  return dict(
      episode_length=config.episode_length,
      canvas_width=config.canvas_width,
      grid_width=config.grid_width,
      brush_type=config.brush_type,
      brush_sizes=config.brush_sizes,
      use_pressure=config.use_pressure,
  )


def load_targets(config: config_lib.Config, split: str, limit: int | None = None):
  """The dataset's images (uint8 [N, 64, 64, C], ink on white) for the given split."""
  return data.load_images(
      config.dataset,
      split=split,
      data_dir=config.data_dir,
      channels=config.channels,
      limit=limit,
      **dataset_options(config),
  )


def real_dataset(config: config_lib.Config, batch_size: int, worker: int = 0):
  """Endless float32 batches of real training images for D; each learner `worker` its own order."""
  return data.real_dataset(
      config.dataset,
      'train',
      batch_size,
      data_dir=config.data_dir,
      channels=config.channels,
      seed=config.seed + 7919 * worker,
      **dataset_options(config),
  )


def make_learner_update(config: config_lib.Config, agent, discriminator, strategy, train_discriminator=None):
  """The compiled update of policy, critic and D (spiral_tf/learning/learner_step.py), in strategy scope.

  train_discriminator: None — unless the run's D is a population's shared one, which its own role trains
  (spiral_tf/distributed/shared_discriminator.py passes True).
  """
  return learner_step.LearnerUpdate(
      agent,
      discriminator,
      config.learner,
      strategy,
      conditional=config.conditional,
      jit_compile=config.jit_compile,
      seed=config.seed,
      train_discriminator=(
          not config.shared_discriminator if train_discriminator is None else train_discriminator
      ),
  )


def make_environment(
    config: config_lib.Config, split: str = 'train', seed: int | None = None, images=None
) -> dm_env.Environment:
  """Renderer + per-episode target (when conditional) + per-episode noise sample."""
  if config.conditional and images is None:
    images = load_targets(config, split)
  return targets_lib.ConditionalTargets(
      make_renderer(config, seed),
      images if config.conditional else None,
      conditional=config.conditional,
      seed=seed,
  )


# MuJoCo scenes: first what to do (add, skip, modify), then which object, where, how big, which colour.
SCENES_ORDER = ('mode', 'type', 'location', 'size', 'red', 'green', 'blue')


def environment_specs(config: config_lib.Config) -> tuple:
  """(action spec, observation spec) of `make_environment(config)`, without a renderer or a dataset.

  The renderers and ConditionalTargets build their own specs with the same functions, so these are the
  specs every process's environment has (tests/components_test.py compares them).
  """
  if config.environment == 'libmypaint':
    action_spec, renderer_spec = libmypaint.specs_of(**config.libmypaint_settings())
  else:
    # Lazy: MuJoCo picks its GL backend when imported, and only scene runs load it.
    from environments import mujoco_scenes  # pylint: disable=g-import-not-at-top

    action_spec, renderer_spec = mujoco_scenes.specs_of(config.episode_length, config.canvas_width)
  target_shape = renderer_spec['canvas'].shape if config.conditional else None
  return action_spec, targets_lib.observation_spec(renderer_spec, target_shape)


def make_agent(config: config_lib.Config, precision: str = 'float32') -> agent_lib.Agent:
  """The run's agent, built for `environment_specs(config)`.

  `precision`: the learner passes `config.precision`; actors, the evaluator and exports compute in
  float32 (a policy step at the actors' batch sizes is not faster in bfloat16, and an export stays
  portable). Weights are float32 under every precision, so all of them share one set of variables.
  """
  action_spec, observation_spec = environment_specs(config)
  order = SCENES_ORDER if config.environment == 'mujoco_scenes' else None  # None: the painter's order.
  return agent_lib.Agent(
      action_spec,
      observation_spec,
      size=config.network_size,
      order=order,
      conditional=config.conditional,
      precision=precision,
  )


def make_discriminator(
    config: config_lib.Config, precision: str = 'float32'
) -> discriminator_lib.Discriminator:
  """D on renders, or on (render, target) channel pairs when conditional; built (variables exist)."""
  channels = config.channels * (2 if config.conditional else 1)
  return discriminator_lib.Discriminator(
      size=config.network_size,
      spectral_norm=config.learner.d_loss == 'sn-gan',
      precision=precision,
      input_shape=(config.canvas_width, config.canvas_width, channels),
  )


def specs(config: config_lib.Config):
  """(trajectory spec, fake spec) of the Reverb tables, from the config alone."""
  action_spec, observation_spec = environment_specs(config)
  lstm_size = agent_lib.SIZES[config.network_size].lstm_size
  return (
      trajectory.trajectory_spec(observation_spec, action_spec, lstm_size, config.episode_length),
      trajectory.fake_spec(observation_spec['canvas'], config.conditional),
  )


def save_config(config: config_lib.Config, root_dir: str) -> str:
  """Writes the run's configuration (read back by export, paint and evaluate), flat (config.to_dict)."""
  os.makedirs(root_dir, exist_ok=True)
  path = run_dir.RunDir(root_dir).config_file
  with files.atomic_output(path) as tmp:
    with open(tmp, 'w') as f:
      json.dump(config_lib.to_dict(config), f, indent=1, sort_keys=True)
  return path


def load_config(root_dir: str) -> config_lib.Config:
  """The saved configuration of a run, from today's config.json or one written before Config.learner."""
  path = run_dir.RunDir(root_dir).config_file
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} not found: is {root_dir} a training run directory (--root_dir)?')
  with open(path) as f:
    values = json.load(f)
  return config_lib.validate(config_lib.from_dict(values))
