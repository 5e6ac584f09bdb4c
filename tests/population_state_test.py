"""spiral_tf/population/population.py without processes: population.json, a member's status and fitness."""

import json
import os
import subprocess
import sys

import pytest

from spiral_tf import config as config_lib
from spiral_tf import run_dir
from spiral_tf.population import pbt
from spiral_tf.population import population

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(tmp_path, **kw):
  return config_lib.Config(root_dir=str(tmp_path), population_size=3, pbt_interval_steps=50, seed=7, **kw)


def test_a_new_population_draws_its_values_and_a_resumed_one_keeps_the_saved_ones(tmp_path):
  path = run_dir.PopulationDir(tmp_path).state_file
  state = population.State.load_or_create(path, _config(tmp_path))
  assert state.hyperparameters == pbt.initial(3, _config(tmp_path).pbt_ranges, seed=7)
  assert (state.num_members, state.seed, state.next_round_step) == (3, 7, 50)
  state.hyperparameters[1] = {'policy_learning_rate': 2e-5, 'entropy_cost': 0.05}
  state.next_round_step = 150
  state.save(path)
  # Other ranges on resume: the saved values win; the saved round is kept.
  again = population.State.load_or_create(path, _config(tmp_path, pbt_entropy_cost_range=(0.01, 0.02)))
  assert again == state


def test_resuming_with_another_population_size_or_a_damaged_file_is_an_error_naming_it(tmp_path):
  path = run_dir.PopulationDir(tmp_path).state_file
  population.State.load_or_create(path, _config(tmp_path)).save(path)
  with pytest.raises(config_lib.ConfigError, match=r'^--population_size: 4, but the population in .* has 3'):
    population.State.load_or_create(path, config_lib.Config(root_dir=str(tmp_path), population_size=4))
  with open(path, 'w') as f:
    f.write('{"num_members": 3')
  with pytest.raises(config_lib.ConfigError, match='population.json: not a population state'):
    population.State.load_or_create(path, _config(tmp_path))
  with open(path, 'w') as f:
    json.dump({'members': 3}, f)
  with pytest.raises(config_lib.ConfigError, match='population.json: not a population state'):
    population.State.load_or_create(path, _config(tmp_path))


def test_fitness_is_minus_l2_or_the_d_score_and_absent_until_the_status_says_it(tmp_path):
  member = run_dir.RunDir(tmp_path / 'member')
  assert population.read_status(member) is None
  (tmp_path / 'member').mkdir()
  with open(member.status_file, 'w') as f:
    json.dump(
        {'learner_step': 40, 'frames': 1280, 'scalars': {'l2_to_target': 0.25, 'd_score_fake': -1.5}}, f
    )
  status = population.read_status(member)
  assert status['learner_step'] == 40
  assert population.fitness_value(status, 'l2') == -0.25
  assert population.fitness_value(status, 'd_score') == -1.5
  assert population.fitness_value({'learner_step': 0, 'scalars': {}}, 'l2') is None
  assert population.fitness_value({'learner_step': 0, 'scalars': {}}, 'd_score') is None


def _member(directory, i, conditional, scalars):
  member = directory.member(i)
  os.makedirs(member.root)
  with open(member.config_file, 'w') as f:
    json.dump(config_lib.to_dict(config_lib.Config(root_dir=member.root, conditional=conditional)), f)
  with open(member.status_file, 'w') as f:
    json.dump({'learner_step': 10, 'frames': 320, 'scalars': scalars}, f)


def test_the_fittest_member_is_the_one_with_the_best_latest_fitness_by_its_own_measure(tmp_path):
  directory = run_dir.PopulationDir(tmp_path)
  with pytest.raises(ValueError, match='not a population directory'):
    population.fittest(str(tmp_path))
  population.State(num_members=4, seed=0, hyperparameters=[{}] * 4).save(directory.state_file)
  with pytest.raises(ValueError, match='no member has logged a fitness yet'):
    population.fittest(str(tmp_path))
  _member(directory, 0, True, {'l2_to_target': 0.30, 'd_score_fake': 9.0})
  _member(directory, 1, True, {'l2_to_target': 0.10, 'd_score_fake': -9.0})  # The lowest l2.
  _member(directory, 2, True, {'d_score_fake': 5.0})  # No l2 logged: not ranked.
  assert population.fittest(str(tmp_path)) == 1  # Member 3 has no directory at all.
  # An unconditional population ranks by D's score.
  other = run_dir.PopulationDir(tmp_path / 'unconditional')
  population.State(num_members=2, seed=0, hyperparameters=[{}] * 2).save(other.state_file)
  _member(other, 0, False, {'d_score_fake': -2.0})
  _member(other, 1, False, {'d_score_fake': 1.5})
  assert population.fittest(other.root) == 1


def test_export_member_needs_a_population_directory(tmp_path):
  (tmp_path / 'run').mkdir()
  result = subprocess.run(
      [
          sys.executable,
          os.path.join(ROOT, 'launch', 'export.py'),
          f'--root_dir={tmp_path / "run"}',
          '--member=best',
      ],
      capture_output=True,
      text=True,
      timeout=120,
  )
  assert result.returncode == 1
  assert 'export.py: error: --member=best: ' in result.stderr
  assert 'is not a population directory (no population.json)' in result.stderr
