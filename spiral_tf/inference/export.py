"""SavedModel export of a trained agent, loadable and callable with plain TensorFlow.

The export is a small `tf.Module` holding the agent's variables (not its Keras layers) and two signatures
whose inputs and outputs are flat dicts of tensors (names below; B = batch, any size), and one JSON asset
describing the run. `step` samples its actions (TensorFlow's unseeded sampler: calls differ); `step_greedy`,
with the same inputs and outputs, takes the most likely value of each sub-action given the ones before it
(arg-max decoding; deterministic for a given noise sample).

  initial_state(batch_size: int32 [])
      → core_h, core_c: float32 [B, lstm]; prev_action_<k>: int32 [B] for every action key k
  step(step_type: int32 [B], canvas: float32 [B, W, W, C], noise_sample: float32 [B, 10],
       target: float32 [B, W, W, C] (conditional agents only), action_mask_<k>: float32 [B],
       core_h, core_c, prev_action_<k>: the state from initial_state or the previous step)
      → action_<k>: int32 [B], log_prob_<k>: float32 [B] (per sub-action, unmasked), value: float32 [B],
        and the new state core_h, core_c, prev_action_<k>
  step_greedy(the inputs of step) → the outputs of step, arg-max decoded
  metadata() → export_json: string [] (the asset's contents)

  assets/spiral_export.json: {"format", "config" (the training Config, so inference rebuilds the same
      renderer), "renderer", "learner_step", "frames", "action_keys" (environment order), "num_values",
      "observation_keys", "state_keys", "canvas_shape", "noise_dim", "conditional", "lstm_size"}

Calling it from plain TensorFlow (no spiral_tf, tf_agents or tfp import):
  model = tf.saved_model.load(export_dir)
  state = model.signatures['initial_state'](batch_size=tf.constant(1))
  out = model.signatures['step'](step_type=..., canvas=..., noise_sample=..., action_mask_end=..., **state)
  state = {k: out[k] for k in state}            # the state keys are the same in and out

An export is written to a temporary sibling directory and renamed into place, so a crash never leaves a
half-written SavedModel at `export_dir` (replacing an older export swaps it out with two renames).

Usage:
  export_saved_model(agent, config, RunDir(root_dir).export, learner_step=1000)  # the learner
  export_from_checkpoint(root_dir)                                 # on demand (launch/export.py)
"""

import json
import os
import shutil
import tempfile
import uuid

import numpy as np
import tensorflow as tf

from spiral_tf import components
from spiral_tf import config as config_lib
from spiral_tf import run_dir
from spiral_tf.inference import export_format
from spiral_tf.networks import agent as agent_lib

# The names a reader relies on live in spiral_tf/inference/export_format.py (no TensorFlow), shared with
# the painter.
EXPORT_FORMAT = export_format.FORMAT
EXPORT_ASSET = export_format.ASSET


class ExportError(RuntimeError):
  """An export cannot be made (no checkpoint, a checkpoint that does not fit the configured agent)."""


def _plain(value):
  """JSON-ready copy of a Config value (tuples → lists)."""
  if isinstance(value, (tuple, list)):
    return [_plain(v) for v in value]
  if isinstance(value, (np.integer, np.floating)):
    return value.item()
  return value


