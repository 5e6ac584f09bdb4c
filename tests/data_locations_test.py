"""Tests of spiral_tf/data/locations.py: data directory precedence and the error messages."""

import os

import pytest

from spiral_tf.data import locations


def test_data_dir_precedence(monkeypatch, tmp_path):
  monkeypatch.setenv('SPIRAL_DATA_DIR', str(tmp_path / 'from_env'))
  path, origin = locations.resolve_data_dir(str(tmp_path / 'from_flag'))
  assert path == str(tmp_path / 'from_flag') and origin == '--data_dir'
  path, origin = locations.resolve_data_dir(None)
  assert path == str(tmp_path / 'from_env') and 'SPIRAL_DATA_DIR' in origin
  monkeypatch.delenv('SPIRAL_DATA_DIR')
  monkeypatch.setenv('HOME', str(tmp_path / 'home'))
  path, origin = locations.resolve_data_dir(None)
  assert path == os.path.join(str(tmp_path / 'home'), 'spiral_data') and 'default' in origin


def test_relative_data_dir_becomes_absolute(monkeypatch, tmp_path):
  monkeypatch.chdir(tmp_path)
  assert locations.resolve_data_dir('data')[0] == str(tmp_path / 'data')


def test_missing_files_message_says_what_where_and_how():
  error = locations.missing_files(
      'MNIST',
      '/x/mnist',
      '--data_dir',
      ['a.gz', 'b.gz'],
      'download them from http://example',
      missing=['b.gz'],
  )
  assert isinstance(error, FileNotFoundError)
  message = str(error)
  for part in (
      'MNIST',
      'a.gz',
      'b.gz',
      '/x/mnist',
      '--data_dir',
      'SPIRAL_DATA_DIR',
      'Missing: b.gz',
      'http://example',
      'configs/strokes.cfg',
  ):
    assert part in message


def test_corrupt_error_names_the_file():
  error = locations.CorruptDataError('/x/file.zip', 'bad header')
  assert isinstance(error, ValueError) and error.path == '/x/file.zip'
  assert str(error).startswith('/x/file.zip: bad header')
  with pytest.raises(locations.CorruptDataError, match='file.zip'):
    raise error


def test_check_split_names_the_splits():
  locations.check_split('MNIST', 'test', {'train': 'a', 'test': 'b'})
  with pytest.raises(ValueError, match=r"^MNIST split must be one of \('train', 'test'\), got 'val'$"):
    locations.check_split('MNIST', 'val', {'train': 'a', 'test': 'b'})
