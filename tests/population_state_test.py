"""spiral_tf/population/population.py without processes: population.json, a member's status and fitness."""

import json
import os
import subprocess
import sys
import time

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


# A member's `launch/train.py --role=all` stood in for: records its command line, sleeps until SIGTERM.
STAND_IN = """
import json, os, signal, sys, time
root = [a.split('=', 1)[1] for a in sys.argv if a.startswith('--root_dir=')][0]
os.makedirs(root, exist_ok=True)
with open(os.path.join(root, 'argv.json'), 'w') as f:
  json.dump(sys.argv[1:], f)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
time.sleep(120)
"""


def _fake_checkpoint(member, step):
  os.makedirs(member.checkpoints, exist_ok=True)
  for suffix in ('index', 'data-00000-of-00001'):
    with open(os.path.join(member.checkpoints, f'ckpt-{step}.{suffix}'), 'w') as f:
      f.write(f'{member.root} at {step}')
  with open(os.path.join(member.checkpoints, 'checkpoint'), 'w') as f:
    f.write(f'model_checkpoint_path: "ckpt-{step}"\n')


def test_across_hosts_the_lead_asks_the_member_s_host_copies_and_the_lead_writes_the_round_once(tmp_path):
  train_py = tmp_path / 'stand_in.py'
  train_py.write_text(STAND_IN)
  common = dict(root_dir=str(tmp_path / 'pop'), population_size=2, pbt_interval_steps=10, conditional=True)
  lead_config = config_lib.Config(**common, population_members='0', population_lead=True)
  host_config = config_lib.Config(**common, population_members='1')
  lead = population.Population(str(train_py), [], lead_config)
  host = population.Population(str(train_py), [], host_config)
  directory = lead.dir
  lead.state = lead._load_state()  # pylint: disable=protected-access
  host.state = host._load_state()  # pylint: disable=protected-access  # The lead's file.
  assert host.state == lead.state
  for i, l2 in ((0, 0.05), (1, 0.5)):  # Member 0 is fitter.
    os.makedirs(directory.member(i).root)
    with open(directory.member(i).status_file, 'w') as f:
      json.dump({'learner_step': 10, 'frames': 320, 'scalars': {'l2_to_target': l2}}, f)
    _fake_checkpoint(directory.member(i), 10 * (i + 1))
  lead._poll_scores()  # pylint: disable=protected-access
  assert lead._round_due()  # pylint: disable=protected-access
  lead._round()  # pylint: disable=protected-access
  # Decided and asked; not written down: member 1's host has not copied yet.
  request = json.loads(open(directory.copy_request(1)).read())
  assert (request['step'], request['source']) == (10, 0)
  saved = json.loads(open(directory.state_file).read())
  assert saved['pending']['step'] == 10 and saved['next_round_step'] == 20
  assert saved['hyperparameters'][1] == request['hyperparameters']  # Saved before it was asked.
  assert pbt.Lineage(directory.lineage).read() == []
  lead._finish_round()  # pylint: disable=protected-access
  assert lead.state.pending is not None  # Still waiting.
  try:
    host._answer_copy_requests()  # pylint: disable=protected-access
    assert not os.path.exists(directory.copy_request(1))
    answer = json.loads(open(directory.copy_answer(1)).read())
    assert answer == {'step': 10, 'source': 0, 'checkpoint': 'ckpt-10'}
    with open(os.path.join(directory.member(1).checkpoints, 'ckpt-10.index')) as f:
      assert f.read() == f'{directory.member(0).root} at 10'  # Member 0's checkpoint, in member 1's place.
    # Member 1 started again with the values the lead saved.
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(directory.member(1).root, 'argv.json')):
      assert time.monotonic() < deadline, 'member 1 was not started again'
      time.sleep(0.1)
    argv = json.loads(open(os.path.join(directory.member(1).root, 'argv.json')).read())
    values = request['hyperparameters']
    assert f'--policy_learning_rate={values["policy_learning_rate"]!r}' in argv
    assert f'--entropy_cost={values["entropy_cost"]!r}' in argv
    assert '--population_members=' in argv and '--population_size=1' in argv
  finally:
    host._stop([1])  # pylint: disable=protected-access
  pending_state = open(directory.state_file).read()
  lead._finish_round()  # pylint: disable=protected-access
  (line,) = pbt.Lineage(directory.lineage).read()
  assert (line['step'], line['member'], line['copied_from'], line['checkpoint']) == (10, 1, 0, 'ckpt-10')
  assert json.loads(open(directory.state_file).read())['pending'] is None
  assert not os.path.exists(directory.copy_answer(1))
  # A lead that died after the lineage line and before saving the state finishes the round without a
  # second line.
  with open(directory.state_file, 'w') as f:
    f.write(pending_state)
  with open(directory.copy_answer(1), 'w') as f:
    json.dump(answer, f)
  again = population.Population(str(train_py), [], lead_config)
  again.state = again._load_state()  # pylint: disable=protected-access
  again._finish_round()  # pylint: disable=protected-access
  assert len(pbt.Lineage(directory.lineage).read()) == 1 and again.state.pending is None
