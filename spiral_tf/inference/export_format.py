"""What an export of spiral_tf is on disk, without TensorFlow: the contract between export and painter.

spiral_tf/inference/export.py writes it; spiral_tf/inference/painter.py (and any plain-TensorFlow caller)
reads it. A SavedModel directory with the signatures `initial_state`, `step`, `step_greedy`, `metadata`, whose
inputs and outputs are flat dicts named as below (k: an action key, in the environment's order), and the JSON
asset `assets/spiral_export.json` whose `format` is FORMAT (its fields: spiral_tf/inference/export.py).

Usage:
  metadata = read_metadata(export_dir)             # ModelError / ModelNotFoundError name the problem
  inputs[action_mask_key('end')] = ...; state = {k: out[k] for k in state_keys(metadata['action_keys'])}
"""

import json
import os

from spiral_tf import run_dir

FORMAT = 'spiral_tf.export/1'
ASSET = 'spiral_export.json'
SIGNATURES = ('initial_state', 'step', 'step_greedy', 'metadata')
CORE_KEYS = ('core_h', 'core_c')


class ModelError(ValueError):
  """A model directory that is missing, not an export of spiral_tf, or for another renderer."""


class ModelNotFoundError(ModelError, FileNotFoundError):
  """No SavedModel at the given path."""


def action_key(k: str) -> str:
  return f'action_{k}'


def log_prob_key(k: str) -> str:
  return f'log_prob_{k}'


def action_mask_key(k: str) -> str:
  return f'action_mask_{k}'


def prev_action_key(k: str) -> str:
  return f'prev_action_{k}'


def state_keys(action_keys) -> list:
  """The recurrent state, the same names in `initial_state`'s outputs and `step`'s inputs and outputs."""
  return list(CORE_KEYS) + [prev_action_key(k) for k in action_keys]


def observation_keys(action_keys, conditional: bool, noise_dim: int) -> list:
  """`step`'s observation inputs (besides `step_type` and the state)."""
  return (
      ['canvas']
      + (['target'] if conditional else [])
      + (['noise_sample'] if noise_dim else [])
      + [action_mask_key(k) for k in action_keys]
  )


def asset_path(export_dir) -> str:
  return os.path.join(os.fspath(export_dir), 'assets', ASSET)


def read_metadata(export_dir) -> dict:
  """The JSON asset of an export; raises ModelError (or ModelNotFoundError) naming the problem."""
  export_dir = os.fspath(export_dir)
  if not os.path.isdir(export_dir):
    raise ModelNotFoundError(f'model directory {export_dir!r} does not exist')
  if not os.path.isfile(os.path.join(export_dir, 'saved_model.pb')):
    hint, run = '', run_dir.RunDir(export_dir)
    if os.path.isfile(os.path.join(run.export, 'saved_model.pb')):
      hint = f'; did you mean {run.export}?'
    elif run.is_run():
      hint = (
          '; it looks like a training run directory: export it first with '
          f'`python launch/export.py --root_dir={export_dir}`'
      )
    raise ModelNotFoundError(f'{export_dir} is not a SavedModel directory (no saved_model.pb){hint}')
  path = asset_path(export_dir)
  if not os.path.isfile(path):
    raise ModelError(
        f'{export_dir} is a SavedModel but not a spiral_tf export (no assets/{ASSET}); '
        'export agents with launch/export.py'
    )
  try:
    with open(path, encoding='utf-8') as f:
      metadata = json.load(f)
  except (OSError, ValueError) as e:
    raise ModelError(f'{path}: cannot read the export description ({e})') from None
  if not isinstance(metadata, dict) or metadata.get('format') != FORMAT:
    raise ModelError(
        f'{path}: format {metadata.get("format") if isinstance(metadata, dict) else None!r}, '
        f'expected {FORMAT!r} (exported by another spiral_tf version?)'
    )
  return metadata
