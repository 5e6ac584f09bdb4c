"""tests/real_data.py: where the real datasets are looked for, and skip or failure when they are absent."""

import subprocess
import sys

import pytest

import real_data


def _place(root, dataset):
  for name in real_data.FILES[dataset]:
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_bytes(b'')


def test_sibling_shared_data_is_found_without_the_variable(tmp_path):
  repo = tmp_path / 'clone'
  repo.mkdir()
  root, reason = real_data.find('mnist', environ={}, repo=repo)
  assert root is None and str(tmp_path / 'shared' / 'data') in reason and '../shared/data' in reason
  assert 'mnist/t10k-labels-idx1-ubyte.gz' in reason
  _place(tmp_path / 'shared' / 'data', 'mnist')
  assert real_data.find('mnist', environ={}, repo=repo) == (tmp_path / 'shared' / 'data', None)
  root, reason = real_data.find('celeba', environ={}, repo=repo)  # another dataset is not there
  assert root is None and 'img_align_celeba_subset.zip' in reason


def test_the_variable_overrides_the_sibling_folder(tmp_path):
  repo = tmp_path / 'clone'
  repo.mkdir()
  _place(tmp_path / 'shared' / 'data', 'omniglot')
  elsewhere = tmp_path / 'elsewhere'
  root, reason = real_data.find('omniglot', environ={real_data.DIR_ENV: str(elsewhere)}, repo=repo)
  assert root is None and str(elsewhere) in reason and real_data.DIR_ENV in reason
  root, reason = real_data.find('omniglot', environ={real_data.DIR_ENV: ''}, repo=repo)
  assert root is None and 'empty' in reason
  _place(elsewhere, 'omniglot')
  assert real_data.find('omniglot', environ={real_data.DIR_ENV: str(elsewhere)}, repo=repo) == (
      elsewhere,
      None,
  )
  with pytest.raises(ValueError, match='cifar'):
    real_data.find('cifar', environ={})


@pytest.mark.parametrize('required, outcome', [('', '1 skipped'), ('1', '1 failed')])
def test_absent_data_skips_with_the_reason_or_fails_in_ci(tmp_path, required, outcome):
  test = tmp_path / 'uses_real_mnist_test.py'
  test.write_text('import real_data\n\ndef test_it():\n  real_data.require("mnist")\n')
  env = {
      'PATH': '/usr/bin:/bin',
      'PYTHONPATH': str(real_data.REPO / 'tests'),
      real_data.DIR_ENV: str(tmp_path / 'empty'),
      real_data.REQUIRE_ENV: required,
  }
  result = subprocess.run(
      [sys.executable, '-m', 'pytest', '-q', '-rs', '-p', 'no:cacheprovider', str(test)],
      cwd=tmp_path,
      env=env,
      capture_output=True,
      text=True,
      timeout=120,
  )
  assert outcome in result.stdout, result.stdout + result.stderr
  assert f'real mnist not found in {tmp_path / "empty"}' in result.stdout
