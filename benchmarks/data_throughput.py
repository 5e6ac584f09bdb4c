"""Throughput of the real-image pipelines: 64² images per second per dataset, after caching.

Usage:
  .venv/bin/python benchmarks/data_throughput.py [--data_dir DIR] [--datasets mnist,celeba]
      [--batches 300] [--batch_size 64] [--learner_steps_per_second 20]

For each dataset: the first load into an empty cache (decode + resize, or render for strokes), the
load from the cache, and `real_dataset` — the float32 batches the discriminator reads — timed over
`--batches` batches of `--batch_size` after a warm-up. The figure to compare is what a learner at
batch 64 consumes: 64 real images per discriminator step, so `--learner_steps_per_second` steps/s
need 64 × that many images/s; `headroom` is the pipeline rate over that need.

--data_dir defaults to $SPIRAL_DATA_DIR, else the repository's sibling `shared/data`. Scenes are
generated (a small set, into a temporary directory) when the data directory has none; strokes need
nothing. The last printed line is one JSON object keyed by dataset.
"""

import argparse
import json
import os
import pathlib
import shutil
import tempfile
import time

import numpy as np

from spiral_tf import data

REPO = pathlib.Path(__file__).resolve().parent.parent


def _default_data_dir():
  return os.environ.get('SPIRAL_DATA_DIR') or str(REPO.parent / 'shared' / 'data')


def _timed(fn):
  start = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - start


def _measure(name, split, args, cache_dir, data_dir, options):
  channels = 3 if name in ('celeba', 'scenes') else 1
  load = lambda: data.load_images(name, split, data_dir, channels, cache_dir=cache_dir, **options)
  images, cold = _timed(load)
  _, warm = _timed(load)
  dataset = data.real_dataset(
      name, split, args.batch_size, data_dir, channels, cache_dir=cache_dir, **options
  )
  iterator = iter(dataset)
  for _ in range(20):  # warm-up: graph tracing, prefetch buffers
    next(iterator)
  start = time.perf_counter()
  for _ in range(args.batches):
    batch = next(iterator)
  batch.numpy()
  rate = args.batches * args.batch_size / (time.perf_counter() - start)
  need = args.batch_size * args.learner_steps_per_second
  return {
      'split': split,
      'images': len(images),
      'channels': channels,
      'first_load_images_per_second': round(len(images) / cold),
      'cached_load_images_per_second': round(len(images) / warm),
      'pipeline_images_per_second': round(rate),
      'headroom': round(rate / need, 1),
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--data_dir', default=_default_data_dir())
  parser.add_argument('--datasets', default='strokes,mnist,omniglot,celeba,scenes')
  parser.add_argument('--batches', type=int, default=300)
  parser.add_argument('--batch_size', type=int, default=64)
  parser.add_argument('--learner_steps_per_second', type=float, default=20.0)
  parser.add_argument('--num_scenes', type=int, default=600, help='scenes to generate if none exist')
  args = parser.parse_args()
  names = [n for n in args.datasets.split(',') if n]
  unknown = sorted(set(names) - set(data.DATASETS))
  if unknown:
    parser.error(f'--datasets: unknown {unknown}; choose from {",".join(data.DATASETS)}')

  work = tempfile.mkdtemp(prefix='spiral_data_benchmark_')
  cache_dir = os.path.join(work, 'cache')  # empty: the first load really decodes
  results = {}
  try:
    for name in names:
      data_dir, options, split = args.data_dir, {}, 'train'
      if name == 'scenes' and not os.path.isdir(os.path.join(data_dir, 'scenes')):
        # Lazy: MuJoCo picks its GL backend when imported; only a missing scenes set needs it.
        from spiral_tf.data import scenes_dataset  # pylint: disable=g-import-not-at-top

        data_dir = os.path.join(work, 'data')
        scenes_dataset.generate(os.path.join(data_dir, 'scenes'), num_scenes=args.num_scenes, seed=0)
      results[name] = _measure(name, split, args, cache_dir, data_dir, options)
      print(f'{name:9s} {results[name]}', flush=True)
  finally:
    shutil.rmtree(work, ignore_errors=True)
  need = args.batch_size * args.learner_steps_per_second
  print(
      f'learner need: batch {args.batch_size} × {args.learner_steps_per_second:g} steps/s = '
      f'{need:.0f} images/s'
  )
  print(json.dumps(results))


if __name__ == '__main__':
  np.set_printoptions(precision=3)
  main()
