"""The procedural scenes dataset: determinism, a fixed disjoint split, programs that replay."""

import os
import subprocess
import sys

import numpy as np
import pytest

from environments import mujoco_scenes  # before anything imports mujoco (selects EGL)
from spiral_tf.data import scenes_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_SCENES = 24
TEST_FRACTION = 0.25  # large, so a handful of scenes has some of each split


@pytest.fixture(scope='module')
def dataset_dir(tmp_path_factory):
  out_dir = str(tmp_path_factory.mktemp('scenes'))
  scenes_dataset.generate(out_dir, num_scenes=NUM_SCENES, seed=5, shard_size=10, test_fraction=TEST_FRACTION)
  return out_dir


def _load_all(out_dir):
  return {split: scenes_dataset.load(out_dir, split, with_index=True) for split in scenes_dataset.SPLITS}


def test_layout_and_shapes(dataset_dir):
  metadata = scenes_dataset.read_metadata(dataset_dir)
  assert metadata['num_scenes'] == NUM_SCENES and metadata['seed'] == 5
  assert metadata['action_keys'] == list(mujoco_scenes.ACTION_KEYS)
  files = sorted(f for f in os.listdir(dataset_dir) if f.endswith('.npz'))
  assert files == sorted(metadata['splits']['train']['files'] + metadata['splits']['test']['files'])
  assert len(metadata['splits']['train']['files']) == 3  # indices 0-9, 10-19, 20-23
  for split, (images, programs, index) in _load_all(dataset_dir).items():
    assert images.dtype == np.uint8 and images.shape[1:] == (64, 64, 3), split
    assert programs.dtype == np.int32 and programs.shape[1:] == (5, 7), split
    assert len(images) == len(programs) == len(index) == metadata['splits'][split]['num_scenes']
    assert np.all(np.diff(index) > 0)


def test_split_is_disjoint_complete_and_fixed_by_index(dataset_dir):
  loaded = _load_all(dataset_dir)
  train, test = set(loaded['train'][2].tolist()), set(loaded['test'][2].tolist())
  assert not train & test
  assert train | test == set(range(NUM_SCENES))
  assert test == {i for i in range(NUM_SCENES) if scenes_dataset.is_test_scene(i, TEST_FRACTION)}
  assert 0 < len(test) < NUM_SCENES
  # Over many indices the held-out share approaches test_fraction.
  share = np.mean([scenes_dataset.is_test_scene(i, 0.1) for i in range(20000)])
  assert abs(share - 0.1) < 0.01


def test_programs_are_valid_one_to_five_objects(dataset_dir):
  for _, programs, _ in _load_all(dataset_dir).values():
    for program in programs:
      mode = program[:, mujoco_scenes.ACTION_KEYS.index('mode')]
      count = int((mode == mujoco_scenes.ADD).sum())
      assert 1 <= count <= 5
      # adds first, then skip rows that are all zeros but the mode
      np.testing.assert_array_equal(mode[:count], mujoco_scenes.ADD)
      np.testing.assert_array_equal(mode[count:], mujoco_scenes.SKIP)
      assert not program[count:, :-1].any()
      locations = program[:count, mujoco_scenes.ACTION_KEYS.index('location')]
      assert len(set(locations.tolist())) == count
      for column, key in enumerate(mujoco_scenes.ACTION_KEYS):
        assert 0 <= program[:, column].min() and program[:, column].max() < (mujoco_scenes.NUM_VALUES[key])


def test_images_are_the_environment_rendering_of_their_programs(dataset_dir):
  images, programs, _ = scenes_dataset.load(dataset_dir, 'train', with_index=True)
  env = mujoco_scenes.MujocoScenes(episode_length=6)
  try:
    for image, program in zip(images[:6], programs[:6]):
      timestep = env.reset()
      for action in scenes_dataset.program_actions(program):
        timestep = env.step(action)
      assert timestep.last()
      canvas = timestep.observation['canvas']
      np.testing.assert_array_equal(np.rint(canvas * 255).astype(np.uint8), image)
      assert len(env.objects) == int((program[:, -1] == mujoco_scenes.ADD).sum())
  finally:
    env.close()


def test_deterministic_for_a_seed_and_independent_of_sharding(dataset_dir, tmp_path):
  again = str(tmp_path / 'again')
  scenes_dataset.generate(again, num_scenes=NUM_SCENES, seed=5, shard_size=7, test_fraction=TEST_FRACTION)
  other_seed = str(tmp_path / 'other')
  scenes_dataset.generate(
      other_seed, num_scenes=NUM_SCENES, seed=6, shard_size=10, test_fraction=TEST_FRACTION
  )
  first, second, third = _load_all(dataset_dir), _load_all(again), _load_all(other_seed)
  for split in scenes_dataset.SPLITS:
    for a, b in zip(first[split], second[split]):
      np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first[split][2], third[split][2])  # same split, other seed
    assert not np.array_equal(first[split][1], third[split][1])
    assert not np.array_equal(first[split][0], third[split][0])
  # A scene depends only on (seed, index): a smaller set is a prefix of a larger one.
  prefix = str(tmp_path / 'prefix')
  scenes_dataset.generate(prefix, num_scenes=10, seed=5, test_fraction=TEST_FRACTION)
  for split, (images, programs, index) in _load_all(prefix).items():
    keep = first[split][2] < 10
    np.testing.assert_array_equal(index, first[split][2][keep])
    np.testing.assert_array_equal(programs, first[split][1][keep])
    np.testing.assert_array_equal(images, first[split][0][keep])


