"""Every shipped config (configs/**/*.cfg) validates, alone and with docs/full_scale.md's overrides.

Each check runs `launch/train.py --role=actor` without `--reverb_address`: it parses the flagfile, builds
and validates the whole Config (raising on any bad value, naming the flag), and only then stops for want
of a server — so nothing trains, and TensorFlow is never imported. Also the checks those docs rely on:
what --tpu accepts, and the batch split over the replicas of the strategy the learner builds.
"""

import pathlib
import subprocess
import sys

import pytest

from spiral_tf import config as config_lib

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIGS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / 'configs').rglob('*.cfg'))
VALID = 'needs --reverb_address'  # Printed after the configuration validated.
# What a population's config says instead, also after it validated: its members are --role=all runs.
VALID_POPULATION = '--population_size > 1 runs with --role=all'


def _check(root_dir, *flags):
  result = subprocess.run(
      [sys.executable, str(ROOT / 'launch' / 'train.py'), *flags, '--role=actor', f'--root_dir={root_dir}'],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=120,
  )
  return result.returncode, result.stderr


def test_the_paper_configs_are_shipped():
  for name in ('celeba', 'celeba_unconditional', 'mnist', 'omniglot', 'mujoco'):
    assert f'configs/{name}.cfg' in CONFIGS


@pytest.mark.parametrize('config', CONFIGS)
def test_config_validates(config, tmp_path):
  code, stderr = _check(tmp_path, f'--flagfile={config}')
  valid = VALID in stderr or VALID_POPULATION in stderr
  assert code == 2 and valid and 'configuration error' not in stderr, stderr


# The overrides docs/full_scale.md gives for multi-host runs, the population loop and the paper's budgets.
FULL_SCALE_OVERRIDES = [
    (
        'configs/celeba.cfg',
        '--reverb_bind_address=0.0.0.0',
        '--reverb_port=8000',
        '--num_actors=2',
        '--envs_per_actor=16',
        '--evaluator',
    ),
    ('configs/celeba.cfg', '--reverb_bind_address=10.0.0.1', '--task=2', '--envs_per_actor=16'),
    ('configs/celeba.cfg', '--strategy=multi_worker'),
    ('configs/celeba.cfg', '--strategy=multi_worker', '--num_learner_workers=2'),
    ('configs/celeba.cfg', '--strategy=mirrored'),
    ('configs/celeba.cfg', '--strategy=tpu', '--tpu=local'),
    ('configs/celeba.cfg', '--strategy=tpu', '--tpu=grpc://10.0.0.3:8470'),
    (
        'configs/celeba.cfg',
        '--seed=3',
        '--policy_learning_rate=3e-5',
        '--entropy_cost=0.003',
        '--num_actors=4',
        '--envs_per_actor=16',
        '--max_frames=100000000',
        '--evaluator',
    ),
    ('configs/mnist.cfg', '--max_frames=25000000'),
]


@pytest.mark.parametrize('config_and_flags', FULL_SCALE_OVERRIDES, ids=lambda c: ' '.join(c))
def test_full_scale_overrides_validate(config_and_flags, tmp_path):
  config, *flags = config_and_flags
  code, stderr = _check(tmp_path, f'--flagfile={config}', *flags)
  assert code == 2 and VALID in stderr and 'configuration error' not in stderr, stderr


@pytest.mark.parametrize(
    'flag, named',
    [
        ('--batch_size=0', '--batch_size'),
        ('--reverb_bind_address=hostA', '--reverb_bind_address'),
        ('--episode_length=1', '--episode_length'),
        ('--tpu=local', '--tpu'),
    ],
)  # --tpu without --strategy=tpu.
def test_a_bad_override_of_a_paper_config_names_the_flag(flag, named, tmp_path):
  code, stderr = _check(tmp_path, '--flagfile=configs/celeba.cfg', flag)
  assert code == 2 and f'configuration error: {named}' in stderr and VALID not in stderr, stderr


@pytest.mark.parametrize(
    'tpu, ok',
    [
        ('', True),
        ('local', True),
        ('my-tpu', True),
        ('grpc://10.0.0.2:8470', True),
        ('grpc://[::1]:8470', True),
        ('grpc://10.0.0.2', False),
        ('http://10.0.0.2:8470', False),
        ('10.0.0.2:8470', False),
        ('my tpu', False),
    ],
)
def test_tpu_flag_accepts_a_name_a_grpc_address_or_local(tpu, ok, tmp_path):
  config = config_lib.Config(root_dir=str(tmp_path), strategy='tpu', tpu=tpu)
  if ok:
    assert config_lib.validate(config).tpu == tpu
  else:
    with pytest.raises(config_lib.ConfigError, match=r'^--tpu: .*TPU name, grpc://host:port or local'):
      config_lib.validate(config)


def test_tpu_flag_needs_the_tpu_strategy(tmp_path):
  with pytest.raises(config_lib.ConfigError, match=r'^--tpu: .*--strategy=mirrored'):
    config_lib.validate(config_lib.Config(root_dir=str(tmp_path), strategy='mirrored', tpu='local'))


@pytest.mark.parametrize('batch_size, replicas', [(64, 1), (64, 2), (64, 8), (63, 3), (64, 3), (8, 16)])
def test_batch_size_must_split_over_the_strategys_replicas(batch_size, replicas):
  # The learner passes strategy.num_replicas_in_sync (e.g. the GPU count under mirrored).
  config = config_lib.Config(batch_size=batch_size, strategy='mirrored')
  if batch_size % replicas == 0:
    config_lib.check_replicas(config, replicas)
  else:
    with pytest.raises(config_lib.ConfigError) as error:
      config_lib.check_replicas(config, replicas)
    assert str(error.value).startswith(
        f'--batch_size: {batch_size} is not divisible by the {replicas} ' 'replicas of --strategy=mirrored'
    )
