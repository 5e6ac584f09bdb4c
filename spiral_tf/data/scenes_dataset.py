"""Procedural MuJoCo scenes: random programs of 1-5 objects, their renders, a fixed held-out split.

The targets of SPIRAL's 3-D experiment (the paper used 50k scenes of up to 5 objects). Each scene
is rendered by the same renderer as the MujocoScenes environment, from a program the environment
can execute, so the optimum is known: replaying a scene's program reproduces its image exactly.

Usage:

  generate('/data/scenes', num_scenes=50000, seed=0)     # or: python launch/generate_scenes.py
  images, programs = load('/data/scenes', split='train')  # uint8 [N, 64, 64, 3], int32 [N, 5, 7]
  for action in program_actions(programs[0]):             # action dicts for MujocoScenes.step
    timestep = env.step(action)

A program is int32 [max_objects, 7], columns in ACTION_KEYS order (type, location, size, red,
green, blue, mode): one `add` row per object, then `skip` rows (all zeros but mode) as padding,
so every row is a valid action and the padded program renders the same image.

Scene i depends only on (seed, i): its program comes from np.random.default_rng((seed, i)) —
the number of objects uniform in [1, max_objects], distinct grid cells, types, sizes and colour
bins uniform. Whether scene i is held out depends only on i (a SHA-256 of the index, below
test_fraction), never on the seed, the shard size or num_scenes: a scene is in the same split of
every generated set.

Layout of a generated directory:
  metadata.json         parameters, action keys, and the shard files of each split
  train-00000.npz ...   one file per split per block of shard_size scene indices, holding
  test-00000.npz  ...   images uint8 [n, W, W, 3], programs int32 [n, max_objects, 7] and
                        scene_index int64 [n], in increasing scene index
metadata.json is written last: a directory without it is incomplete and load() refuses it. Every file is
written whole or not at all (spiral_tf/files.py), so a crash leaves no truncated shard or metadata.

spiral_tf/data/scenes.py reads the training and held-out images of a generated set as the `scenes` dataset.
"""

import hashlib
import json
import os

import numpy as np

from environments import mujoco_scenes
from spiral_tf import files

FORMAT = 'spiral_scenes/1'
SPLITS = ('train', 'test')
METADATA = 'metadata.json'
ACTION_KEYS = mujoco_scenes.ACTION_KEYS
_OBJECT_KEYS = ('type', 'location', 'size', 'red', 'green', 'blue')
_MAX_OBJECTS_LIMIT = 19  # what one 20-step episode can add
GENERATE_COMMAND = 'python launch/generate_scenes.py --out_dir={}'


def is_test_scene(index, test_fraction=0.1):
  """Whether scene `index` is held out: a hash of the index alone, so the split is fixed."""
  digest = hashlib.sha256(f'spiral-scene-{int(index)}'.encode()).digest()
  return int.from_bytes(digest[:8], 'little') < test_fraction * 2.0**64


def random_program(seed, index, max_objects=5):
  """Program int32 [max_objects, 7] of scene `index`: 1..max_objects adds, then skips."""
  rng = np.random.default_rng((int(seed), int(index)))
  num_values = mujoco_scenes.NUM_VALUES
  count = int(rng.integers(1, max_objects + 1))
  program = np.zeros((max_objects, len(ACTION_KEYS)), np.int32)
  program[:, ACTION_KEYS.index('mode')] = mujoco_scenes.SKIP
  program[:count, ACTION_KEYS.index('mode')] = mujoco_scenes.ADD
  program[:count, ACTION_KEYS.index('location')] = rng.choice(
      num_values['location'], size=count, replace=False
  )  # distinct cells
  for key in ('type', 'size', 'red', 'green', 'blue'):
    program[:count, ACTION_KEYS.index(key)] = rng.integers(num_values[key], size=count)
  return program


def program_actions(program):
  """The rows of a stored program as action dicts {key: int} for MujocoScenes.step."""
  program = np.asarray(program)
  if program.ndim != 2 or program.shape[1] != len(ACTION_KEYS):
    raise ValueError(
        f'program must have shape [steps, {len(ACTION_KEYS)}] (columns '
        f'{list(ACTION_KEYS)}), got {program.shape}'
    )
  return [dict(zip(ACTION_KEYS, (int(v) for v in row))) for row in program]


def program_objects(program):
  """The SceneObjects a stored program adds, in order."""
  mode = ACTION_KEYS.index('mode')
  columns = [ACTION_KEYS.index(k) for k in _OBJECT_KEYS]
  return [
      mujoco_scenes.SceneObject(*(int(row[c]) for c in columns))
      for row in np.asarray(program)
      if row[mode] == mujoco_scenes.ADD
  ]


