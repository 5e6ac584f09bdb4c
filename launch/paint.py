r"""Paints an image with an exported SPIRAL agent: the painting, its program, a stroke-by-stroke GIF.

  python launch/paint.py --model=runs/strokes/export --target=digit.png --out=painting.png \
      --program=program.json --strokes=strokes.gif --scale=8
  python launch/paint.py --model=runs/celeba_unconditional/export --num_samples=4 --out=face.png

--target: any PNG or JPEG (grey, RGB, RGBA, 16-bit, palette; any size), centre-cropped and resized as
the training data was. Unconditional agents take no target; they paint --num_samples samples.
Outputs (written only after the whole painting succeeded, each via a temporary file and a rename):
  --out       the final canvas at the agent's resolution (PNG)
  --scale=k   also `<out>_x<k>.png`: the same program re-rendered k× larger (DeepMind's notebook: 8)
  --program   the program as JSON: one readable record per step (spiral_tf/inference/painter.py), replayable
  --strokes   a GIF of the canvas after every step (k× larger with --scale, else 4×)
With --num_samples=N > 1 every output name gets `_<i>` before its extension.
Exit status 0, or 1 with a message on bad input (missing model, unreadable image, wrong renderer).
"""

import json
import os
import sys

from absl import app
from absl import flags

# Neither imports TensorFlow: bad flags, a bad model directory or target are reported without loading it.
from spiral_tf.inference import image_io
from spiral_tf.inference import painter as painter_lib

flags.DEFINE_string('model', None, 'Exported SavedModel directory (e.g. <root_dir>/export).')
flags.DEFINE_string('target', None, 'Image to reconstruct (conditional agents).')
flags.DEFINE_string('out', 'painting.png', 'Where to write the painting.')
flags.DEFINE_string('program', None, 'Where to write the program (JSON).')
flags.DEFINE_string('strokes', None, 'Where to write the stroke-by-stroke GIF.')
flags.DEFINE_integer('scale', None, 'Also re-render the program at this many times the resolution.')
flags.DEFINE_integer('num_samples', 1, 'Paintings to make (unconditional agents: samples).')
flags.DEFINE_integer('seed', None, 'Seed of the per-episode noise samples.')
FLAGS = flags.FLAGS

GIF_ZOOM = 4


def _fail(message):
  print(f'paint.py: error: {message}', file=sys.stderr)
  return 1


def _numbered(path, index, count):
  if path is None or count == 1:
    return path
  stem, ext = os.path.splitext(path)
  return f'{stem}_{index}{ext}'


def _scaled(path, scale):
  stem, ext = os.path.splitext(path)
  return f'{stem}_x{scale}{ext or ".png"}'


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not FLAGS.model:
    return _fail('--model is required (an exported SavedModel directory)')
  if FLAGS.num_samples < 1:
    return _fail(f'--num_samples={FLAGS.num_samples} must be at least 1')
  if FLAGS.scale is not None and not 1 <= FLAGS.scale <= 64:
    return _fail(f'--scale={FLAGS.scale} must be between 1 and 64')
  # Everything that can fail on bad input happens before TensorFlow is imported and before any output.
  try:
    metadata = painter_lib.read_export_metadata(FLAGS.model)
    painter_lib.config_of(metadata, FLAGS.model)
  except painter_lib.ModelError as e:
    return _fail(str(e))
  if metadata.get('renderer') != painter_lib.RENDERER:
    return _fail(
        f'{FLAGS.model} was trained for the {metadata.get("renderer")!r} renderer; paint.py '
        f'paints with {painter_lib.RENDERER}'
    )
  conditional = bool(metadata.get('conditional'))
  if conditional and not FLAGS.target:
    return _fail(f'{FLAGS.model} is a conditional agent: pass the image to reconstruct with --target')
  if not conditional and FLAGS.target:
    return _fail(f'{FLAGS.model} is an unconditional agent: it takes no --target (use --num_samples)')
  pixels = None
  if FLAGS.target:
    try:
      pixels = image_io.read_image(FLAGS.target)
    except (FileNotFoundError, image_io.ImageReadError) as e:
      return _fail(f'--target: {e}')
  for flag in ('out', 'program', 'strokes'):
    path = getattr(FLAGS, flag)
    if path and os.path.isdir(path):
      return _fail(f'--{flag}={path} is a directory; give a file name')
  try:
    image_io.image_format(FLAGS.out)
  except ValueError as e:
    return _fail(f'--out: {e}')

  # Only now: every check on the input above answers without the seconds TensorFlow takes to import.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  # The oneDNN remapper trips over the loaded graph (harmless, but it floods stderr with warnings).
  tf.config.optimizer.set_experimental_options({'remapping': False})
  try:
    painter = painter_lib.Painter.from_saved_model(FLAGS.model)
    paintings = painter.paint(pixels, num_samples=FLAGS.num_samples, seed=FLAGS.seed)
    scaled = [p.replay(FLAGS.scale) for p in paintings] if FLAGS.scale and FLAGS.scale > 1 else None
  except (painter_lib.ModelError, ValueError, FileNotFoundError) as e:
    return _fail(str(e))

  count = len(paintings)
  zoom = FLAGS.scale if FLAGS.scale and FLAGS.scale > 1 else GIF_ZOOM
  written = []
  try:
    for i, painting in enumerate(paintings):
      out = _numbered(FLAGS.out, i, count)
      written.append(image_io.write_png(out, painting.canvas))
      if scaled is not None:
        written.append(image_io.write_png(_scaled(out, FLAGS.scale), scaled[i]))
      if FLAGS.program:
        written.append(image_io.write_text(_numbered(FLAGS.program, i, count), painting.to_json_text()))
      if FLAGS.strokes:
        written.append(
            image_io.write_gif(
                _numbered(FLAGS.strokes, i, count), image_io.upscale_nearest(painting.canvases, zoom)
            )
        )
  except (OSError, ValueError) as e:
    return _fail(f'cannot write the outputs: {e}')
  summary = {
      'model': FLAGS.model,
      'target': FLAGS.target,
      'written': written,
      'mse': [p.mse for p in paintings] if conditional else None,
      'strokes': [sum(r['type'] == 'paint' for r in p.records) for p in paintings],
  }
  for path in written:
    print(f'wrote {path}')
  print(json.dumps(summary))
  return 0


if __name__ == '__main__':
  app.run(main)
