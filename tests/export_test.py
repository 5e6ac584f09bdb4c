"""SavedModel export: plain-TensorFlow loading in a fresh process, parity with the agent, atomic writes."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from environments import libmypaint
import export_fixtures as fixtures
from spiral_tf import config as config_lib
from spiral_tf.inference import export

# Runs in a fresh interpreter: only TensorFlow, NumPy and the renderer (environments/, not spiral_tf).
PLAIN_TF_PAINT = r"""
import json, sys
import numpy as np
import tensorflow as tf
from environments import libmypaint

export_dir, target_path, out_path = sys.argv[1:4]
model = tf.saved_model.load(export_dir)
meta = json.loads(model.signatures['metadata']()['export_json'].numpy().decode())
config = meta['config']
env = libmypaint.LibMyPaint(
    episode_length=config['episode_length'], canvas_width=config['canvas_width'],
    grid_width=config['grid_width'], brush_type=config['brush_type'], brush_sizes=config['brush_sizes'],
    use_color=config['use_color'], use_pressure=config['use_pressure'], render_width=config['render_width'])
target = np.load(target_path).astype(np.float32)[None] / 255.0
rng = np.random.default_rng(0)
noise = rng.standard_normal((1, meta['noise_dim'])).astype(np.float32)
state = model.signatures['initial_state'](batch_size=tf.constant(1))
timestep = env.reset()
first = None
while not timestep.last():
  obs = timestep.observation
  inputs = {'step_type': tf.constant([int(timestep.step_type)]), 'canvas': obs['canvas'][None],
            'target': target, 'noise_sample': noise}
  inputs.update({'action_mask_' + k: np.array([obs['action_mask'][k]], np.float32)
                 for k in meta['action_keys']})
  inputs.update(state)
  out = model.signatures['step'](**inputs)
  if first is None:
    first = {k: v.numpy() for k, v in out.items()}
    first_inputs = {k: np.asarray(v) for k, v in inputs.items()}
  state = {k: out[k] for k in meta['state_keys']}
  timestep = env.step({k: int(out['action_' + k][0]) for k in meta['action_keys']})
forbidden = sorted(m for m in sys.modules
                   if m.split('.')[0] in ('spiral_tf', 'tf_agents', 'tensorflow_probability'))
assert not forbidden, forbidden
np.savez(out_path, canvas=timestep.observation['canvas'],
         program=json.dumps(env.program), meta=json.dumps(meta),
         **{'out_' + k: v for k, v in first.items()}, **{'in_' + k: v for k, v in first_inputs.items()})