def generate(
    out_dir,
    num_scenes=50000,
    seed=0,
    shard_size=5000,
    image_width=64,
    max_objects=5,
    test_fraction=0.1,
    overwrite=False,
    log=None,
):
  """Renders scenes 0..num_scenes-1 into `out_dir` (layout in the module docstring).

  Args:
    out_dir: directory to write; created if missing.
    num_scenes: number of scenes over both splits.
    seed: seed of the programs (the split does not depend on it).
    shard_size: scene indices per shard file.
    image_width: render width in pixels.
    max_objects: most objects in a scene (at least 1), at most 19.
    test_fraction: expected fraction of held-out scenes, in (0, 1).
    overwrite: replace an existing dataset in out_dir (its metadata and shard files only).
    log: optional callable taking a progress string.

  Returns:
    The metadata dict written to metadata.json.
  """
  _check_int('num_scenes', num_scenes, 1)
  _check_int('shard_size', shard_size, 1)
  _check_int('image_width', image_width, 1)
  _check_int('max_objects', max_objects, 1, _MAX_OBJECTS_LIMIT)
  _check_int('seed', seed, 0)
  if not 0.0 < test_fraction < 1.0:
    raise ValueError(f'test_fraction must be in (0, 1), got {test_fraction!r}')
  out_dir = os.fspath(out_dir)
  os.makedirs(out_dir, exist_ok=True)
  existing = _dataset_files(out_dir)
  if existing and not overwrite:
    raise FileExistsError(
        f'{out_dir} already holds a scenes dataset ({existing[0]}, ...); pass '
        f'overwrite=True (--overwrite) or choose another directory'
    )
  for name in existing:
    os.remove(os.path.join(out_dir, name))

  renderer = mujoco_scenes.SceneRenderer(max_objects, image_width)
  splits = {split: {'files': [], 'num_scenes': 0} for split in SPLITS}
  try:
    for shard, start in enumerate(range(0, num_scenes, shard_size)):
      indices = np.arange(start, min(start + shard_size, num_scenes), dtype=np.int64)
      programs = np.stack([random_program(seed, i, max_objects) for i in indices])
      images = np.empty((len(indices), image_width, image_width, 3), np.uint8)
      for n, program in enumerate(programs):
        renderer.clear()
        for slot, obj in enumerate(program_objects(program)):
          renderer.set_slot(slot, obj)
        images[n] = renderer.render()
      held_out = np.array([is_test_scene(i, test_fraction) for i in indices], bool)
      for split, members in (('train', ~held_out), ('test', held_out)):
        if not members.any():
          continue
        name = f'{split}-{shard:05d}.npz'
        _save_npz(
            os.path.join(out_dir, name),
            images=images[members],
            programs=programs[members],
            scene_index=indices[members],
        )
        splits[split]['files'].append(name)
        splits[split]['num_scenes'] += int(members.sum())
      if log is not None:
        log(f'scenes {indices[-1] + 1}/{num_scenes} written')
  finally:
    renderer.close()

  metadata = {
      'format': FORMAT,
      'num_scenes': int(num_scenes),
      'seed': int(seed),
      'shard_size': int(shard_size),
      'image_width': int(image_width),
      'max_objects': int(max_objects),
      'test_fraction': float(test_fraction),
      'action_keys': list(ACTION_KEYS),
      'splits': splits,
  }
  with files.atomic_output(os.path.join(out_dir, METADATA)) as temporary:
    with open(temporary, 'w', encoding='utf-8') as f:
      json.dump(metadata, f, indent=1)
  return metadata


def read_metadata(data_dir):
  """The metadata dict of a generated directory; FileNotFoundError says how to generate one."""
  path = os.path.join(os.fspath(data_dir), METADATA)
  if not os.path.isfile(path):
    what = 'does not exist' if not os.path.isdir(data_dir) else f'has no {METADATA}'
    raise FileNotFoundError(
        f'scenes dataset directory {data_dir!r} {what} (missing or incomplete dataset); '
        f'generate it with: {GENERATE_COMMAND.format(data_dir)}'
    )
  with open(path, encoding='utf-8') as f:
    metadata = json.load(f)
  if metadata.get('format') != FORMAT:
    raise ValueError(
        f'{path}: format {metadata.get("format")!r} is not {FORMAT!r}; regenerate '
        f'with: {GENERATE_COMMAND.format(data_dir)} --overwrite'
    )
  return metadata


def load(data_dir, split='train', with_index=False):
  """Reads one split of a generated directory.

  Returns:
    (images uint8 [N, W, W, 3], programs int32 [N, max_objects, 7]) in increasing scene index,
    plus scene_index int64 [N] when with_index.
  """
  if split not in SPLITS:
    raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
  metadata = read_metadata(data_dir)
  width, max_objects = metadata['image_width'], metadata['max_objects']
  images = [np.zeros((0, width, width, 3), np.uint8)]
  programs = [np.zeros((0, max_objects, len(ACTION_KEYS)), np.int32)]
  indices = [np.zeros((0,), np.int64)]
  for name in metadata['splits'][split]['files']:
    path = os.path.join(os.fspath(data_dir), name)
    if not os.path.isfile(path):
      raise FileNotFoundError(
          f'{path}: shard listed in {METADATA} is missing; regenerate with: '
          f'{GENERATE_COMMAND.format(data_dir)} --overwrite'
      )
    with np.load(path) as shard:
      images.append(shard['images'])
      programs.append(shard['programs'])
      indices.append(shard['scene_index'])
  images, programs = np.concatenate(images), np.concatenate(programs)
  expected = metadata['splits'][split]['num_scenes']
  if len(images) != expected:
    raise ValueError(
        f'{data_dir}: the {split} shards hold {len(images)} scenes, {METADATA} ' f'says {expected}'
    )
  if with_index:
    return images, programs, np.concatenate(indices)
  return images, programs


def _check_int(name, value, low, high=None):
  ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= low
  ok = ok and (high is None or value <= high)
  if not ok:
    allowed = f'>= {low}' if high is None else f'in [{low}, {high}]'
    raise ValueError(f'{name} must be an integer {allowed}, got {value!r}')


def _dataset_files(out_dir):
  return sorted(
      name
      for name in os.listdir(out_dir)
      if name == METADATA or (name.endswith('.npz') and name.split('-')[0] in SPLITS)
  )


def _save_npz(path, **arrays):
  # The temporary name starts with a dot and no split: neither load() nor _dataset_files() sees it.
  with files.atomic_output(path) as temporary:
    with open(temporary, 'wb') as f:
      np.savez_compressed(f, **arrays)
