"""Every shipped config (configs/**/*.cfg) validates, alone and with docs/full_scale.md's overrides.

Each check runs `launch/train.py --role=actor` without `--reverb_address`: it parses the flagfile, builds
and validates the whole Config (raising on any bad value, naming the flag), and only then stops for want
of a server — so nothing trains, and TensorFlow is never imported.
"""
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIGS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / 'configs').rglob('*.cfg'))
VALID = 'needs --reverb_address'  # Printed after the configuration validated.


def _check(root_dir, *flags):
  result = subprocess.run([sys.executable, str(ROOT / 'launch' / 'train.py'), *flags, '--role=actor',
                           f'--root_dir={root_dir}'], cwd=ROOT, capture_output=True, text=True, timeout=120)
  return result.returncode, result.stderr


def test_the_paper_configs_are_shipped():
  for name in ('celeba', 'celeba_unconditional', 'mnist', 'omniglot', 'mujoco'):
    assert f'configs/{name}.cfg' in CONFIGS


@pytest.mark.parametrize('config', CONFIGS)
def test_config_validates(config, tmp_path):
  code, stderr = _check(tmp_path, f'--flagfile={config}')
  assert code == 2 and VALID in stderr and 'configuration error' not in stderr, stderr


# The overrides docs/full_scale.md gives for multi-host runs, the population loop and the paper's budgets.
FULL_SCALE_OVERRIDES = [
    ('configs/celeba.cfg', '--reverb_bind_address=0.0.0.0', '--reverb_port=8000', '--num_actors=2',
     '--envs_per_actor=16', '--evaluator'),
    ('configs/celeba.cfg', '--reverb_bind_address=10.0.0.1', '--task=2', '--envs_per_actor=16'),
    ('configs/celeba.cfg', '--strategy=multi_worker'),
    ('configs/celeba.cfg', '--strategy=mirrored'),
    ('configs/celeba.cfg', '--seed=3', '--policy_learning_rate=3e-5', '--entropy_cost=0.003',
     '--num_actors=4', '--envs_per_actor=16', '--max_frames=100000000', '--evaluator'),
    ('configs/mnist.cfg', '--max_frames=25000000'),
]


@pytest.mark.parametrize('config_and_flags', FULL_SCALE_OVERRIDES, ids=lambda c: ' '.join(c))
def test_full_scale_overrides_validate(config_and_flags, tmp_path):
  config, *flags = config_and_flags
  code, stderr = _check(tmp_path, f'--flagfile={config}', *flags)
  assert code == 2 and VALID in stderr and 'configuration error' not in stderr, stderr


@pytest.mark.parametrize('flag, named', [('--batch_size=0', '--batch_size'),
                                         ('--reverb_bind_address=hostA', '--reverb_bind_address'),
                                         ('--episode_length=1', '--episode_length')])
def test_a_bad_override_of_a_paper_config_names_the_flag(flag, named, tmp_path):
  code, stderr = _check(tmp_path, '--flagfile=configs/celeba.cfg', flag)
  assert code == 2 and f'configuration error: {named}' in stderr and VALID not in stderr, stderr
