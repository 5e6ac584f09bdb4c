"""Config: the update's settings nested as Config.learner, built once from flat flags, saved flat."""

import dataclasses
import json

from absl import flags
import pytest

from spiral_tf import config as config_lib

# A run's config.json as the code before Config.learner saved it (a real run's: R1's entropy-cost
# ablation, seed 1): flat, one key per flag.
# Flags that run did not have yet (issue 17's multi-worker learner).
FLAGS_ADDED_SINCE = {
    'num_learner_workers',
    'population_size',
    'pbt_interval_steps',
    'pbt_fitness',
    'pbt_learning_rate_range',
    'pbt_entropy_cost_range',
    'shared_discriminator',
    'discriminator_members',
    'population_members',
    'population_lead',
}
SAVED_BEFORE_NESTING = {
    'baseline_cost': 0.5,
    'batch_size': 16,
    'blank_penalty': 0.0,
    'brush_sizes': [1, 2, 4, 8, 12, 24],
    'brush_type': 'classic/dry_brush',
    'canvas_width': 64,
    'checkpoint_every_minutes': 5.0,
    'conditional': True,
    'd_conditioning': 'pair',
    'd_learning_rate': 0.0001,
    'd_loss': 'wgan-gp',
    'd_steps_per_policy_step': 1,
    'data_dir': None,
    'dataset': 'mnist',
    'discount': None,
    'entropy_cost': 0.005,
    'environment': 'libmypaint',
    'envs_per_actor': 16,
    'episode_length': 10,
    'eval_targets': 128,
    'evaluator': True,
    'fakes_replay_size': 0,
    'first_env': -1,
    'gradient_penalty_target': 1.0,
    'gradient_penalty_weight': 10.0,
    'grid_width': 32,
    'image_summary_every_steps': 100,
    'jit_compile': False,
    'local_actors': 0,
    'log_every_seconds': 10.0,
    'max_frames': 1000000,
    'max_gradient_norm': 40.0,
    'max_learner_steps': 0,
    'max_minutes': 150.0,
    'max_nonfinite_updates': 10,
    'network_size': 'tiny',
    'num_actors': 1,
    'num_cpu_replicas': 1,
    'policy_learning_rate': 0.0003,
    'policy_learning_rate_decay': 'linear',
    'precision': 'float32',
    'queue_size': 0,
    'render_width': None,
    'reverb_address': '127.0.0.1:47935',
    'reverb_bind_address': '127.0.0.1',
    'reverb_port': 0,
    'reward': 'spiral++',
    'reward_normalisation': 'standardise',
    'root_dir': 'runs/reproductions/mnist_d_entropy_cost_half-seed1',
    'seed': 1,
    'strategy': 'default',
    'stroke_penalty': 0.0,
    'tpu': '',
    'use_color': False,
    'use_pressure': True,
    'weight_pull_seconds': 2.0,
}


def _from_flags(tmp_path, *argv):
  flag_values = flags.FlagValues()  # Not absl's global FLAGS: each test parses its own command line.
  config_lib.define_flags(flag_values)
  flag_values(['train.py', f'--root_dir={tmp_path}', *argv])
  return config_lib.from_flags(flag_values)


def test_the_update_s_flags_build_config_learner(tmp_path):
  config = _from_flags(
      tmp_path,
      '--policy_learning_rate=3e-5',
      '--reward=spiral++',
      '--d_steps_per_policy_step=2',
      '--d_conditioning=complement',
      '--batch_size=8',
  )
  assert config.learner == config_lib.LearnerConfig(
      policy_learning_rate=3e-5, reward='spiral++', d_steps_per_policy_step=2, d_conditioning='complement'
  )
  assert config.learner.effective_discount == config_lib.SPIRAL_PP_DISCOUNT
  assert config.batch_size == 8 and not hasattr(config, 'policy_learning_rate')


def test_every_setting_has_one_name_and_the_flags_are_the_unfixed_ones():
  top = {f.name for f in dataclasses.fields(config_lib.Config)} - {'learner'}
  learner = dataclasses.fields(config_lib.LearnerConfig)
  assert not top & {f.name for f in learner}  # So config.json and the flags can stay flat.
  assert sorted(config_lib.SETTINGS) == sorted(top | {f.name for f in learner})
  flag_values = flags.FlagValues()
  config_lib.define_flags(flag_values)
  fixed = {f.name for f in learner if not f.metadata.get('flag', True)}
  assert set(flag_values) == set(config_lib.SETTINGS) - fixed | {'role', 'task'}


@pytest.mark.parametrize(
    'flag, named',
    [
        ('--policy_learning_rate=0', '--policy_learning_rate'),
        ('--d_learning_rate=nan', '--d_learning_rate'),
        ('--d_conditioning=side', '--d_conditioning'),
        ('--entropy_cost=-1', '--entropy_cost'),
        ('--discount=1.5', '--discount'),
        ('--reward_normalisation=popart', '--reward_normalisation'),
        ('--d_steps_per_policy_step=0', '--d_steps_per_policy_step'),
    ],
)
def test_a_bad_setting_of_the_update_names_its_flag(tmp_path, flag, named):
  with pytest.raises(config_lib.ConfigError, match=f'^{named}: '):
    _from_flags(tmp_path, flag)


def test_a_fixed_setting_is_named_as_a_field():
  with pytest.raises(config_lib.ConfigError, match=r"^Config\.learner\.algorithm='ppo'"):
    config_lib.LearnerConfig(algorithm='ppo')


