"""launch/reproduce.py keeps each export a run writes (export_history), so reports can score it later.

The exports here are the smallest directories the export format accepts (saved_model.pb + its JSON asset):
what is checked is the bookkeeping — one copy per learner step, never a half-copied one listed — not the
SavedModel (tests/export_test.py covers that).

It also keeps what a report needs of a run whose directory is gone (a seed trained in an earlier session):
results.json's entry and curves/<run>.json stand in for it, and only for it.
"""

import json
import os

from absl import flags
from absl.testing import flagsaver
import pytest

from launch import reproduce
from spiral_tf import components
from spiral_tf import dashboard
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


@pytest.fixture
def report_dirs(tmp_path):
  """--runs_dir and --out under tmp_path, r1's seeds 0 and 1, 500 held-out targets."""
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
  with flagsaver.flagsaver(
      runs_dir=str(tmp_path / 'runs'), out=str(tmp_path / 'out'), seeds=['0', '1'], num_targets=500
  ):
    yield tmp_path


def _entry(greedy):
  return {'frames': 1000080, 'learner_steps': 6945, 'heldout': {'greedy': {'mean': greedy, 'sem': 0.001}}}


def test_a_missing_run_is_taken_from_the_earlier_report_and_says_so(report_dirs):
  previous = {
      'num_targets': 500,
      'written': '2026-12-02 04:29 UTC',
      'runs': {'mnist_d-seed0': _entry(0.0497), 'mnist_l2-seed0': _entry(0.0532)},
  }
  stored = reproduce.stored_runs('r1', {'r1': previous})
  assert sorted(stored) == ['mnist_d-seed0', 'mnist_l2-seed0']
  assert stored['mnist_d-seed0']['heldout'] == previous['runs']['mnist_d-seed0']['heldout']
  assert stored['mnist_d-seed0']['source'] == 'stored (evaluated 2026-12-02 04:29 UTC)'
  # Seed 1 is neither here nor stored: it is what the report says is missing.
  missing = [os.path.basename(d) for d in reproduce._missing('r1', stored)]
  assert missing == ['mnist_d-seed1', 'mnist_l2-seed1']
  # Stored again by a later report, an entry keeps the date of the report that evaluated it.
  again = reproduce.stored_runs('r1', {'r1': dict(previous, written='2026-12-05 10:00 UTC', runs=stored)})
  assert again['mnist_l2-seed0']['source'] == 'stored (evaluated 2026-12-02 04:29 UTC)'
  # An ablation that shares r1's D agent finds it in r1's entry; a reproduction not scored by held-out
  # reconstruction never takes a stored run.
  assert sorted(reproduce.stored_runs('r1_entropy_cost', {'r1': previous})) == ['mnist_d-seed0']
  assert reproduce.stored_runs('r3', {'r1': previous}) == {}


def _strokes_entry(greedy, num_targets=500):
  return {'frames': 216000, 'greedy': {'mean': greedy, 'sem': 0.001}, 'num_targets': num_targets}


def test_a_strokes_run_is_taken_only_from_its_own_reproduction_s_entry(report_dirs):
  # precision and r3 each trained a run named strokes-seed0: one must never stand in for the other.
  precision = {
      'written': '2026-12-02 04:52 UTC',
      'runs': {'strokes-seed0': _strokes_entry(0.110), 'strokes_mixed_bfloat16-seed0': _strokes_entry(0.121)},
  }
  results = {'precision': precision, 'r3': {'runs': {'strokes-seed1': _strokes_entry(0.09)}}}
  stored = reproduce.stored_runs('precision', results)
  assert sorted(stored) == ['strokes-seed0', 'strokes_mixed_bfloat16-seed0']
  assert stored['strokes-seed0']['greedy'] == precision['runs']['strokes-seed0']['greedy']
  assert stored['strokes-seed0']['source'] == 'stored (evaluated 2026-12-02 04:52 UTC)'
  assert reproduce.stored_runs('r3', results) == {
      'strokes-seed1': dict(results['r3']['runs']['strokes-seed1'], source='stored (evaluated None)')
  }
  # Scored on other held-out targets, or not at all: not stored.
  other = {
      'precision': {'runs': {'strokes-seed0': _strokes_entry(0.11, num_targets=200), 'strokes-seed1': {}}}
  }
  assert reproduce.stored_runs('precision', other) == {}
  # A directory here is evaluated again, never replaced.
  _write_export(reproduce.run_dir('strokes', 0), 1500)
  assert sorted(reproduce.stored_runs('precision', results)) == ['strokes_mixed_bfloat16-seed0']


def test_training_starts_each_run_once_and_none_that_results_json_holds(report_dirs):
  results = {'r1': {'num_targets': 500, 'runs': {'mnist_d-seed0': _entry(0.0497)}}}
  with flagsaver.flagsaver(reproductions=['r1', 'r1_entropy_cost']):
    assert reproduce.runs_to_train(results) == [
        ('reproductions/mnist_d', 1),
        ('reproductions/mnist_l2', 0),
        ('reproductions/mnist_l2', 1),
        ('reproductions/mnist_d_entropy_cost_half', 0),
        ('reproductions/mnist_d_entropy_cost_half', 1),
    ]


