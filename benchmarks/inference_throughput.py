r"""Export and inference costs: SavedModel export (first and repeated), load, painting, image reading.

  python benchmarks/inference_throughput.py [--network_size=tiny|deepmind] [--episode_length=20]

Builds a fresh agent of the given size for the libmypaint painter (grey, conditional, 64², grid 32),
exports it as the learner does after a checkpoint (`export_saved_model`, twice: the first call traces),
loads it with `Painter.from_saved_model`, and paints batches of episodes. The weights are untrained:
the costs do not depend on them. The last line printed is one JSON object.
"""

import json
import os
import tempfile
import time

from absl import app
from absl import flags
import numpy as np
from PIL import Image
import tensorflow as tf

from spiral_tf import components
from spiral_tf import config as config_lib
from spiral_tf.inference import export
from spiral_tf.inference import image_io
from spiral_tf.inference import painter as painter_lib

flags.DEFINE_enum('network_size', 'deepmind', ['tiny', 'deepmind'], 'Agent size.')
flags.DEFINE_integer('episode_length', 20, 'Episode length (L − 1 strokes).')
flags.DEFINE_list('batch_sizes', ['1', '16'], 'Episodes painted per batch.')
flags.DEFINE_integer('repeats', 3, 'Timed repetitions of each measurement (the best counts).')
FLAGS = flags.FLAGS


def _best(fn, repeats):
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return min(times)


def main(argv):
  del argv
  tf.config.optimizer.set_experimental_options({'remapping': False})
  figures = {
      'network_size': FLAGS.network_size,
      'episode_length': FLAGS.episode_length,
      'load_average_1min': os.getloadavg()[0],
  }
  with tempfile.TemporaryDirectory() as tmp:
    config = config_lib.validate(
        config_lib.Config(
            root_dir=tmp,
            network_size=FLAGS.network_size,
            episode_length=FLAGS.episode_length,
            use_color=False,
            grid_width=32,
        )
    )
    agent = components.make_agent(config)
    export_dir = os.path.join(tmp, 'export')
    start = time.perf_counter()
    export.export_saved_model(agent, config, export_dir, learner_step=0)
    figures['export_first_s'] = time.perf_counter() - start
    figures['export_repeat_s'] = _best(
        lambda: export.export_saved_model(agent, config, export_dir, learner_step=1), FLAGS.repeats
    )
    start = time.perf_counter()
    painter = painter_lib.Painter.from_saved_model(export_dir)
    figures['load_s'] = time.perf_counter() - start
    target = np.full((64, 64, 1), 200, np.uint8)
    painter.paint(target)  # Warm-up: the first call builds the graph's kernels.
    for batch in (int(b) for b in FLAGS.batch_sizes):
      seconds = _best(lambda b=batch: painter.paint(target, num_samples=b), FLAGS.repeats)
      figures[f'paint_batch{batch}_episodes_per_s'] = batch / seconds
      figures[f'paint_batch{batch}_steps_per_s'] = batch * (FLAGS.episode_length - 1) / seconds
    rng = np.random.default_rng(0)
    photo = os.path.join(tmp, 'photo.jpg')
    Image.fromarray(rng.integers(0, 256, (3000, 4000, 3), dtype=np.uint8)).save(photo, quality=90)
    figures['read_and_prepare_12mpix_jpeg_s'] = _best(
        lambda: image_io.prepare_target(image_io.read_image(photo), 64, 1), FLAGS.repeats
    )
  for key, value in figures.items():
    print(f'{key:36s} {value:.3f}' if isinstance(value, float) else f'{key:36s} {value}')
  print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == '__main__':
  app.run(main)