class Exporter:
  """Traces the inference functions of one agent once; `save` then only serialises the current weights.

  Args:
    agent: a spiral_tf.networks.agent.Agent (its variables are what gets saved).
    config: the run's Config (spiral_tf/config.py); stored in the asset.
    action_spec, observation_spec: the (wrapped) environment's specs the agent was built for; by default
      those of `config` (spiral_tf/components.py `environment_specs`), as every training process has.
  """

  def __init__(self, agent, config, action_spec=None, observation_spec=None):
    if action_spec is None or observation_spec is None:
      action_spec, observation_spec = components.environment_specs(config)
    self.agent = self._agent = agent
    self.config = self._config = config
    self._action_keys = tuple(action_spec)
    self._num_values = {k: int(s.num_values) for k, s in action_spec.items()}
    self._canvas_shape = tuple(int(d) for d in observation_spec['canvas'].shape)
    self._conditional = 'target' in observation_spec
    if bool(config.conditional) != self._conditional:
      raise ExportError(
          f'config.conditional={config.conditional} but the observation spec '
          f'{"has" if self._conditional else "has no"} `target`'
      )
    self._noise_dim = (
        int(observation_spec['noise_sample'].shape[-1]) if 'noise_sample' in observation_spec else 0
    )
    self._lstm_size = int(agent.lstm_size)
    keys = self._action_keys
    self.observation_keys = export_format.observation_keys(keys, self._conditional, self._noise_dim)
    self.state_keys = export_format.state_keys(keys)
    # No AutoGraph: the step has no tensor-dependent Python control flow (learner_step.py says why).
    self._initial_state_fn = tf.function(
        self._initial_state, input_signature=[tf.TensorSpec([], tf.int32, name='batch_size')], autograph=False
    )
    self._input_specs = self._step_input_specs()
    self._step_fn = tf.function(self._flat_step, input_signature=self._input_specs, autograph=False)
    self._step_greedy_fn = tf.function(
        lambda *args: self._flat_step(*args, greedy=True), input_signature=self._input_specs, autograph=False
    )
    # Trace now (once): every later save reuses these graphs.
    self._initial_state_fn.get_concrete_function()
    self._step_fn.get_concrete_function()
    self._step_greedy_fn.get_concrete_function()

  # --- the flat functions --------------------------------------------------------------------------

  def _step_input_specs(self):
    width, _, channels = self._canvas_shape
    specs = [
        tf.TensorSpec([None], tf.int32, name='step_type'),
        tf.TensorSpec([None, width, width, channels], tf.float32, name='canvas'),
    ]
    if self._conditional:
      specs.append(tf.TensorSpec([None, width, width, channels], tf.float32, name='target'))
    if self._noise_dim:
      specs.append(tf.TensorSpec([None, self._noise_dim], tf.float32, name='noise_sample'))
    specs += [
        tf.TensorSpec([None], tf.float32, name=export_format.action_mask_key(k)) for k in self._action_keys
    ]
    specs += [
        tf.TensorSpec([None, self._lstm_size], tf.float32, name='core_h'),
        tf.TensorSpec([None, self._lstm_size], tf.float32, name='core_c'),
    ]
    specs += [
        tf.TensorSpec([None], tf.int32, name=export_format.prev_action_key(k)) for k in self._action_keys
    ]
    return specs

  def _flat_state(self, state):
    flat = {'core_h': state.core['h'], 'core_c': state.core['c']}
    flat.update(
        {export_format.prev_action_key(k): tf.cast(state.prev_action[k], tf.int32) for k in self._action_keys}
    )
    return flat

  def _initial_state(self, batch_size):
    return self._flat_state(self._agent.initial_state(batch_size))

  def _flat_step(self, *args, greedy=False):
    inputs = {spec.name: value for spec, value in zip(self._input_specs, args)}
    observation = {
        'canvas': inputs['canvas'],
        'action_mask': {k: inputs[export_format.action_mask_key(k)] for k in self._action_keys},
    }
    if self._conditional:
      observation['target'] = inputs['target']
    if self._noise_dim:
      observation['noise_sample'] = inputs['noise_sample']
    state = agent_lib.AgentState(
        core={'h': inputs['core_h'], 'c': inputs['core_c']},
        prev_action={k: inputs[export_format.prev_action_key(k)] for k in self._action_keys},
    )
    output, new_state = self._agent.step(inputs['step_type'], observation, state, greedy=greedy)
    flat = {export_format.action_key(k): tf.cast(output.action[k], tf.int32) for k in self._action_keys}
    flat.update({export_format.log_prob_key(k): output.log_prob[k] for k in self._action_keys})
    flat['value'] = output.value
    flat.update(self._flat_state(new_state))
    return flat

  # --- saving --------------------------------------------------------------------------------------

  def metadata(self, learner_step=None, frames=None) -> dict:
    config = self._config
    return {
        'format': EXPORT_FORMAT,
        'config': {k: _plain(v) for k, v in config_lib.to_dict(config).items()},
        'renderer': config.environment,
        'learner_step': None if learner_step is None else int(learner_step),
        'frames': None if frames is None else int(frames),
        'action_keys': list(self._action_keys),
        'num_values': dict(self._num_values),
        'observation_keys': list(self.observation_keys),
        'state_keys': list(self.state_keys),
        'canvas_shape': list(self._canvas_shape),
        'noise_dim': self._noise_dim,
        'conditional': self._conditional,
        'lstm_size': self._lstm_size,
    }

  def save(self, export_dir, learner_step=None, frames=None) -> str:
    """Writes the SavedModel to `export_dir` (atomically: temp dir + rename). Returns export_dir."""
    export_dir = os.path.abspath(os.fspath(export_dir))
    parent = os.path.dirname(export_dir)
    os.makedirs(parent, exist_ok=True)
    name = os.path.basename(export_dir)
    tmp_dir = os.path.join(parent, f'.{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}')
    with tempfile.TemporaryDirectory() as staging:
      asset_path = os.path.join(staging, EXPORT_ASSET)
      with open(asset_path, 'w', encoding='utf-8') as f:
        json.dump(self.metadata(learner_step, frames), f, indent=1, sort_keys=True)
      module = tf.Module()
      # Only the variables: tracking the Keras layers themselves would make the saver serialise every
      # layer (slower, and nothing a plain-TensorFlow caller could use).
      module.agent_variables = list(self._agent.variables)
      module.initial_state = self._initial_state_fn
      module.step = self._step_fn
      module.step_greedy = self._step_greedy_fn
      module.export_asset = tf.saved_model.Asset(asset_path)
      module.metadata = tf.function(
          lambda: {'export_json': tf.io.read_file(module.export_asset)}, input_signature=[]
      )
      signatures = {
          'initial_state': self._initial_state_fn.get_concrete_function(),
          'step': self._step_fn.get_concrete_function(),
          'step_greedy': self._step_greedy_fn.get_concrete_function(),
          'metadata': module.metadata.get_concrete_function(),
      }
      try:
        tf.saved_model.save(module, tmp_dir, signatures=signatures)
      except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    _swap_into_place(tmp_dir, export_dir)
    return export_dir


