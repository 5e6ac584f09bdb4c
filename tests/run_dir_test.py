"""spiral_tf/run_dir.py and spiral_tf/inference/export_format.py: the layouts processes and readers share.

The real layouts are also what the other tests read: tests/train_test.py (a run's directory, written by
--role=all) and tests/export_test.py / painter_test.py (an export, read with plain TensorFlow).
"""

import json
import subprocess
import sys

import pytest

from spiral_tf import run_dir
from spiral_tf.inference import export_format


def test_run_directory_layout(tmp_path):
  run = run_dir.RunDir(tmp_path / 'run')
  assert run.root == str(tmp_path / 'run')  # a path-like becomes a string
  assert (
      run.config_file,
      run.checkpoints,
      run.export,
      run.tensorboard,
      run.logs,
      run.log('actor_0'),
      run.reverb_checkpoints,
      run.status_file,
  ) == tuple(
      str(tmp_path / 'run' / p)
      for p in (
          'config.json',
          'checkpoints',
          'export',
          'tensorboard',
          'logs',
          'logs/actor_0.log',
          'reverb_checkpoints',
          'status.json',
      )
  )
  assert not run.is_run()
  (tmp_path / 'run').mkdir()
  (tmp_path / 'run' / 'config.json').write_text('{}')
  assert run.is_run()


def test_the_layout_and_population_modules_import_no_tensorflow():
  # The supervisor, the population (which starts members that load it) and the CLIs' early checks use
  # them before (or without) TensorFlow.
  code = (
      'import sys; from spiral_tf import run_dir; from spiral_tf.inference import export_format; '
      'from spiral_tf.population import checkpoints, pbt, population; '
      'assert "tensorflow" not in sys.modules, sorted(m for m in sys.modules if "tensorflow" in m)'
  )
  result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
  assert result.returncode == 0, result.stderr


def test_export_names():
  keys = ['control', 'end']
  assert export_format.state_keys(keys) == ['core_h', 'core_c', 'prev_action_control', 'prev_action_end']
  assert export_format.observation_keys(keys, conditional=True, noise_dim=10) == [
      'canvas',
      'target',
      'noise_sample',
      'action_mask_control',
      'action_mask_end',
  ]
  assert export_format.observation_keys(keys, conditional=False, noise_dim=0) == [
      'canvas',
      'action_mask_control',
      'action_mask_end',
  ]
  keys = (export_format.action_key('end'), export_format.log_prob_key('end'))
  assert keys == ('action_end', 'log_prob_end')


def test_population_directory_layout(tmp_path):
  population = run_dir.PopulationDir(tmp_path / 'pop')
  assert population.state_file == str(tmp_path / 'pop' / 'population.json')
  assert population.lineage == str(tmp_path / 'pop' / 'pbt.jsonl')
  assert population.log(1) == str(tmp_path / 'pop' / 'logs' / 'member-1.log')
  # Across hosts: where member 1 runs, and the lead's copy request and its answer.
  assert population.host_record(1) == str(tmp_path / 'pop' / 'hosts' / 'member-1.json')
  assert population.copy_request(1) == str(tmp_path / 'pop' / 'pbt' / 'member-1.copy.json')
  assert population.copy_answer(1) == str(tmp_path / 'pop' / 'pbt' / 'member-1.copied.json')
  member = population.member(2)
  assert isinstance(member, run_dir.RunDir)
  assert member.checkpoints == str(tmp_path / 'pop' / 'members' / '2' / 'checkpoints')
  with pytest.raises(ValueError, match='member index -1'):
    population.member(-1)


def test_read_metadata_names_what_is_wrong(tmp_path):
  with pytest.raises(export_format.ModelNotFoundError, match='does not exist'):
    export_format.read_metadata(tmp_path / 'absent')
  run = run_dir.RunDir(tmp_path / 'run')
  (tmp_path / 'run').mkdir()
  (tmp_path / 'run' / 'config.json').write_text('{}')
  with pytest.raises(export_format.ModelNotFoundError, match='export it first with `python launch/export.py'):
    export_format.read_metadata(run.root)
  (tmp_path / 'run' / 'export').mkdir()
  (tmp_path / 'run' / 'export' / 'saved_model.pb').write_bytes(b'')
  with pytest.raises(export_format.ModelNotFoundError, match=f'did you mean {run.export}'):
    export_format.read_metadata(run.root)
  with pytest.raises(export_format.ModelError, match='not a spiral_tf export'):
    export_format.read_metadata(run.export)
  (tmp_path / 'run' / 'export' / 'assets').mkdir()
  asset = export_format.asset_path(run.export)
  with open(asset, 'w') as f:
    json.dump({'format': 'spiral_tf.export/0'}, f)
  with pytest.raises(export_format.ModelError, match="'spiral_tf.export/0', expected 'spiral_tf.export/1'"):
    export_format.read_metadata(run.export)
  with open(asset, 'w') as f:
    json.dump({'format': export_format.FORMAT, 'learner_step': 4}, f)
  assert export_format.read_metadata(run.export)['learner_step'] == 4