print('modules ok', len(sys.modules))
"""


def _agent_inputs(flat, action_keys):
  observation = {
      'canvas': flat['canvas'],
      'target': flat['target'],
      'noise_sample': flat['noise_sample'],
      'action_mask': {k: flat[f'action_mask_{k}'] for k in action_keys},
  }
  from spiral_tf.networks import agent as agent_lib  # pylint: disable=g-import-not-at-top

  state = agent_lib.AgentState(
      core={'h': flat['core_h'], 'c': flat['core_c']},
      prev_action={k: flat[f'prev_action_{k}'] for k in action_keys},
  )
  return flat['step_type'], observation, state


def _random_inputs(metadata, batch, rng, step_type):
  width, _, channels = metadata['canvas_shape']
  keys = metadata['action_keys']
  flat = {
      'step_type': np.full([batch], step_type, np.int32),
      'canvas': rng.uniform(size=(batch, width, width, channels)).astype(np.float32),
      'target': rng.uniform(size=(batch, width, width, channels)).astype(np.float32),
      'noise_sample': rng.standard_normal((batch, metadata['noise_dim'])).astype(np.float32),
      'core_h': rng.standard_normal((batch, metadata['lstm_size'])).astype(np.float32),
      'core_c': rng.standard_normal((batch, metadata['lstm_size'])).astype(np.float32),
  }
  for k in keys:
    flat[f'action_mask_{k}'] = rng.integers(0, 2, batch).astype(np.float32)
    flat[f'prev_action_{k}'] = rng.integers(0, metadata['num_values'][k], batch).astype(np.int32)
  return flat


def test_brief_training_changed_the_agent():
  run = fixtures.trained_run()
  assert run.learner_step == fixtures.UPDATES
  changed = [
      not np.array_equal(before, after.numpy())
      for before, after in zip(run.initial_weights, run.agent.trainable_variables)
  ]
  assert sum(changed) > len(changed) // 2


def test_export_cli_writes_a_complete_export_with_its_configuration():
  run = fixtures.trained_run()
  export_dir = fixtures.exported_model()
  assert os.path.isfile(os.path.join(export_dir, 'saved_model.pb'))
  with open(os.path.join(export_dir, 'assets', export.EXPORT_ASSET)) as f:
    metadata = json.load(f)
  assert metadata['format'] == export.EXPORT_FORMAT
  assert metadata['learner_step'] == fixtures.UPDATES
  assert metadata['frames'] == fixtures.UPDATES * fixtures.BATCH * (fixtures.EPISODE_LENGTH - 1)
  expected_config = json.loads(json.dumps(config_lib.to_dict(run.config)))  # Flat, as config.json.
  assert metadata['config'] == expected_config
  env = libmypaint.LibMyPaint(episode_length=4, grid_width=16, use_color=False)
  assert metadata['action_keys'] == list(env.action_spec())
  assert metadata['num_values'] == {k: int(s.num_values) for k, s in env.action_spec().items()}
  assert metadata['canvas_shape'] == [64, 64, 1]
  assert metadata['conditional'] is True
  # No temporary or moved-aside directories next to the export.
  assert sorted(os.listdir(run.root_dir)) == ['checkpoints', 'config.json', 'export']


def test_plain_tensorflow_process_paints_and_the_program_replays(tmp_path):
  run = fixtures.trained_run()
  export_dir = fixtures.exported_model()
  target = run.train_images[0]
  np.save(tmp_path / 'target.npy', target)
  result = fixtures.run_python(
      PLAIN_TF_PAINT, export_dir, str(tmp_path / 'target.npy'), str(tmp_path / 'out.npz')
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'modules ok' in result.stdout
  out = np.load(tmp_path / 'out.npz')
  program = json.loads(str(out['program']))
  assert len(program) == fixtures.EPISODE_LENGTH - 1
  # The renderer is deterministic per program: replay gives the very same painting.
  settings = dict(episode_length=4, grid_width=16, use_color=False)
  np.testing.assert_array_equal(libmypaint.replay(program, **settings), out['canvas'])

  # The exported network is the trained agent: same value and LSTM state on the same inputs, and the
  # sampled action's log-probability is the agent's (teacher-forced) log-probability of it.
  meta = json.loads(str(out['meta']))
  keys = meta['action_keys']
  flat = {k[3:]: tf.constant(out[k]) for k in out.files if k.startswith('in_')}
  step_type, observation, state = _agent_inputs(flat, keys)
  agent_out, agent_state = run.agent.step(step_type, observation, state)
  np.testing.assert_allclose(out['out_value'], agent_out.value.numpy(), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(out['out_core_h'], agent_state.core['h'].numpy(), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(out['out_core_c'], agent_state.core['c'].numpy(), rtol=1e-4, atol=1e-5)
  taken = {k: tf.constant(out[f'out_action_{k}'])[None] for k in keys}
  unrolled = run.agent.unroll(
      step_type[None], tf.nest.map_structure(lambda x: x[None], observation), taken, state.core
  )
  for k in keys:
    np.testing.assert_allclose(out[f'out_log_prob_{k}'], unrolled.log_prob[k][0].numpy(), atol=1e-4)


def test_in_process_export_matches_the_agent_and_replaces_atomically(tmp_path, monkeypatch):
  run = fixtures.trained_run()
  export_dir = str(tmp_path / 'export')
  export.export_saved_model(run.agent, run.config, export_dir, learner_step=7)
  export.export_saved_model(run.agent, run.config, export_dir, learner_step=8)
  assert sorted(os.listdir(tmp_path)) == ['export']
  model = tf.saved_model.load(export_dir)
  metadata = json.loads(model.signatures['metadata']()['export_json'].numpy().decode())
  assert metadata['learner_step'] == 8

  state = model.signatures['initial_state'](batch_size=tf.constant(3))
  assert sorted(state) == sorted(metadata['state_keys'])
  assert state['core_h'].shape == (3, metadata['lstm_size'])
  assert all(not np.any(v.numpy()) for v in state.values())

  rng = np.random.default_rng(1)
  for step_type in (0, 1):  # FIRST resets the state; MID carries it.
    flat = _random_inputs(metadata, 3, rng, step_type)
    out = model.signatures['step'](**{k: tf.constant(v) for k, v in flat.items()})
    agent_out, agent_state = run.agent.step(
        *_agent_inputs({k: tf.constant(v) for k, v in flat.items()}, metadata['action_keys'])
    )
    np.testing.assert_allclose(out['value'].numpy(), agent_out.value.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out['core_h'].numpy(), agent_state.core['h'].numpy(), rtol=1e-4, atol=1e-5)
    for k, n in metadata['num_values'].items():
      action = out[f'action_{k}'].numpy()
      assert action.dtype == np.int32 and np.all((action >= 0) & (action < n))
      np.testing.assert_array_equal(out[f'prev_action_{k}'].numpy(), action)
      assert np.all(out[f'log_prob_{k}'].numpy() <= 0)

  # A crash while saving leaves the previous export whole and no temporary directory behind.
  def crash(module, path, signatures=None, options=None):
    del module, signatures, options
    os.makedirs(os.path.join(path, 'variables'))
    with open(os.path.join(path, 'saved_model.pb'), 'wb') as f:
      f.write(b'half')
    raise OSError('disk full')

  monkeypatch.setattr(tf.saved_model, 'save', crash)
  with pytest.raises(OSError, match='disk full'):
    export.export_saved_model(run.agent, run.config, export_dir, learner_step=9)
  assert sorted(os.listdir(tmp_path)) == ['export']
  monkeypatch.undo()
  model = tf.saved_model.load(export_dir)
  assert json.loads(model.signatures['metadata']()['export_json'].numpy())['learner_step'] == 8


def test_export_from_checkpoint_errors(tmp_path):
  run = fixtures.trained_run()
  with pytest.raises(FileNotFoundError, match='not a directory'):
    export.export_from_checkpoint(tmp_path / 'absent')
  with pytest.raises(FileNotFoundError, match='config.json'):
    export.export_from_checkpoint(tmp_path)
  # A run with a configuration but no checkpoint yet.
  empty = tmp_path / 'fresh'
  empty.mkdir()
  shutil.copy(os.path.join(run.root_dir, 'config.json'), empty / 'config.json')
  with pytest.raises(FileNotFoundError, match='no checkpoint'):
    export.export_from_checkpoint(empty)
  # A checkpoint of a differently configured agent (32×32 location grid instead of 16×16).
  other = tmp_path / 'other'
  shutil.copytree(run.root_dir, other, ignore=shutil.ignore_patterns('export'))
  with open(other / 'config.json') as f:
    values = json.load(f)
  values['grid_width'] = 32
  with open(other / 'config.json', 'w') as f:
    json.dump(values, f)
  with pytest.raises(export.ExportError, match='does not hold an agent'):
    export.export_from_checkpoint(other)
  assert not (other / 'export').exists()


def test_export_cli_bad_root_dir_fails_clearly(tmp_path):
  result = fixtures.run_script('export.py', f'--root_dir={tmp_path / "absent"}')
  assert result.returncode == 1
  assert 'is not a directory' in result.stderr
  result = fixtures.run_script('export.py', f'--root_dir={tmp_path}')
  assert result.returncode == 1
  assert 'no config.json' in result.stderr
