"""The console of a real `--role=all` run: the plan and the learner's lines, nothing else.

The run is tests/train_fixtures.py's smoke run. Its first part asks for 3 actors × 2 environments with
`--local_actors=2` (the same plan on any host): the plan packs the 6 environments into 2 processes × 3, is
printed before anything starts, and each actor steps its own 3 (seeded apart). Its console (stdout and
stderr) holds only supervisor and learner lines — no TensorFlow C++ lines, no gym banner, no absl INFO lines
from the SavedModel writer — and those lines are in `root_dir/logs/learner.log`. Resumed with
`--verbosity=0`, the same run shows them on the console again.
"""

import re

import pytest

import train_fixtures
from train_fixtures import FIRST_STEPS
from train_fixtures import RESUMED_STEPS

GYM = 'Gym has been unmaintained since 2022'
TF_LOG = re.compile(r'^([IWEF]\d{4} |\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] |INFO:)', re.M)


@pytest.fixture(scope='module')
def runs():
  run = train_fixtures.smoke_run()
  return run.root, run.first, run.second


def test_plan_is_printed_first_and_every_environment_runs(runs):
  root, quiet, _ = runs
  first = quiet.stdout.splitlines()[0]
  assert re.match(
      r'\[supervisor\] plan: 3 actors × 2 envs requested; this host \(\d+ cores?, [\d.]+ GiB, '
      r'[\d.]+ GiB available\): 2 actor processes × 3 envs \[--local_actors=2\]; memory ≈',
      first,
  )
  assert len(re.findall(r'\[supervisor\] started actor-\d', quiet.stdout)) == 2
  logs = [(root / 'logs' / f'actor-{i}.log').read_text() for i in range(2)]
  assert "[actor 0] 3 environments (the run's 0–2)" in logs[0]
  assert "[actor 1] 3 environments (the run's 3–5)" in logs[1]


def test_console_shows_only_supervisor_and_learner_lines(runs):
  _, quiet, _ = runs
  lines = (quiet.stdout + quiet.stderr).splitlines()
  others = [line for line in lines if not line.startswith(('[supervisor] ', '[learner] '))]
  assert others == [], others
  assert not TF_LOG.search(quiet.stdout + quiet.stderr)
  assert GYM not in quiet.stdout + quiet.stderr
  # The first signs of life: the expected step time first, then the learner's own lines.
  learner = [line for line in lines if line.startswith('[learner] ')]
  assert learner[0].startswith('[learner] on a CPU a learner step takes ≈ ')
  assert any(line.startswith('[learner] step 1 ') for line in learner)
  assert f'stopped: reached --max_learner_steps={FIRST_STEPS}' in quiet.stdout


def test_the_noise_is_in_the_learners_log(runs):
  root, quiet, _ = runs
  log = (root / 'logs' / 'learner.log').read_text()
  assert GYM in log
  assert re.search(r'^I\d{4} .* builder_impl\.py:\d+\] Assets written to', log, re.M)  # SavedModel INFO.
  assert re.search(r'^\d{4}-\d\d-\d\d .*: E .*Unable to register cu', log, re.M)  # TF C++ start-up.
  for line in quiet.stdout.splitlines():  # Everything shown is in the log too.
    if line.startswith('[learner] '):
      assert line in log


def test_verbosity_brings_the_noise_back(runs):
  _, _, verbose = runs
  both = verbose.stdout + verbose.stderr
  assert GYM in both
  assert re.search(r'Assets written to', both)
  # --verbosity=0 also turns TensorFlow's C++ INFO lines on (TF_CPP_MIN_LOG_LEVEL=0).
  assert re.search(r'^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: I ', both, re.M)
  assert f'stopped: reached --max_learner_steps={RESUMED_STEPS}' in verbose.stdout
