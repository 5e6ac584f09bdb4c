"""spiral_tf/components.py: the specs known from the config alone are those of the environment it builds.

Every process that does not step an environment (the Reverb server, the learner, export) takes its specs
from `environment_specs(config)`; actors take them from the environments they build. The two must agree
key for key, shape for shape, in order, or Reverb refuses the actors' episodes — so they are compared
here on real renderers, for each setting that changes a spec.
"""

import numpy as np
import pytest

from spiral_tf import components
from spiral_tf import config as config_lib
from spiral_tf.networks import agent as agent_lib

SETTINGS = [
    dict(environment='libmypaint', use_color=False, conditional=True),
    dict(environment='libmypaint', use_color=True, conditional=False, dataset='celeba'),
    dict(environment='libmypaint', use_color=False, use_pressure=False, brush_sizes=(4.0,), grid_width=16),
    dict(environment='libmypaint', use_color=False, render_width=128),
    dict(environment='mujoco_scenes', dataset='scenes', conditional=True, use_color=True),
]


def _config(tmp_path, **settings):
  return config_lib.validate(config_lib.Config(root_dir=str(tmp_path), episode_length=5, **settings))


def _environment(config):
  shape = (3, config.canvas_width, config.canvas_width, config.channels)
  images = np.full(shape, 255, np.uint8) if config.conditional else None
  return components.make_environment(config, images=images, seed=0)


@pytest.mark.parametrize('settings', SETTINGS, ids=lambda s: ','.join(f'{k}={v}' for k, v in s.items()))
def test_specs_from_the_config_are_the_environments(tmp_path, settings):
  config = _config(tmp_path, **settings)
  env = _environment(config)
  try:
    action_spec, observation_spec = components.environment_specs(config)
    assert repr(action_spec) == repr(env.action_spec())  # keys, order, sizes, dtypes, names
    assert repr(observation_spec) == repr(env.observation_spec())
    assert ('target' in observation_spec) == config.conditional
    assert observation_spec['canvas'].shape == (config.canvas_width, config.canvas_width, config.channels)
    timestep = env.reset()  # and the observations fit the spec
    for key, spec in observation_spec.items():
      if key != 'action_mask':
        spec.validate(timestep.observation[key])
  finally:
    env.close()


def test_table_specs_follow_the_config(tmp_path):
  config = _config(tmp_path, use_color=False, conditional=True, network_size='tiny')
  trajectory_spec, fake_spec = components.specs(config)
  assert trajectory_spec['observation']['canvas'].shape == (5, 64, 64, 1)
  assert trajectory_spec['observation']['target'].shape == (5, 64, 64, 1)
  assert trajectory_spec['core_state']['h'].shape == (agent_lib.SIZES['tiny'].lstm_size,)
  assert set(trajectory_spec['action']) == set(components.environment_specs(config)[0])
  assert set(fake_spec) == {'canvas', 'target'}
  unconditional = _config(tmp_path, use_color=False, conditional=False)
  assert set(components.specs(unconditional)[1]) == {'canvas'}
  assert 'target' not in components.specs(unconditional)[0]['observation']


def test_agent_built_from_the_config_steps_the_environment(tmp_path):
  config = _config(tmp_path, use_color=False, conditional=True, network_size='tiny')
  env = _environment(config)
  agent = components.make_agent(config)
  timestep = env.reset()
  observation = {
      k: np.asarray(v)[None] if not isinstance(v, dict) else {a: np.asarray(b)[None] for a, b in v.items()}
      for k, v in timestep.observation.items()
  }
  output, _ = agent.step(np.array([int(timestep.step_type)], np.int32), observation, agent.initial_state(1))
  for key, spec in env.action_spec().items():
    spec.validate(np.asarray(output.action[key][0], np.int32))
  env.close()
