"""spiral_tf/files.py: an atomic write replaces the file whole, or not at all."""

import json
import os

import pytest

from spiral_tf import files


def test_a_finished_write_replaces_the_file_with_the_usual_permissions(tmp_path):
  out = tmp_path / 'sub' / 'config.json'  # The directory is made.
  with files.atomic_output(out) as tmp:
    assert os.path.dirname(tmp) == str(out.parent) and tmp.endswith('.tmp.json')
    with open(tmp, 'w') as f:
      f.write('new')
  assert out.read_text() == 'new'
  assert sorted(os.listdir(out.parent)) == ['config.json']
  mask = os.umask(0)
  os.umask(mask)
  assert out.stat().st_mode & 0o777 == 0o666 & ~mask  # Not mkstemp's 0600.


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path):
  out = tmp_path / 'cache.npy'
  out.write_bytes(b'old')
  for error in (RuntimeError('interrupted'), KeyboardInterrupt()):
    with pytest.raises(type(error)):
      with files.atomic_output(out) as tmp:
        with open(tmp, 'wb') as f:
          f.write(b'partial')
        raise error
  assert out.read_bytes() == b'old'
  assert sorted(os.listdir(tmp_path)) == ['cache.npy']


def test_write_json_reads_back_and_an_unserialisable_value_keeps_the_old_file(tmp_path):
  path = tmp_path / 'state.json'
  assert files.write_json(path, {'step': 3, 'values': [0.5, None]}) == str(path)
  assert json.loads(path.read_text()) == {'step': 3, 'values': [0.5, None]}
  with pytest.raises(TypeError):
    files.write_json(path, {'step': object()})
  assert json.loads(path.read_text()) == {'step': 3, 'values': [0.5, None]}
  assert os.listdir(tmp_path) == ['state.json']
