"""spiral_tf/population/checkpoints.py: a member's checkpoints replaced by the source's latest complete one,
checked by restoring with TensorFlow's own reader (tf.train.latest_checkpoint, Checkpoint.restore)."""

import os

import pytest
import tensorflow as tf

from spiral_tf.population import checkpoints


def _save(directory, value, times=1, step=None):
  variable = tf.Variable(value, dtype=tf.float32)
  counter = tf.Variable(0 if step is None else step, dtype=tf.int64)
  manager = tf.train.CheckpointManager(
      tf.train.Checkpoint(v=variable, step=counter), directory, max_to_keep=3
  )
  for i in range(times):
    variable.assign(value + i)
    counter.assign_add(1)
    manager.save()
  return manager


def _restore(directory):
  variable, counter = tf.Variable(0.0), tf.Variable(0, dtype=tf.int64)
  tf.train.Checkpoint(v=variable, step=counter).restore(
      tf.train.latest_checkpoint(directory)
  ).assert_consumed()
  return float(variable.numpy()), int(counter.numpy())


def test_the_copy_restores_the_source_s_latest_state_and_replaces_the_destination_s(tmp_path):
  source, destination = str(tmp_path / 'a' / 'checkpoints'), str(tmp_path / 'b' / 'checkpoints')
  _save(source, 10.0, times=4)  # Keeps ckpt-2..4; the latest holds v = 13, step 4.
  _save(destination, -1.0, times=2)
  path = checkpoints.copy_latest(source, destination)
  assert path == os.path.join(destination, 'ckpt-4')
  assert tf.train.latest_checkpoint(destination) == path
  assert _restore(destination) == (13.0, 4)
  # Only the copied checkpoint is there: nothing of the destination's own, nothing staged, no '.old'.
  assert sorted(os.listdir(destination)) == ['checkpoint', 'ckpt-4.data-00000-of-00001', 'ckpt-4.index']
  assert sorted(os.listdir(tmp_path / 'b')) == ['checkpoints']
  assert _restore(source) == (13.0, 4)  # The source is untouched.


def test_a_save_in_progress_is_not_copied_only_the_checkpoint_the_index_names(tmp_path):
  source, destination = str(tmp_path / 'a'), str(tmp_path / 'b')
  _save(source, 1.0, times=2)  # ckpt-2 (v = 2) is named by the index.
  # A save of ckpt-3 under way: its data file is written, the index not yet updated.
  with open(os.path.join(source, 'ckpt-3.data-00000-of-00001'), 'wb') as f:
    f.write(b'half')
  checkpoints.copy_latest(source, destination)
  assert _restore(destination) == (2.0, 2)
  assert not os.path.exists(os.path.join(destination, 'ckpt-3.data-00000-of-00001'))


def test_the_copy_takes_the_destination_s_place_when_it_had_none(tmp_path):
  source, destination = str(tmp_path / 'a'), str(tmp_path / 'new' / 'member' / 'checkpoints')
  _save(source, 5.0, step=40)
  checkpoints.copy_latest(source, destination)
  assert _restore(destination) == (5.0, 41)


def test_nothing_to_copy_is_an_error_naming_the_source_and_the_destination_is_kept(tmp_path):
  source, destination = str(tmp_path / 'a'), str(tmp_path / 'b')
  _save(destination, 7.0)
  with pytest.raises(checkpoints.CheckpointCopyError, match=f'{source}: no checkpoint to copy'):
    checkpoints.copy_latest(source, destination)
  _save(source, 1.0)
  os.remove(os.path.join(source, 'ckpt-1.index'))  # Deleted by the source's manager, each time we look.
  with pytest.raises(checkpoints.CheckpointCopyError, match='deleted during each of 3 copies'):
    checkpoints.copy_latest(source, destination)
  assert _restore(destination) == (7.0, 1)
  assert sorted(os.listdir(tmp_path)) == ['a', 'b']  # No staging directory left behind.