def _swap_into_place(new_dir, export_dir):
  """Renames new_dir to export_dir; an existing export_dir is moved aside first and then deleted."""
  old_dir = None
  if os.path.lexists(export_dir):
    old_dir = f'{export_dir}.old-{uuid.uuid4().hex[:8]}'
    os.rename(export_dir, old_dir)
  try:
    os.rename(new_dir, export_dir)
  except BaseException:
    if old_dir is not None:
      os.rename(old_dir, export_dir)
    shutil.rmtree(new_dir, ignore_errors=True)
    raise
  if old_dir is not None:
    shutil.rmtree(old_dir, ignore_errors=True)


# The last Exporter made, so repeated exports of one agent (the learner's, after each checkpoint) trace
# once. One slot: a process exports one agent.
_LAST_EXPORTER = []


def export_saved_model(
    agent, config, export_dir, learner_step=None, frames=None, action_spec=None, observation_spec=None
) -> str:
  """Exports `agent` (built from `config`) as a plain-TensorFlow SavedModel at `export_dir`.

  Fast after the first call for the same agent (the functions are traced once); atomic (temp + rename).
  Returns the export directory.
  """
  cached = _LAST_EXPORTER[0] if _LAST_EXPORTER else None
  if cached is None or cached.agent is not agent or cached.config != config:
    cached = Exporter(agent, config, action_spec, observation_spec)
    _LAST_EXPORTER[:] = [cached]
  return cached.save(export_dir, learner_step, frames)


def export_from_checkpoint(root_dir, export_dir=None, checkpoint=None) -> str:
  """Exports the agent of a training run's latest (or the given) checkpoint.

  Args:
    root_dir: the run directory (config.json and checkpoints/).
    export_dir: where to write; default `<root_dir>/export`.
    checkpoint: a checkpoint path (prefix); default the latest in `<root_dir>/checkpoints`.

  Raises:
    FileNotFoundError: no run directory, config.json or checkpoint.
    ExportError: the checkpoint does not hold an agent of the configured shape.
  """
  root_dir = os.fspath(root_dir)
  if not os.path.isdir(root_dir):
    raise FileNotFoundError(f'--root_dir {root_dir!r} is not a directory')
  config = components.load_config(root_dir)
  run = run_dir.RunDir(root_dir)
  if checkpoint is None:
    checkpoint_dir = run.checkpoints
    checkpoint = tf.train.latest_checkpoint(checkpoint_dir)
    if checkpoint is None:
      raise FileNotFoundError(f'no checkpoint in {checkpoint_dir} (has the learner saved one yet?)')
  elif not tf.io.gfile.exists(checkpoint + '.index'):
    raise FileNotFoundError(f'checkpoint {checkpoint!r} not found (no {checkpoint}.index)')
  action_spec, observation_spec = components.environment_specs(config)
  # Built exactly as the learner builds it (spiral_tf/components.py), so the variables match.
  agent = components.make_agent(config)
  try:
    tf.train.Checkpoint(agent=agent).read(checkpoint).assert_existing_objects_matched()
  except (AssertionError, ValueError, tf.errors.OpError) as e:
    raise ExportError(
        f'checkpoint {checkpoint} does not hold an agent for the configuration in '
        f'{root_dir}/config.json: {e}'
    ) from None
  learner_step = tf.Variable(-1, dtype=tf.int64)
  frames = tf.Variable(-1, dtype=tf.int64)
  tf.train.Checkpoint(learner_step=learner_step, frames=frames).read(checkpoint).expect_partial()
  step, frame_count = int(learner_step.numpy()), int(frames.numpy())
  export_dir = run.export if export_dir is None else export_dir
  return Exporter(agent, config, action_spec, observation_spec).save(
      export_dir, learner_step=step if step >= 0 else None, frames=frame_count if frame_count >= 0 else None
  )