def test_a_run_directory_here_is_evaluated_never_replaced_by_its_stored_entry(report_dirs):
  _write_export(reproduce.run_dir('reproductions/mnist_d', 0), 6945)
  previous = {'num_targets': 500, 'runs': {'mnist_d-seed0': _entry(0.0497), 'mnist_l2-seed0': _entry(0.05)}}
  assert sorted(reproduce.stored_runs('r1', {'r1': previous})) == ['mnist_l2-seed0']


def test_figures_on_other_held_out_targets_are_not_mixed_in(report_dirs):
  previous = {'num_targets': 128, 'runs': {'mnist_d-seed0': _entry(0.0497)}}
  assert reproduce.stored_runs('r1', {'r1': previous}) == {}
  assert reproduce.stored_runs('r1', {}) == {}
  # An entry without held-out figures (r2's runs are scored by a classifier) never stands in.
  unscored = dict(previous, num_targets=500, runs={'mnist_d-seed0': {}})
  assert reproduce.stored_runs('r1', {'r2': unscored}) == {}


def _trained_run(tmp_path_run):
  """A run directory with real TensorBoard logs (learner and evaluator) and an export at step 100."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  os.makedirs(tmp_path_run)
  with open(os.path.join(tmp_path_run, 'config.json'), 'w') as f:
    json.dump({'batch_size': 16, 'episode_length': 10}, f)  # 144 frames per learner step.
  for log_dir, points in (
      (dashboard.learner_log_dir(tmp_path_run), {'entropy': [(1, 10.5)]}),
      (dashboard.eval_log_dir(tmp_path_run), {'eval/agent_mse': [(0, 0.09), (100, 0.0512345678)]}),
  ):
    with tf.summary.create_file_writer(log_dir).as_default():
      for tag, values in points.items():
        for step, value in values:
          tf.summary.scalar(tag, value, step=step)
  _write_export(tmp_path_run, 100)


def test_kept_curves_come_back_as_the_stored_run_s_curves(report_dirs):
  _trained_run(reproduce.run_dir('reproductions/mnist_d', 1))
  reproduce.write_curves(
      reproduce.Run('reproductions/mnist_d', 1),
      (('eval', 'eval/agent_mse'), ('train', 'entropy'), ('train', 'd_score_real')),
  )
  run = reproduce.StoredRun('reproductions/mnist_d', 1, _entry(0.05))
  assert run.curve('eval/agent_mse', 'eval') == ([0, 14400], [0.09, 0.0512346])  # 6 significant digits.
  assert run.curve('entropy') == ([144], [10.5])
  assert run.curve('d_score_real') == ([], [])  # Logged by no run: an empty curve, drawn as nothing.
  assert reproduce.StoredRun('reproductions/mnist_l2', 0, _entry(0.05)).curve('entropy') == ([], [])


def test_r2_s_stored_scores_are_drawn_beside_another_unconditional_reproduction_not_beside_r2():
  history = [
      {'frames': 224496, 'mean_confidence': 0.7, 'classes_with_2_percent': 9},
      {'frames': 1534608, 'mean_confidence': 0.696, 'classes_with_2_percent': 10},
  ]
  results = {'r2': {'runs': {'mnist_unconditional-seed0': {'history': history}}}}
  curves = reproduce.stored_r2_curves('r2_decayed', results)
  label = f'{reproduce.LABELS["mnist_unconditional"]}, seed 0 (stored)'
  assert curves == {
      'confidence': {label: ([224496, 1534608], [0.7, 0.696])},
      'classes': {label: ([224496, 1534608], [9, 10])},
  }
  assert reproduce.stored_r2_curves('r2', results) == {}  # r2 reports its own runs, from their directories.
  assert reproduce.stored_r2_curves('r2_decayed', {}) == {'confidence': {}, 'classes': {}}


def test_the_frames_a_learner_trained_on_run_from_each_start_to_its_stop():
  # A population member's learner log (lines as the learner prints them): it trained 0 → 3,600 frames,
  # was stopped for a PBT copy, resumed from the source's checkpoint at 7,200 frames and ran to 9,000;
  # a start that died without its stop line (SIGKILL) counts nothing.
  log = '\n'.join(
      [
          '[learner] starting fresh: step 0, frames 0; agent 185,429 parameters',
          '[learner] step 25  frames 3,600  100 frames/s',
          '[learner] stopped: stop requested. Step 25, frames 3600.',
          '[learner] resumed from /r/members/1/checkpoints/ckpt-50: step 50, frames 7200; agent 185,429',
          '[learner] resumed from /r/members/1/checkpoints/ckpt-50: step 50, frames 7200; agent 185,429',
          '[learner] stopped: reached --max_frames=9000. Step 62, frames 9000.',
      ]
  )
  assert reproduce.trained_frames(log) == 3600 + (9000 - 7200)
  assert reproduce.trained_frames('') == 0


def test_a_step_logged_again_after_a_resume_or_a_pbt_copy_keeps_its_latest_value(tmp_path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  (TensorFlow: this test only)

  for values in ({1: 10.0, 2: 20.0, 3: 30.0}, {2: 21.0, 3: 31.0}):  # The second writer: the resumed run.
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default():
      for step, value in values.items():
        tf.summary.scalar('loss', value, step=step)
    writer.close()
  assert reproduce.scalar_series(str(tmp_path))['loss'] == [(1, 10.0), (2, 21.0), (3, 31.0)]