def test_overwrite_is_explicit(dataset_dir, tmp_path):
  with pytest.raises(FileExistsError, match='overwrite'):
    scenes_dataset.generate(dataset_dir, num_scenes=2, seed=0)
  target = str(tmp_path / 'd')
  scenes_dataset.generate(target, num_scenes=12, seed=0, shard_size=4, test_fraction=0.5)
  scenes_dataset.generate(target, num_scenes=3, seed=0, shard_size=4, test_fraction=0.5, overwrite=True)
  total = sum(len(scenes_dataset.load(target, s)[0]) for s in scenes_dataset.SPLITS)
  assert total == 3
  assert len([f for f in os.listdir(target) if f.endswith('.npz')]) <= 2  # old shards removed


@pytest.mark.parametrize(
    'kwargs, message',
    [
        (dict(num_scenes=0), 'num_scenes'),
        (dict(shard_size=0), 'shard_size'),
        (dict(max_objects=20), r'max_objects must be an integer in \[1, 19\]'),
        (dict(test_fraction=1.0), 'test_fraction'),
        (dict(seed=-1), 'seed'),
    ],
)
def test_bad_generate_arguments(tmp_path, kwargs, message):
  arguments = dict(num_scenes=4, seed=0)
  arguments.update(kwargs)
  with pytest.raises(ValueError, match=message):
    scenes_dataset.generate(str(tmp_path / 'bad'), **arguments)


def test_load_errors(dataset_dir, tmp_path):
  missing = str(tmp_path / 'nowhere')
  with pytest.raises(FileNotFoundError, match='generate_scenes.py --out_dir=.*nowhere'):
    scenes_dataset.load(missing)
  with pytest.raises(ValueError, match="split must be one of.*'valid'"):
    scenes_dataset.load(dataset_dir, 'valid')
  with pytest.raises(ValueError, match=r'program must have shape \[steps, 7\]'):
    scenes_dataset.program_actions(np.zeros((5, 6), np.int32))


def test_command_line(tmp_path):
  out_dir = str(tmp_path / 'cli')
  grid = str(tmp_path / 'grid.png')
  result = subprocess.run(
      [
          sys.executable,
          os.path.join(ROOT, 'launch', 'generate_scenes.py'),
          f'--out_dir={out_dir}',
          '--num_scenes=10',
          '--seed=1',
          '--shard_size=4',
          f'--grid_png={grid}',
          '--grid_rows=1',
          '--grid_cols=3',
          '--grid_zoom=1',
      ],
      capture_output=True,
      text=True,
      timeout=120,
      check=False,
  )
  assert result.returncode == 0, result.stderr
  images, programs = scenes_dataset.load(out_dir, 'train')
  expected = [i for i in range(10) if not scenes_dataset.is_test_scene(i)]
  assert len(images) == len(expected)
  np.testing.assert_array_equal(programs[0], scenes_dataset.random_program(1, expected[0]))
  from PIL import Image  # pylint: disable=g-import-not-at-top

  page = np.asarray(Image.open(grid))
  assert page.shape == (64 + 8, 3 * 68 + 4, 3)
  np.testing.assert_array_equal(page[4:68, 4:68], images[0])
  # Bad flags are a clear error, not a traceback.
  result = subprocess.run(
      [
          sys.executable,
          os.path.join(ROOT, 'launch', 'generate_scenes.py'),
          f'--out_dir={out_dir}',
          '--num_scenes=0',
      ],
      capture_output=True,
      text=True,
      timeout=120,
      check=False,
  )
  assert result.returncode == 2 and 'num_scenes must be an integer >= 1' in result.stderr


def test_a_failed_write_leaves_neither_a_shard_nor_a_temporary_file(tmp_path, monkeypatch):
  def disk_full(f, **arrays):
    del arrays
    f.write(b'half a shard')
    raise OSError('disk full')

  monkeypatch.setattr(scenes_dataset.np, 'savez_compressed', disk_full)
  with pytest.raises(OSError, match='disk full'):
    scenes_dataset.generate(str(tmp_path / 'd'), num_scenes=3, seed=0)
  assert os.listdir(tmp_path / 'd') == []  # load() and a rerun find no dataset, not a broken one.
