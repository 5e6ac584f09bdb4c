"""`--role=evaluator`: scores each new export of a run on held-out targets, into TensorBoard.

It watches `<root_dir>/export` (the learner exports a SavedModel at every checkpoint), and for every new
learner step paints `eval_targets` held-out targets with that export (spiral_tf/inference/painter.py — exactly
what a user of the export gets) and logs `eval/agent_mse` (mean squared error per pixel) and `eval/blank_mse`
(an untouched canvas) under `<root_dir>/tensorboard/eval` (the TensorBoard run `eval`, beside `learner`;
spiral_tf/dashboard.py), plus a grid of targets and paintings.

Usage:
  python launch/train.py --flagfile=configs/mnist.cfg --role=evaluator   # reads <root_dir>/export; no Reverb
  watch(config, stop_event)                     # what that role runs (spiral_tf/distributed/roles.py)
  figures = evaluate_export(export_dir, targets, writer)
"""

import json
import threading

from absl import logging
import numpy as np
import tensorflow as tf

from spiral_tf import components
from spiral_tf import config as config_lib
from spiral_tf import dashboard
from spiral_tf.distributed import console
from spiral_tf.inference import evaluation
from spiral_tf.inference import painter as painter_lib

POLL_SECONDS = 30.0


def _exported_step(directory):
  try:
    return painter_lib.read_export_metadata(directory).get('learner_step')
  except (painter_lib.ModelError, OSError, json.JSONDecodeError):
    return None  # No export yet, or one being swapped into place: look again later.


def evaluate_export(directory, targets, writer, seed=0) -> dict:
  """Paints every target once with the export at `directory`; logs and returns the figures."""
  painter = painter_lib.Painter.from_saved_model(directory)
  step = int(painter.metadata.get('learner_step') or 0)
  paintings = [samples[0] for samples in painter.paint_targets(targets, num_samples=1, seed=seed)]
  floats = targets.astype(np.float32) / 255.0
  figures = {
      'eval/agent_mse': float(np.mean([p.mse for p in paintings])),
      'eval/blank_mse': float(np.mean([evaluation.mse_per_pixel(np.ones_like(t), t) for t in floats])),
  }
  with writer.as_default(step=step):
    for name, value in figures.items():
      tf.summary.scalar(name, value)
    shown = min(8, len(paintings))
    pairs = np.concatenate([floats[:shown], np.stack([p.canvas for p in paintings[:shown]])], axis=2)
    tf.summary.image('eval/targets_and_paintings', pairs, max_outputs=shown)
  writer.flush()
  return {'learner_step': step, **figures}


def watch(config: config_lib.Config, stop: threading.Event) -> None:
  """Evaluates every new export of the run until `stop` is set (an unconditional run has no work)."""
  if not config.conditional:
    logging.info('[evaluator] unconditional run: nothing to reconstruct; the evaluator has no work')
    return
  targets = components.load_targets(config, 'test', limit=config.eval_targets)
  writer = tf.summary.create_file_writer(dashboard.eval_log_dir(config.root_dir))
  directory, done = components.export_dir(config.root_dir), None
  while not stop.is_set():
    step = _exported_step(directory)
    if step is not None and step != done:
      figures = evaluate_export(directory, targets, writer, seed=config.seed)
      done = step
      console.say(
          f'[evaluator] learner step {step}: mse {figures["eval/agent_mse"]:.4f} '
          f'(blank canvas {figures["eval/blank_mse"]:.4f}) on {len(targets)} held-out targets'
      )
    stop.wait(POLL_SECONDS)
