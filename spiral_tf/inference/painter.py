"""Painting with an exported agent: the Python API behind `launch/paint.py` and `launch/evaluate.py`.

`Painter.from_saved_model(dir)` loads a SavedModel written by spiral_tf/inference/export.py with plain
TensorFlow, reads the training configuration from its JSON asset and rebuilds the same libmypaint renderer (a
model trained for another renderer, or whose actions do not fit the rebuilt one, is refused with a clear
error). `paint` runs whole episodes — the agent acting in the renderer, exactly as an actor does — and
returns, per sample, the final canvas, every intermediate canvas, the program as raw actions and as readable
records, and (conditional agents) the target and the mean squared error per pixel.

Program records (one per step, canvas pixel units, x = column, y = row, origin top-left):
  {"step": 3, "type": "paint", "from": [x, y], "control": [x, y], "to": [x, y], "pressure": 0.6,
   "radius": 4.0, "rgb": [r, g, b] (0–1; black ink for grey agents), "action": {raw indices}}
  {"step": 4, "type": "move", "from": [x, y], "to": [x, y], "action": {...}}
The file written by `Painting.to_json()` also holds the renderer settings, so `replay_program(file)`
(= environments.libmypaint.replay) re-renders it — exactly at scale 1 (the painter is deterministic per
program), or at k× resolution with k× larger brushes.

Usage:
  painter = Painter.from_saved_model('runs/strokes/export')
  painting, = painter.paint('digit.png')              # conditional agents take a target image
  paintings = painter.paint(None, num_samples=4)      # unconditional agents sample
  painting, = painter.paint('digit.png', decoding='greedy')   # arg-max actions (DECODINGS)
  painting.canvas, painting.canvases, painting.records, painting.mse
  big = painting.replay(scale=8)                      # float32 [512, 512, C]

TensorFlow's oneDNN graph remapper logs harmless warnings ("No registered '' OpKernel", "remapper
failed") on the loaded graph; `tf.config.optimizer.set_experimental_options({'remapping': False})`
silences them (launch/paint.py and launch/evaluate.py do).
"""

import dataclasses
import json
import os
from typing import Optional

import numpy as np
from PIL import Image

from environments import libmypaint
from environments import targets as targets_lib
from spiral_tf import config as config_lib
from spiral_tf.inference import export_format
from spiral_tf.inference import image_io

PROGRAM_FORMAT = 'spiral_tf.program/1'
RENDERER = 'libmypaint'
# How actions are chosen: 'sample' from the policy (as in training), or 'greedy' (the most likely value of
# each sub-action given the ones before it; exports from before spiral_tf 2026-12 lack it).
DECODINGS = ('sample', 'greedy')


# The export's contract (spiral_tf/inference/export_format.py); re-exported, as callers catch
# painter.ModelError.
ModelError = export_format.ModelError
ModelNotFoundError = export_format.ModelNotFoundError
read_export_metadata = export_format.read_metadata


def config_of(metadata, source='the export'):
  """The training Config stored in an export's metadata."""
  values = dict(metadata['config'])  # Flat (config.to_dict), in exports from before Config.learner too.
  unknown = sorted(set(values) - set(config_lib.SETTINGS))
  if unknown:
    raise ModelError(
        f'{source}: configuration fields {unknown} are unknown to this spiral_tf '
        '(exported by a newer version?)'
    )
  try:
    return config_lib.validate(config_lib.from_dict(values))
  except (config_lib.ConfigError, TypeError) as e:
    raise ModelError(f'{source}: invalid training configuration ({e})') from None


def check_renderer(metadata, env, source='the model') -> None:
  """Raises ModelError unless `env` is the renderer the exported agent was trained for."""
  want = {k: int(n) for k, n in metadata['num_values'].items()}
  have = {k: int(s.num_values) for k, s in env.action_spec().items()}
  if want != have:
    diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
    details = ', '.join(
        f'{k}: model {want.get(k, "absent")} vs renderer {have.get(k, "absent")}' for k in diff
    )
    raise ModelError(
        f'{source} was trained for another renderer: its actions do not fit the '
        f'renderer built from its configuration ({details})'
    )
  canvas = list(env.observation_spec()['canvas'].shape)
  if canvas != list(metadata['canvas_shape']):
    raise ModelError(
        f'{source} was trained for another renderer: it sees canvases '
        f'{metadata["canvas_shape"]}, the renderer paints {canvas}'
    )


