r"""Exports a training run's agent as a SavedModel that plain TensorFlow can load and run.

  python launch/export.py --root_dir=runs/strokes                  # → runs/strokes/export
  python launch/export.py --root_dir=runs/celeba --export_dir=/models/celeba --checkpoint=PATH
  python launch/export.py --root_dir=runs/mnist_population --member=best   # → members/<best>/export

Reads `<root_dir>/config.json` and the latest checkpoint in `<root_dir>/checkpoints/` (or --checkpoint),
and writes the export atomically (spiral_tf/inference/export.py describes its signatures). The learner exports
after every checkpoint as well. Exit status: 0 on success, 1 with a message on bad input.
"""

import os
import sys

from absl import app
from absl import flags

from spiral_tf import config as config_lib  # No TensorFlow in either: the flags are checked before it loads.
from spiral_tf import run_dir
from spiral_tf.population import population

flags.DEFINE_string('root_dir', None, 'Training run directory (config.json, checkpoints/).')
flags.DEFINE_string('export_dir', None, 'Where to write the SavedModel (default: <root_dir>/export).')
flags.DEFINE_string('checkpoint', None, 'A checkpoint path (prefix) instead of the latest one.')
flags.DEFINE_string(
    'member',
    None,
    '--root_dir is a population (launch/train.py --population_size): export member <i>, or `best`, '
    'the member whose latest logged fitness (its --pbt_fitness) is highest.',
)
FLAGS = flags.FLAGS


def _fail(message):
  print(f'export.py: error: {message}', file=sys.stderr)
  return 1


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not FLAGS.root_dir:
    return _fail('--root_dir is required (the training run directory)')
  # Cheap checks first: TensorFlow takes seconds to import.
  if not os.path.isdir(FLAGS.root_dir):
    return _fail(f'--root_dir={FLAGS.root_dir} is not a directory')
  root = FLAGS.root_dir
  if FLAGS.member is not None:
    try:
      index = population.fittest(root) if FLAGS.member == 'best' else int(FLAGS.member)
      root = run_dir.PopulationDir(root).member(index).root
    except ValueError as e:
      return _fail(f'--member={FLAGS.member}: {e} (a member index or best)')
    print(f'member {index}: {root}')
  if not run_dir.RunDir(root).is_run():
    return _fail(f'--root_dir={root} has no config.json: is it a training run directory?')
  # After the cheap checks: export imports TensorFlow, which takes seconds.
  from spiral_tf.inference import export  # pylint: disable=g-import-not-at-top

  try:
    path = export.export_from_checkpoint(root, FLAGS.export_dir, FLAGS.checkpoint)
  except (FileNotFoundError, export.ExportError, config_lib.ConfigError, ValueError, TypeError) as e:
    return _fail(str(e))
  print(f'exported to {path}')
  return 0


if __name__ == '__main__':
  app.run(main)
