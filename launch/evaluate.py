r"""Evaluates an exported agent's reconstructions on the held-out split against a non-learned baseline.

  python launch/evaluate.py --model=runs/strokes/export --num_targets=100 --num_samples=4 --grid=grid.png

Loads the first --num_targets images of the held-out split (--split, default test) of the dataset the agent
was trained on (--data_dir overrides the run's), paints each with the agent under each of --decodings, and
with greedy search over random strokes given the same number of renders (spiral_tf/inference/evaluation.py),
and prints the mean squared error per pixel of both (and of a blank canvas):
  sample     one episode per target, actions sampled from the policy (as in training);
  greedy     one episode per target, arg-max actions;
  best_of_n  --num_samples sampled episodes per target, the closest counts (skipped when it is 1).
--grid writes an image of the first decoding: targets (top row), agent, baseline. The last line printed is
one JSON object: the first decoding's figures at the top level, every decoding's under "decodings".
Exit status 0, or 1 with a message on bad input.
"""

import dataclasses
import json
import sys

from absl import app
from absl import flags

# None of these imports TensorFlow (components does: it stays in main, after the flag checks).
from spiral_tf import data
from spiral_tf.inference import evaluation
from spiral_tf.inference import painter as painter_lib

flags.DEFINE_string('model', None, 'Exported SavedModel directory (e.g. <root_dir>/export).')
flags.DEFINE_integer('num_targets', 100, 'How many held-out targets (the first ones of the split).')
flags.DEFINE_integer(
    'num_samples',
    4,
    'Episodes per target for best_of_n (the best counts); the '
    'baseline then gets as many random strokes per step.',
)
flags.DEFINE_list('decodings', ['sample', 'greedy', 'best_of_n'], 'Which decodings to report (see above).')
flags.DEFINE_string('split', 'test', 'Held-out split of the dataset.')
flags.DEFINE_string('data_dir', None, "Dataset directory (default: the run's --data_dir).")
flags.DEFINE_string('grid', None, 'Where to write the image grid (PNG).')
flags.DEFINE_integer('grid_columns', 16, 'Targets shown in the grid.')
flags.DEFINE_integer('seed', 0, 'Seed of the noise samples and of the baseline.')
FLAGS = flags.FLAGS
DECODINGS = ('sample', 'greedy', 'best_of_n')


def _fail(message):
  print(f'evaluate.py: error: {message}', file=sys.stderr)
  return 1


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not FLAGS.model:
    return _fail('--model is required (an exported SavedModel directory)')
  for name in ('num_targets', 'num_samples', 'grid_columns'):
    if getattr(FLAGS, name) < 1:
      return _fail(f'--{name}={getattr(FLAGS, name)} must be at least 1')
  unknown = sorted(set(FLAGS.decodings) - set(DECODINGS))
  if unknown or not FLAGS.decodings:
    return _fail(f'--decodings={",".join(FLAGS.decodings)}: each must be one of {", ".join(DECODINGS)}')
  decodings = [d for d in FLAGS.decodings if d != 'best_of_n' or FLAGS.num_samples > 1]
  if not decodings:
    return _fail('--decodings=best_of_n needs --num_samples > 1')
  # Here, after the flag checks: components imports TensorFlow, and a bad flag should not wait for it.
  from spiral_tf import components  # pylint: disable=g-import-not-at-top

  try:
    metadata = painter_lib.read_export_metadata(FLAGS.model)
    config = painter_lib.config_of(metadata, FLAGS.model)
  except painter_lib.ModelError as e:
    return _fail(str(e))
  if metadata.get('renderer') != painter_lib.RENDERER:
    return _fail(
        f'{FLAGS.model} was trained for the {metadata.get("renderer")!r} renderer; evaluate.py '
        f'drives {painter_lib.RENDERER}'
    )
  if not config.conditional:
    return _fail(f'{FLAGS.model} is an unconditional agent; evaluate.py measures reconstructions')
  if FLAGS.data_dir:
    config = dataclasses.replace(config, data_dir=FLAGS.data_dir)
  try:
    targets = components.load_targets(config, FLAGS.split, limit=FLAGS.num_targets)
  except (data.DatasetNotFoundError, data.CorruptDataError, ValueError) as e:
    return _fail(f'held-out targets ({config.dataset}, split {FLAGS.split!r}): {e}')
  if len(targets) == 0:
    return _fail(f'split {FLAGS.split!r} of {config.dataset} has no images')

  # Only after the model and the targets are checked: a bad input answers before TensorFlow initialises.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  # The oneDNN remapper trips over the loaded graph (harmless, but it floods stderr with warnings).
  tf.config.optimizer.set_experimental_options({'remapping': False})
  results = {}
  try:
    painter = painter_lib.Painter.from_saved_model(FLAGS.model)
    baselines = {}  # Greedy search per render budget, shared by the decodings with that budget.
    for name in decodings:
      decoding, num_samples = ('sample', FLAGS.num_samples) if name == 'best_of_n' else (name, 1)
      if num_samples not in baselines:
        baselines[num_samples] = evaluation.greedy_search_baseline(painter, targets, num_samples, FLAGS.seed)
      results[name] = evaluation.evaluate(
          painter,
          targets,
          num_samples=num_samples,
          seed=FLAGS.seed,
          decoding=decoding,
          baseline=baselines[num_samples],
      )
  except (painter_lib.ModelError, ValueError) as e:
    return _fail(str(e))
  summaries = {name: result.summary() for name, result in results.items()}
  summary = dict(summaries[decodings[0]])
  summary.update(
      model=FLAGS.model,
      dataset=config.dataset,
      split=FLAGS.split,
      learner_step=metadata.get('learner_step'),
      decodings=summaries,
  )
  if FLAGS.grid:
    try:
      summary['grid'] = evaluation.write_grid(FLAGS.grid, results[decodings[0]], FLAGS.grid_columns)
    except (OSError, ValueError) as e:
      return _fail(f'--grid: cannot write {FLAGS.grid}: {e}')
  print(
      f'{summary["num_targets"]} held-out {config.dataset} targets ({FLAGS.split}); mean squared error '
      f'per pixel (blank canvas {summary["blank_mse"]:.5f}):'
  )
  for name, s in summaries.items():
    print(
        f'  {name:<10} agent {s["agent_mse"]:.5f} ± {s["agent_mse_stderr"]:.5f}, greedy search with the '
        f'same {s["renders_per_target"]} renders {s["baseline_mse"]:.5f} ± {s["baseline_mse_stderr"]:.5f}; '
        f'agent better on {s["agent_wins"]} of {s["num_targets"]} targets'
    )
  print(json.dumps(summary))
  return 0


if __name__ == '__main__':
  app.run(main)
