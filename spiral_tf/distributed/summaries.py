"""What the learner shows: TensorBoard scalars and images, and one console line per interval.

Usage:
  write_scalars(writer, step, {'policy_loss': 0.1, ...})
  write_images(writer, step, episodes, strategy)       # targets beside renders; stroke-by-stroke strips
  print_progress(step, frames, scalars, eta_s)
  write_status(run_dir.RunDir(root).status_file, step, frames, scalars)
"""

import json

import numpy as np
import tensorflow as tf

from spiral_tf import files
from spiral_tf.distributed import console

NUM_IMAGES = 4


def write_scalars(writer, step: int, scalars: dict) -> None:
  with writer.as_default(step=step):
    for name, value in scalars.items():
      tf.summary.scalar(name, value)


def write_status(path: str, step: int, frames: int, scalars: dict) -> None:
  """The progress line as data (run_dir.py's status.json), replaced atomically: a reader never sees half."""
  status = {
      'learner_step': int(step),
      'frames': int(frames),
      'scalars': {k: float(v) for k, v in scalars.items()},
  }
  with files.atomic_output(path) as tmp:
    with open(tmp, 'w') as f:
      json.dump(status, f)


def local_numpy(value, strategy):
  parts = strategy.experimental_local_results(value)
  return np.concatenate([p.numpy() for p in parts], 0)


def write_images(writer, step: int, episodes, strategy) -> None:
  """Targets beside final renders, and the canvases of each episode from blank to final."""
  canvases = local_numpy(episodes['observation']['canvas'], strategy)[:NUM_IMAGES]  # [n, L, W, W, C]
  n, length, width = canvases.shape[:3]
  finals = canvases[:, -1]
  with writer.as_default(step=step):
    if 'target' in episodes['observation']:
      targets = local_numpy(episodes['observation']['target'], strategy)[:NUM_IMAGES, -1]
      tf.summary.image('targets_and_renders', np.concatenate([targets, finals], axis=2), max_outputs=n)
    else:
      tf.summary.image('renders', finals, max_outputs=n)
    strips = np.transpose(canvases, (0, 2, 1, 3, 4)).reshape(n, width, length * width, -1)
    tf.summary.image('strokes', strips, max_outputs=n)


def _format_eta(seconds):
  if seconds is None:
    return 'no limit'
  seconds = int(seconds)
  return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


def print_progress(step: int, frames: int, scalars: dict, eta_s) -> None:
  parts = [
      f'step {step}',
      f'frames {frames:,}',
      f'{scalars.get("frames_per_s", 0):.0f} frames/s',
      f'ETA {_format_eta(eta_s)}',
  ]
  for key, label in (
      ('d_score_real', 'D(real)'),
      ('d_score_fake', 'D(fake)'),
      ('l2_to_target', 'l2'),
      ('reward_mean', 'reward'),
      ('busy_fraction', 'busy'),
  ):
    if key in scalars:
      parts.append(f'{label} {scalars[key]:.3f}')
  console.say('[learner] ' + '  '.join(parts))
