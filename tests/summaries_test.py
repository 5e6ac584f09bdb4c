"""The learner's summaries, in-process: scalars and images as TensorBoard reads them, the progress line."""

import numpy as np
from tensorboard.backend.event_processing import event_accumulator
import tensorflow as tf

from spiral_tf.distributed import summaries


def _events(log_dir):
  acc = event_accumulator.EventAccumulator(str(log_dir), size_guidance={'tensors': 0})
  acc.Reload()
  return acc


def _episodes(batch, length, width, conditional, seed=0):
  rng = np.random.default_rng(seed)
  observation = {'canvas': tf.constant(rng.uniform(size=(batch, length, width, width, 1)), tf.float32)}
  if conditional:
    observation['target'] = tf.constant(rng.uniform(size=(batch, length, width, width, 1)), tf.float32)
  return {'observation': observation}


def test_scalars_reach_tensorboard_at_their_step(tmp_path):
  writer = tf.summary.create_file_writer(str(tmp_path))
  summaries.write_scalars(writer, 7, {'policy_loss': 0.25, 'diagnostics/return_std': 2.0})
  writer.close()
  acc = _events(tmp_path)
  for tag, value in (('policy_loss', 0.25), ('diagnostics/return_std', 2.0)):
    (event,) = acc.Tensors(tag)
    assert event.step == 7 and tf.make_ndarray(event.tensor_proto) == np.float32(value)


def test_images_put_targets_beside_renders_and_strips_of_every_canvas(tmp_path):
  batch, length, width = 6, 3, 8
  for conditional, first_tag in ((True, 'targets_and_renders'), (False, 'renders')):
    log_dir = tmp_path / str(conditional)
    writer = tf.summary.create_file_writer(str(log_dir))
    episodes = _episodes(batch, length, width, conditional)
    summaries.write_images(writer, 3, episodes, tf.distribute.get_strategy())
    writer.close()
    acc = _events(log_dir)
    assert {first_tag, 'strokes'} <= set(acc.Tags()['tensors'])
    # An image summary holds width, height, then one encoded image per output: NUM_IMAGES of the batch.
    (pair,) = acc.Tensors(first_tag)
    shape = tf.make_ndarray(pair.tensor_proto)
    assert len(shape) == 2 + summaries.NUM_IMAGES
    assert [int(x) for x in shape[:2]] == [width * (2 if conditional else 1), width]
    (strip,) = acc.Tensors('strokes')
    assert [int(x) for x in tf.make_ndarray(strip.tensor_proto)[:2]] == [length * width, width]


def test_progress_line_shows_what_was_measured(capsys):
  summaries.print_progress(
      12, 34_567, {'frames_per_s': 99.6, 'd_score_real': 0.5, 'busy_fraction': 0.25}, 3725
  )
  line = capsys.readouterr().out.strip()
  assert line == '[learner] step 12  frames 34,567  100 frames/s  ETA 1:02:05  D(real) 0.500  busy 0.250'
  summaries.print_progress(1, 2, {}, None)
  assert 'ETA no limit' in capsys.readouterr().out
