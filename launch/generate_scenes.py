r"""Generates the procedural MuJoCo scenes dataset (the targets of the 3-D experiment).

  python launch/generate_scenes.py --out_dir=/data/scenes              # the default 50,000 scenes
  python launch/generate_scenes.py --out_dir=/tmp/s --num_scenes=64 --grid_png=docs/scenes_grid.png

Scene i depends only on (--seed, i) and its split only on i (spiral_tf/data/scenes_dataset.py), so
the set is reproducible. Takes about 1.5 ms per scene on one core (≈ 75 s and ≈ 20 MB for 50k).
--grid_png also saves the first --grid_rows × --grid_cols training scenes as one image.
"""

import sys
import time

from absl import app
from absl import flags
import numpy as np

from spiral_tf.data import scenes_dataset

flags.DEFINE_string('out_dir', None, 'Directory to write the dataset to (created if missing).')
flags.DEFINE_integer('num_scenes', 50000, 'Number of scenes over both splits.')
flags.DEFINE_integer('seed', 0, 'Seed of the random programs (the split does not depend on it).')
flags.DEFINE_integer('shard_size', 5000, 'Scene indices per shard file.')
flags.DEFINE_integer('image_width', 64, 'Render width in pixels.')
flags.DEFINE_integer('max_objects', 5, 'Most objects per scene (each scene has 1..max_objects).')
flags.DEFINE_float('test_fraction', 0.1, 'Expected fraction of held-out (test) scenes.')
flags.DEFINE_boolean('overwrite', False, 'Replace a dataset already in --out_dir.')
flags.DEFINE_string('grid_png', None, 'If set, save a grid of training scenes to this PNG.')
flags.DEFINE_integer('grid_rows', 6, 'Rows of the --grid_png grid.')
flags.DEFINE_integer('grid_cols', 8, 'Columns of the --grid_png grid.')
flags.DEFINE_integer('grid_zoom', 2, 'Pixel replication factor of the --grid_png grid.')
flags.mark_flag_as_required('out_dir')
FLAGS = flags.FLAGS


def save_grid(images, path, rows, cols, zoom, gutter=4):
  """Tiles images uint8 [N, W, W, 3] row-major on a white page, each zoomed by pixel replication."""
  from PIL import Image  # pylint: disable=g-import-not-at-top  # only needed for the grid

  if len(images) < rows * cols:
    raise ValueError(
        f'--grid_png needs {rows * cols} training scenes (--grid_rows × '
        f'--grid_cols), the dataset has {len(images)}'
    )
  width = images.shape[1] * zoom
  step = width + gutter
  page = np.full((rows * step + gutter, cols * step + gutter, 3), 255, np.uint8)
  for n in range(rows * cols):
    r, c = divmod(n, cols)
    tile = images[n].repeat(zoom, axis=0).repeat(zoom, axis=1)
    top, left = gutter + r * step, gutter + c * step
    page[top : top + width, left : left + width] = tile
  Image.fromarray(page).save(path)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  start = time.time()
  try:
    metadata = scenes_dataset.generate(
        FLAGS.out_dir,
        num_scenes=FLAGS.num_scenes,
        seed=FLAGS.seed,
        shard_size=FLAGS.shard_size,
        image_width=FLAGS.image_width,
        max_objects=FLAGS.max_objects,
        test_fraction=FLAGS.test_fraction,
        overwrite=FLAGS.overwrite,
        log=lambda message: print(message, flush=True),
    )
  except (ValueError, FileExistsError) as e:
    print(f'generate_scenes.py: {e}', file=sys.stderr)
    return 2
  counts = {split: info['num_scenes'] for split, info in metadata['splits'].items()}
  print(f'wrote {counts} scenes to {FLAGS.out_dir} in {time.time() - start:.1f} s')
  if FLAGS.grid_png:
    images, _ = scenes_dataset.load(FLAGS.out_dir, 'train')
    save_grid(images, FLAGS.grid_png, FLAGS.grid_rows, FLAGS.grid_cols, FLAGS.grid_zoom)
    print(f'saved a {FLAGS.grid_rows}×{FLAGS.grid_cols} grid of training scenes to ' f'{FLAGS.grid_png}')
  return 0


if __name__ == '__main__':
  app.run(main)