@dataclasses.dataclass
class Painting:
  """One episode of the agent in the renderer (see module docstring for `records`)."""

  canvas: np.ndarray  # float32 [W, W, C] in [0, 1], the final painting
  canvases: np.ndarray  # float32 [L, W, W, C]: blank canvas, then the canvas after each step
  actions: list  # raw action dicts (environments.libmypaint.replay's program)
  records: list  # readable records, one per step
  settings: dict  # the LibMyPaint arguments that paint `actions` into `canvas`
  target: Optional[np.ndarray] = None  # float32 [W, W, C] the agent reconstructed (conditional)
  mse: Optional[float] = None  # mean squared error per pixel to the target

  def to_json(self) -> dict:
    return {
        'format': PROGRAM_FORMAT,
        'renderer': RENDERER,
        'settings': self.settings,
        'mse': self.mse,
        'steps': self.records,
    }

  def to_json_text(self) -> str:
    """`to_json()` as text with one step per line (readable, and diffs well)."""
    program = self.to_json()
    steps = program.pop('steps')
    fields = [f' {json.dumps(k)}: {json.dumps(v)}' for k, v in program.items()]
    fields.append(' "steps": [' + ','.join(f'\n  {json.dumps(step)}' for step in steps) + '\n ]')
    return '{\n' + ',\n'.join(fields) + '\n}\n'

  def replay(self, scale: int = 1) -> np.ndarray:
    return libmypaint.replay(self.actions, scale=scale, **self.settings)


def program_records(actions, settings) -> list:
  """Readable records of a program (see module docstring), in canvas pixels."""
  grid, width = settings['grid_width'], settings['canvas_width']
  unit = width / grid
  sizes = list(settings['brush_sizes'])

  def pixel(index):
    row, col = divmod(int(index), grid)
    return [unit * col, unit * row]

  pen = pixel(0)  # The pen starts at the top-left corner.
  records = []
  for step, action in enumerate(actions):
    raw = {k: int(v) for k, v in action.items()}
    to = pixel(raw['end'])
    if raw['flag'] == 1:
      rgb = (
          [round(float(libmypaint.COLOR_VALUES[raw[k]]), 4) for k in ('red', 'green', 'blue')]
          if settings['use_color']
          else [0.0, 0.0, 0.0]
      )
      pressure = float(libmypaint.PRESSURE_VALUES[raw['pressure']]) if settings['use_pressure'] else 1.0
      records.append(
          {
              'step': step,
              'type': 'paint',
              'from': pen,
              'control': pixel(raw['control']),
              'to': to,
              'pressure': round(pressure, 4),
              'radius': sizes[raw['size']] if 'size' in raw else sizes[0],
              'rgb': rgb,
              'action': raw,
          }
      )
    else:
      records.append({'step': step, 'type': 'move', 'from': pen, 'to': to, 'action': raw})
    pen = to
  return records


def load_program(source):
  """(actions, settings) of a program file written from `Painting.to_json()` (a path or the dict)."""
  if isinstance(source, dict):
    program, name = source, 'program'
  else:
    name = os.fspath(source)
    try:
      with open(name, encoding='utf-8') as f:
        program = json.load(f)
    except (OSError, ValueError) as e:
      raise ValueError(f'{name}: cannot read the program ({e})') from None
  if not isinstance(program, dict) or program.get('format') != PROGRAM_FORMAT:
    raise ValueError(f'{name}: not a {PROGRAM_FORMAT} program file')
  if program.get('renderer') != RENDERER:
    raise ValueError(f'{name}: a program for renderer {program.get("renderer")!r}, not {RENDERER}')
  return [dict(step['action']) for step in program['steps']], dict(program['settings'])


def replay_program(source, scale: int = 1) -> np.ndarray:
  """Re-renders a program file (or its dict) at `scale`× resolution: float32 [W·k, W·k, C]."""
  actions, settings = load_program(source)
  return libmypaint.replay(actions, scale=scale, **settings)


