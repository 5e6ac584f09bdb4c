"""A real population (`launch/train.py --population_size=3`, configs/smoke.cfg): PBT copies, kills, resume.

Three members of one actor process × 2 environments each train to RUN_STEPS with a PBT round every
INTERVAL learner steps, then the same command resumes them to RESUMED_STEPS (before the next round) while
one member's learner is killed. Checked from what the run leaves on disk: the lineage, population.json,
each member's config.json and status.json, and the lines its learner and supervisor wrote (which
checkpoint it resumed from, at what step). About 9 TensorFlow processes per run on 2 cores: a few minutes
for the file.
"""

import json
import os
import re
import signal
import time

import pytest

import reliability_fixtures
from spiral_tf import config as config_lib
from spiral_tf import run_dir
from spiral_tf.population import pbt
import train_fixtures

# One round in the first run (at INTERVAL); the resumed run ends before the next one (2 × INTERVAL).
MEMBERS, INTERVAL, RUN_STEPS, RESUMED_STEPS = 3, 6, 10, 11
FLAGS = (
    f'--population_size={MEMBERS}',
    f'--pbt_interval_steps={INTERVAL}',
    '--num_actors=1',
    '--envs_per_actor=2',
    '--local_actors=1',
    '--max_minutes=15',
    '--checkpoint_every_minutes=10',  # Checkpoints come from the PBT interval (and the stops).
    '--log_every_seconds=1',
)
RESUMED_FROM = re.compile(r'\[learner\] resumed from (\S+): step (\d+)')
STARTED_LEARNER = re.compile(r'\[supervisor\] started learner \(pid (\d+)\)')
TIMEOUT_S = 900


def _population(root, log, *flags):
  return reliability_fixtures.Watched(
      [*train_fixtures.TRAIN, f'--root_dir={root}', *FLAGS, *flags], log, cwd=train_fixtures.ROOT
  )


def _read(path):
  with open(path) as f:
    return f.read()


def _status_step(member):
  with open(member.status_file) as f:
    return json.load(f)['learner_step']


@pytest.fixture(scope='module')
def population(tmp_path_factory):
  """Runs the population to RUN_STEPS, then resumes it to RESUMED_STEPS killing member 1's learner."""
  tmp = tmp_path_factory.mktemp('population')
  root = tmp / 'pop'
  first = _population(root, tmp / 'first.log', f'--max_learner_steps={RUN_STEPS}')
  try:
    assert first.wait(TIMEOUT_S) == 0, first.tail()
  finally:
    first.kill()
  directory = run_dir.PopulationDir(root)
  after_first = {
      'lineage': pbt.Lineage(directory.lineage).read(),
      'state': json.loads(_read(directory.state_file)),
      'member_logs': [_read(directory.log(i)) for i in range(MEMBERS)],
  }
  member_log = directory.log(1)
  offset = os.path.getsize(member_log)
  second = _population(root, tmp / 'second.log', f'--max_learner_steps={RESUMED_STEPS}')
  try:
    deadline, killed = time.monotonic() + TIMEOUT_S / 2, None
    while killed is None and time.monotonic() < deadline:  # Member 1's learner of the resumed run.
      found = STARTED_LEARNER.findall(_read(member_log)[offset:])
      if found and reliability_fixtures.alive(int(found[0]), 'train.py'):
        killed = int(found[0])
        os.kill(killed, signal.SIGKILL)
      time.sleep(0.2)
    assert killed, f'member 1 never started a learner:\n{second.tail()}'
    assert second.wait(TIMEOUT_S) == 0, second.tail()
  finally:
    second.kill()
  return dict(directory=directory, first=first, second=second, after_first=after_first, killed=killed)


def test_the_worst_member_copies_a_top_member_s_checkpoint_and_perturbed_hyperparameters(population):
  directory, lineage = population['directory'], population['after_first']['lineage']
  ranges = config_lib.Config().pbt_ranges
  initial = pbt.initial(MEMBERS, ranges, seed=0)  # What the population drew at its start (--seed=0).
  assert population['after_first']['state']['num_members'] == MEMBERS
  assert [line['step'] for line in lineage] == [INTERVAL]
  (line,) = lineage
  fitness = {int(m): f for m, f in line['fitness'].items()}
  assert sorted(fitness) == list(range(MEMBERS)) and None not in fitness.values()
  # quarter(3) = 1: the worst copies the best.
  assert line['member'] == min(fitness, key=fitness.get)
  assert line['copied_from'] == max(fitness, key=fitness.get)
  for name, value in line['hyperparameters'].items():
    ratio = value / initial[line['copied_from']][name]
    low, high = ranges[name]
    assert min(abs(ratio - 0.8), abs(ratio - 1.25)) < 1e-9 or value in (low, high), (name, ratio)
  # The member resumed from the copy: its learner restored the source's checkpoint step.
  member = directory.member(line['member'])
  resumed = RESUMED_FROM.findall(population['after_first']['member_logs'][line['member']])
  copied_step = int(line['checkpoint'].split('-')[1])
  assert INTERVAL <= copied_step <= RUN_STEPS
  assert (os.path.join(member.checkpoints, line['checkpoint']), str(copied_step)) == resumed[0]
  # It trained on with the new values (its config.json), which population.json keeps for a resume.
  state = population['after_first']['state']
  assert state['hyperparameters'][line['member']] == line['hyperparameters']
  others = [i for i in range(MEMBERS) if i != line['member']]
  assert all(state['hyperparameters'][i] == initial[i] for i in others)
  saved = json.loads(_read(member.config_file))
  assert saved['policy_learning_rate'] == pytest.approx(line['hyperparameters']['policy_learning_rate'])
  assert saved['entropy_cost'] == pytest.approx(line['hyperparameters']['entropy_cost'])


def test_every_member_reaches_the_limit_and_resumes_from_its_own_checkpoint(population):
  directory = population['directory']
  text = population['second'].text()
  assert f'{MEMBERS} members in {directory.root}; PBT every {INTERVAL} steps; resuming after 1 PBT' in text
  for i in range(MEMBERS):
    member = directory.member(i)
    assert _status_step(member) == RESUMED_STEPS
    # Every member's resumed run started from its own checkpoint at RUN_STEPS.
    log = _read(directory.log(i))[len(population['after_first']['member_logs'][i]) :]
    path, step = RESUMED_FROM.findall(log)[0]
    assert (os.path.dirname(path), int(step)) == (member.checkpoints, RUN_STEPS)


def test_the_resumed_run_keeps_the_lineage_the_values_and_the_next_round(population):
  directory, first = population['directory'], population['after_first']
  assert pbt.Lineage(directory.lineage).read() == first['lineage']
  state = json.loads(_read(directory.state_file))
  assert state == first['state']
  assert state['next_round_step'] == 2 * INTERVAL
  (line,) = first['lineage']
  assert state['hyperparameters'][line['member']] == line['hyperparameters']


def test_a_member_whose_learner_is_killed_is_started_again_from_its_checkpoint(population):
  text = population['second'].text()
  assert re.search(r'\[population\] member 1 exited with code -?\d+; restarting it', text), text[-3000:]
  assert len(re.findall(r'\[population\] started member 1 ', text)) >= 2
  assert not reliability_fixtures.alive(population['killed'], 'train.py')