def test_a_config_json_saved_before_the_nesting_reads_back(tmp_path):
  config = config_lib.validate(config_lib.from_dict(dict(SAVED_BEFORE_NESTING, root_dir=str(tmp_path))))
  assert config.learner.reward == 'spiral++' and config.learner.entropy_cost == 0.005
  assert config.learner.policy_learning_rate == 3e-4 and config.policy_learning_rate_decay == 'linear'
  assert config.brush_sizes == (1, 2, 4, 8, 12, 24) and config.batch_size == 16
  # Today's file has the same flat keys, plus the update's fixed settings and the flags added since that
  # run (whose defaults filled in above), and reads back equal.
  saved = config_lib.to_dict(config)
  assert set(saved) - set(SAVED_BEFORE_NESTING) - FLAGS_ADDED_SINCE == {
      f.name for f in dataclasses.fields(config_lib.LearnerConfig) if not f.metadata.get('flag', True)
  }
  assert config_lib.from_dict(saved) == config
  with pytest.raises(config_lib.ConfigError, match=r"\['learning_rate'\] are unknown"):
    config_lib.from_dict({'learning_rate': 1e-4})


def test_resume_and_export_read_such_a_run_directory(tmp_path):
  from spiral_tf import components  # pylint: disable=g-import-not-at-top  (TensorFlow: this test only)

  run = tmp_path / 'run'
  run.mkdir()
  (run / 'config.json').write_text(json.dumps(dict(SAVED_BEFORE_NESTING, root_dir=str(run))))
  config = components.load_config(str(run))
  assert config.learner.reward == 'spiral++' and config.root_dir == str(run)
  components.save_config(config, str(run))
  saved = json.loads((run / 'config.json').read_text())
  assert 'learner' not in saved and saved['policy_learning_rate'] == 3e-4  # Still flat.
  assert components.load_config(str(run)) == config


@pytest.mark.parametrize(
    'flag, value, named',
    [
        ('population_size', 0, 'population_size'),
        ('pbt_interval_steps', -1, 'pbt_interval_steps'),
        ('pbt_fitness', 'reward', 'pbt_fitness'),
        ('pbt_learning_rate_range', (3e-4, 1e-5), 'pbt_learning_rate_range'),
        ('pbt_entropy_cost_range', (0.0, 0.1), 'pbt_entropy_cost_range'),
        ('pbt_entropy_cost_range', (0.1,), 'pbt_entropy_cost_range'),
        ('discriminator_members', 'localhost:8000,localhost', 'discriminator_members'),
        ('shared_discriminator', True, 'shared_discriminator'),  # With strategy=multi_worker (below).
    ],
)
def test_a_bad_population_setting_names_its_flag(tmp_path, flag, value, named):
  extra = {'strategy': 'multi_worker', 'num_learner_workers': 2} if flag == 'shared_discriminator' else {}
  with pytest.raises(config_lib.ConfigError, match=f'^--{named}:'):
    config_lib.validate(config_lib.Config(root_dir=str(tmp_path), **{flag: value}, **extra))


def test_discriminator_members_are_a_comma_separated_list_of_servers(tmp_path):
  config = config_lib.Config(root_dir=str(tmp_path), discriminator_members='localhost:8000, 10.0.0.2:8001,')
  assert config_lib.validate(config).discriminator_member_addresses == ('localhost:8000', '10.0.0.2:8001')
  assert config_lib.Config(root_dir=str(tmp_path)).discriminator_member_addresses == ()


def test_a_host_s_population_members_are_distinct_indices_and_the_lead_is_who_runs_them_all(tmp_path):
  config = lambda **kw: config_lib.Config(root_dir=str(tmp_path), population_size=4, **kw)  # noqa: E731
  assert config_lib.validate(config()).population_member_indices == (0, 1, 2, 3)
  assert config().is_population_lead
  assert config_lib.validate(config(population_members='2, 3')).population_member_indices == (2, 3)
  assert not config(population_members='2,3').is_population_lead
  assert config(population_members='0', population_lead=True).is_population_lead
  for members, problem in (('1,x', 'must be member indices'), ('1,1', 'distinct'), ('4', 'between 0 and')):
    with pytest.raises(config_lib.ConfigError, match=f'^--population_members: .*{problem}'):
      config_lib.validate(config(population_members=members))
  with pytest.raises(config_lib.ConfigError, match='^--population_members: needs a population'):
    config_lib.validate(config_lib.Config(root_dir=str(tmp_path), population_members='0'))
  with pytest.raises(config_lib.ConfigError, match='^--population_lead: needs a population'):
    config_lib.validate(config_lib.Config(root_dir=str(tmp_path), population_lead=True))
  # A host other than the lead's serves the shared D from its own address, not loopback.
  shared = dict(population_members='2,3', shared_discriminator=True)
  with pytest.raises(config_lib.ConfigError, match='^--reverb_bind_address: 127.0.0.1 is loopback'):
    config_lib.validate(config(**shared))
  assert config_lib.validate(config(**shared, reverb_bind_address='10.0.0.2'))
  assert config_lib.validate(config(**shared, population_lead=True))


def test_pbt_fitness_auto_is_l2_for_a_conditional_run_and_l2_needs_a_target(tmp_path):
  conditional = config_lib.Config(root_dir=str(tmp_path), conditional=True)
  assert conditional.effective_pbt_fitness == 'l2'
  assert config_lib.Config(root_dir=str(tmp_path), conditional=False).effective_pbt_fitness == 'd_score'
  with pytest.raises(config_lib.ConfigError, match='^--pbt_fitness: l2 ranks reconstructions'):
    config_lib.validate(config_lib.Config(root_dir=str(tmp_path), conditional=False, pbt_fitness='l2'))
  assert conditional.pbt_ranges == {'policy_learning_rate': (1e-5, 3e-4), 'entropy_cost': (2e-3, 1e-1)}