class Painter:
  """An exported agent and its renderer (see module docstring)."""

  def __init__(self, model, metadata: dict, source: str = 'model', brushes_basedir=None):
    self._model = model
    self._initial_state = model.signatures['initial_state']
    self._steps = {'sample': model.signatures['step']}
    if 'step_greedy' in model.signatures:
      self._steps['greedy'] = model.signatures['step_greedy']
    self.metadata = metadata
    self.source = source
    self.config = config_of(metadata, source)
    if self.config.environment != RENDERER or metadata.get('renderer') != RENDERER:
      raise ModelError(
          f'{source} was trained for the {self.config.environment!r} renderer; the Painter '
          f'(and paint.py) drives {RENDERER}'
      )
    self.settings = self.config.libmypaint_settings()
    self._brushes_basedir = brushes_basedir
    env = self.make_renderer()
    check_renderer(metadata, env, source)
    env.close()
    self.action_keys = list(metadata['action_keys'])
    self.state_keys = list(metadata['state_keys'])

  @classmethod
  def from_saved_model(cls, export_dir, brushes_basedir=None) -> 'Painter':
    """Loads an export (plain TensorFlow) and rebuilds its renderer; raises ModelError if unusable."""
    export_dir = os.fspath(export_dir)
    metadata = read_export_metadata(export_dir)
    config_of(metadata, export_dir)  # Refuse bad configurations before the slow load.
    if metadata.get('renderer') != RENDERER:
      raise ModelError(
          f'{export_dir} was trained for the {metadata.get("renderer")!r} renderer; the '
          f'Painter (and paint.py) drives {RENDERER}'
      )
    # Lazy: replaying a program (replay_program, Painting.replay) needs no TensorFlow.
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    try:
      model = tf.saved_model.load(export_dir)
    except (OSError, ValueError, tf.errors.OpError) as e:
      raise ModelError(f'{export_dir}: cannot load the SavedModel ({type(e).__name__}: {e})') from None
    return cls(model, metadata, export_dir, brushes_basedir)

  # --- properties ----------------------------------------------------------------------------------

  @property
  def conditional(self) -> bool:
    return bool(self.metadata['conditional'])

  @property
  def canvas_width(self) -> int:
    return int(self.metadata['canvas_shape'][0])

  @property
  def channels(self) -> int:
    return int(self.metadata['canvas_shape'][-1])

  @property
  def episode_length(self) -> int:
    return int(self.config.episode_length)

  # --- painting ------------------------------------------------------------------------------------

  def prepare_target(self, image) -> np.ndarray:
    """A path or array → uint8 [W, W, C] target, cropped and resized as training data is.

    Arrays: uint8 [H, W] or [H, W, 1|3|4] of any size (RGBA composited on white), or float [W, W, C]
    in [0, 1] already at the model's size.
    """
    if isinstance(image, (str, os.PathLike)):
      pixels = image_io.read_image(image)
    else:
      pixels = np.asarray(image)
      if pixels.dtype.kind == 'f':
        shape = (self.canvas_width, self.canvas_width, self.channels)
        if pixels.shape != shape or not (np.all(pixels >= 0) and np.all(pixels <= 1)):
          raise ValueError(
              f'a float target must be [W, W, C] = {list(shape)} in [0, 1], got '
              f'{pixels.dtype} {list(pixels.shape)}'
          )
        return image_io.to_uint8_image(pixels).reshape(shape)
      if pixels.dtype != np.uint8:
        raise ValueError(f'target array must be uint8 (or float in [0, 1]), got {pixels.dtype}')
      if pixels.ndim == 3 and pixels.shape[-1] == 4:
        pixels = image_io.to_pixels(Image.fromarray(pixels, 'RGBA'))
    return image_io.prepare_target(pixels, self.canvas_width, self.channels)

  def paint(
      self, image=None, num_samples: int = 1, seed: Optional[int] = None, decoding: str = 'sample'
  ) -> list:
    """Runs `num_samples` episodes (in one batch); returns a list of `Painting`s.

    Args:
      image: the target (path, or array — see `prepare_target`) for a conditional agent; None for an
        unconditional one.
      num_samples: episodes to paint (each with its own noise sample; the policy samples its actions).
      seed: seeds the per-episode noise samples (the agent's own sampling is TensorFlow's).
      decoding: 'sample' or 'greedy' (DECODINGS).
    """
    if not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
      raise ValueError(f'num_samples must be a positive integer, got {num_samples!r}')
    if self.conditional and image is None:
      raise ValueError(f'{self.source} is a conditional agent: it reconstructs a target image; pass one')
    if not self.conditional and image is not None:
      raise ValueError(f'{self.source} is an unconditional agent: it takes no target (use num_samples)')
    target = None if image is None else self.prepare_target(image)
    return self._paint_batch(target, num_samples, seed, decoding=decoding)

  def paint_targets(
      self, targets, num_samples: int = 1, seed: Optional[int] = None, decoding: str = 'sample'
  ) -> list:
    """Paints each of uint8 [N, W, W, C] targets `num_samples` times, batched: list of N lists."""
    targets = np.asarray(targets)
    shape = (self.canvas_width, self.canvas_width, self.channels)
    if targets.dtype != np.uint8 or targets.shape[1:] != shape:
      raise ValueError(
          f'targets must be uint8 [N, {", ".join(map(str, shape))}], got {targets.dtype} '
          f'{list(targets.shape)}'
      )
    flat = self._paint_batch(
        np.repeat(targets, num_samples, axis=0), 1, seed, per_env_targets=True, decoding=decoding
    )
    return [flat[i * num_samples : (i + 1) * num_samples] for i in range(len(targets))]

  def make_renderer(self):
    """A fresh LibMyPaint with the settings the agent was trained with."""
    return libmypaint.LibMyPaint(brushes_basedir=self._brushes_basedir, **self.settings)

  # --- internals -----------------------------------------------------------------------------------

  def _step_function(self, decoding):
    if decoding not in DECODINGS:
      raise ValueError(f'decoding {decoding!r} is not one of {DECODINGS}')
    if decoding not in self._steps:
      raise ModelError(
          f'{self.source} has no {decoding!r} decoding (an export from before it existed); '
          're-export it with launch/export.py'
      )
    return self._steps[decoding]

  def _paint_batch(self, targets, count, seed, per_env_targets=False, decoding='sample'):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top  (lazy: see from_saved_model)

    step = self._step_function(decoding)
    rng = np.random.default_rng(seed)
    if per_env_targets:
      count = len(targets)
      images = [targets[i][None] for i in range(count)]
    else:
      images = [None if targets is None else targets[None]] * count
    envs = [
        targets_lib.ConditionalTargets(
            self.make_renderer(), images[i], conditional=self.conditional, seed=int(rng.integers(2**31))
        )
        for i in range(count)
    ]
    timesteps = [env.reset() for env in envs]
    state = dict(self._initial_state(batch_size=tf.constant(count, tf.int32)))
    frames = [np.stack([ts.observation['canvas'] for ts in timesteps])]
    while not timesteps[0].last():
      inputs = self._inputs(timesteps)
      inputs.update(state)
      out = step(**inputs)
      state = {k: out[k] for k in self.state_keys}
      actions = {k: out[export_format.action_key(k)].numpy() for k in self.action_keys}
      timesteps = [env.step({k: int(actions[k][i]) for k in self.action_keys}) for i, env in enumerate(envs)]
      frames.append(np.stack([ts.observation['canvas'] for ts in timesteps]))
    frames = np.stack(frames, axis=1)  # [B, L, W, W, C]
    paintings = []
    for i, env in enumerate(envs):
      program = [dict(a) for a in env.program]
      target = env.target if self.conditional else None
      canvas = frames[i, -1]
      paintings.append(
          Painting(
              canvas=canvas,
              canvases=frames[i],
              actions=program,
              records=program_records(program, self.settings),
              settings=dict(self.settings),
              target=None if target is None else np.array(target),
              mse=None if target is None else float(np.mean(np.square(canvas - target))),
          )
      )
      env.close()
    return paintings

  def _inputs(self, timesteps):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top  (lazy: see from_saved_model)

    observations = [ts.observation for ts in timesteps]
    batch = lambda key: np.stack([o[key] for o in observations]).astype(np.float32)
    inputs = {
        'step_type': tf.constant([int(ts.step_type) for ts in timesteps], tf.int32),
        'canvas': tf.constant(batch('canvas')),
    }
    if self.conditional:
      inputs['target'] = tf.constant(batch('target'))
    if 'noise_sample' in self.metadata['observation_keys']:
      inputs['noise_sample'] = tf.constant(batch('noise_sample'))
    for k in self.action_keys:
      inputs[export_format.action_mask_key(k)] = tf.constant(
          np.array([o['action_mask'][k] for o in observations], np.float32)
      )
    return inputs
