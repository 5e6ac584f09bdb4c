"""Where the tests find the real datasets, and what they do on a fresh clone that has none.

The tests on the real MNIST, Omniglot and CelebA files read them from, in order:
  1. $SPIRAL_TEST_DATA_DIR, if set (set but empty, or without the files: the tests are skipped), else
  2. ../shared/data beside the repository (the development machines keep the data there).
A test whose dataset is absent is skipped with the reason (which files, where, how the place was chosen);
the loaders themselves are tested on small files in the real formats that the tests write
(tests/dataset_files.py), so a fresh clone without data still tests every loader.
$SPIRAL_TEST_REQUIRE_DATA=1 (set by .ci/run) turns such a skip into a failure, so CI cannot pass by not
finding the data.

Usage:
  root = real_data.require('mnist')           # pathlib.Path with root/'mnist'/..., or skips (fails in CI)
  root, reason = real_data.find('celeba')     # (None, why) when absent; never skips
"""

import os
import pathlib

import pytest

DIR_ENV = 'SPIRAL_TEST_DATA_DIR'
REQUIRE_ENV = 'SPIRAL_TEST_REQUIRE_DATA'
REPO = pathlib.Path(__file__).resolve().parent.parent
# The files each real-data test reads (the CelebA ones are the project's subset: docs/datasets.md).
FILES = {
    'mnist': (
        'mnist/train-images-idx3-ubyte.gz',
        'mnist/t10k-images-idx3-ubyte.gz',
        'mnist/train-labels-idx1-ubyte.gz',
        'mnist/t10k-labels-idx1-ubyte.gz',
    ),
    'omniglot': ('omniglot/images_background.zip', 'omniglot/images_evaluation.zip'),
    'celeba': ('celeba/img_align_celeba_subset.zip', 'celeba/list_eval_partition_subset.txt'),
}


def find(dataset, environ=None, repo=REPO):
  """(data root holding `dataset`'s files, None) or (None, the reason it is not there)."""
  if dataset not in FILES:
    raise ValueError(f'unknown dataset {dataset!r}; real_data.FILES knows {sorted(FILES)}')
  environ = os.environ if environ is None else environ
  if DIR_ENV in environ:
    if not environ[DIR_ENV]:
      return None, f'${DIR_ENV} is set but empty'
    root, origin = pathlib.Path(environ[DIR_ENV]).expanduser().resolve(), f'${DIR_ENV}'
  else:
    root, origin = pathlib.Path(repo).resolve().parent / 'shared' / 'data', f'../shared/data (no ${DIR_ENV})'
  missing = [f for f in FILES[dataset] if not (root / f).is_file()]
  if missing:
    return None, f'real {dataset} not found in {root} (from {origin}); missing: {", ".join(missing)}'
  return root, None


def require(dataset):
  """The data root holding `dataset`; skips the calling test (fails it under $SPIRAL_TEST_REQUIRE_DATA)."""
  root, reason = find(dataset)
  if root is None:
    if os.environ.get(REQUIRE_ENV, '') not in ('', '0'):
      pytest.fail(f'{reason} (and ${REQUIRE_ENV} is set: this run must test the real data)')
    pytest.skip(reason)
  return root
