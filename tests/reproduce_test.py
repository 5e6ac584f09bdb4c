"""launch/reproduce.py keeps each export a run writes (export_history), so reports can score it later.

The exports here are the smallest directories the export format accepts (saved_model.pb + its JSON asset):
what is checked is the bookkeeping — one copy per learner step, never a half-copied one listed — not the
SavedModel (tests/export_test.py covers that).
"""
import json
import os

from launch import reproduce
from spiral_tf import components
from spiral_tf.inference import export_format


def _write_export(run, learner_step):
  export = components.export_dir(run)
  os.makedirs(os.path.join(export, 'assets'), exist_ok=True)
  with open(os.path.join(export, 'saved_model.pb'), 'wb') as f:
    f.write(b'step %d' % learner_step)
  with open(export_format.asset_path(export), 'w') as f:
    json.dump({'format': export_format.FORMAT, 'learner_step': learner_step}, f)


def test_each_learner_step_is_kept_once_oldest_first(tmp_path):
  run = str(tmp_path / 'run-seed0')
  reproduce.snapshot_exports([run])  # No export yet: nothing kept, no error.
  assert reproduce.export_history(run) == []
  for step in (120, 120, 7, 1500):  # Polled twice at step 120; a step below the last one still counts.
    _write_export(run, step)
    reproduce.snapshot_exports([run])
  history = reproduce.export_history(run)
  assert [step for step, _ in history] == [7, 120, 1500]
  for step, path in history:
    with open(os.path.join(path, 'saved_model.pb'), 'rb') as f:
      assert f.read() == b'step %d' % step  # The copy of that step's export, not a later one.


def test_a_partial_copy_is_not_listed_and_is_completed_by_the_next_poll(tmp_path):
  run = str(tmp_path / 'run-seed0')
  _write_export(run, 42)
  partial = os.path.join(run, reproduce.EXPORT_HISTORY, 'step_00000042.partial')
  os.makedirs(partial)  # A copy interrupted by the export being replaced under it.
  assert reproduce.export_history(run) == []
  reproduce.snapshot_exports([run])
  assert [step for step, _ in reproduce.export_history(run)] == [42] and not os.path.exists(partial)


def test_step_zero_is_not_kept(tmp_path):
  run = str(tmp_path / 'run-seed0')
  _write_export(run, 0)  # An export before any update (launch/export.py of a fresh run).
  reproduce.snapshot_exports([run])
  assert reproduce.export_history(run) == []
