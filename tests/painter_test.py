"""Painter API and paint CLI: image reading as training does, programs that replay, clear errors."""

import io
import json
import os
import shutil
import zipfile

import numpy as np
from PIL import Image
import pytest

import dataset_files
from environments import libmypaint
import export_fixtures as fixtures
import real_data
from spiral_tf import data
from spiral_tf.data import celeba
from spiral_tf.data import mnist
from spiral_tf.inference import image_io
from spiral_tf.inference import painter as painter_lib


@pytest.fixture(scope='module')
def painter():
  return painter_lib.Painter.from_saved_model(fixtures.exported_model())


def _tampered_export(tmp_path, **config_changes):
  """A copy of the export whose configuration asset says something else."""
  copy = tmp_path / 'tampered'
  shutil.copytree(fixtures.exported_model(), copy)
  asset = copy / 'assets' / 'spiral_export.json'
  metadata = json.loads(asset.read_text())
  for key, value in config_changes.items():
    if key == 'renderer':
      metadata['renderer'] = value
    else:
      metadata['config'][key] = value
  asset.write_text(json.dumps(metadata))
  return str(copy)


# --- reading images ----------------------------------------------------------------------------------


def test_read_image_modes_against_numpy(tmp_path):
  rng = np.random.default_rng(0)
  grey = rng.integers(0, 256, (30, 40), dtype=np.uint8)
  Image.fromarray(grey).save(tmp_path / 'grey.png')
  np.testing.assert_array_equal(image_io.read_image(tmp_path / 'grey.png'), grey[..., None])

  deep = rng.integers(0, 65536, (30, 40)).astype(np.uint16)
  Image.fromarray(deep).save(tmp_path / 'deep.png')
  assert Image.open(tmp_path / 'deep.png').mode.startswith('I;16')
  np.testing.assert_array_equal(
      image_io.read_image(tmp_path / 'deep.png')[..., 0], np.rint(deep / 257.0).astype(np.uint8)
  )

  rgba = rng.integers(0, 256, (30, 40, 4), dtype=np.uint8)
  Image.fromarray(rgba, 'RGBA').save(tmp_path / 'rgba.png')
  alpha = rgba[..., 3:] / 255.0
  expected = np.rint(rgba[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)  # on white paper
  got = image_io.read_image(tmp_path / 'rgba.png')
  assert np.max(np.abs(got.astype(int) - expected)) <= 1

  palette_image = Image.fromarray(rng.integers(0, 4, (30, 40), dtype=np.uint8), 'P')
  colours = [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30]
  palette_image.putpalette(colours + [0] * (768 - len(colours)))
  palette_image.save(tmp_path / 'palette.png')
  lut = np.array(colours, np.uint8).reshape(4, 3)
  np.testing.assert_array_equal(image_io.read_image(tmp_path / 'palette.png'), lut[np.asarray(palette_image)])
  palette_image.save(tmp_path / 'clear.png', transparency=1)  # colour 1 is see-through: white paper
  np.testing.assert_array_equal(
      image_io.read_image(tmp_path / 'clear.png'),
      np.where(np.asarray(palette_image)[..., None] == 1, 255, lut[np.asarray(palette_image)]),
  )

  y, x = np.mgrid[0:30, 0:40]
  rgb = np.stack([x * 6, y * 8, 255 - x * 3], -1).astype(np.uint8)  # smooth: JPEG keeps it closely
  Image.fromarray(rgb).save(tmp_path / 'photo.jpg', quality=95)
  jpeg = image_io.read_image(tmp_path / 'photo.jpg')
  assert jpeg.shape == (30, 40, 3) and np.mean(np.abs(jpeg.astype(int) - rgb)) < 3


def test_prepare_target_matches_an_independent_resize():
  rng = np.random.default_rng(1)
  # 640×800 → centre 640² → 10×10 block means (an exact area downsample).
  big = rng.integers(0, 256, (640, 800, 3), dtype=np.uint8)
  square = big[:, 80:720].astype(np.float64)
  blocks = square.reshape(64, 10, 64, 10, 3).mean(axis=(1, 3))
  luma = np.rint(np.rint(blocks) @ np.array([0.299, 0.587, 0.114]))
  got = image_io.prepare_target(big, 64, 1)
  assert got.shape == (64, 64, 1)
  assert np.max(np.abs(got[..., 0].astype(int) - luma)) <= 1
  # Small images are upsampled bilinearly (half-pixel centres), as MNIST is: 32 → 64.
  small = rng.integers(0, 256, (32, 32, 1), dtype=np.uint8)
  up = image_io.prepare_target(small, 64, 1)[..., 0].astype(np.float64)
  centre = np.clip((np.arange(64) + 0.5) / 2 - 0.5, 0, 31)
  lo = np.floor(centre).astype(int)
  hi = np.minimum(lo + 1, 31)
  w = centre - lo
  src = small[..., 0].astype(np.float64)
  rows = src[lo] * (1 - w)[:, None] + src[hi] * w[:, None]
  expected = rows[:, lo] * (1 - w) + rows[:, hi] * w
  assert np.max(np.abs(up - expected)) <= 0.5 + 1e-9


def _check_prepare_target_is_the_training_pipeline(data_dir, face_archive, tmp_path):
  """A CelebA JPEG and an MNIST digit read from files give the dataset loaders' exact arrays."""
  cache = tmp_path / 'cache'
  faces = data.load_images('celeba', 'test', data_dir=data_dir, channels=3, limit=2, cache_dir=cache)
  name = celeba.split_files(data_dir, 'test')[1]
  with zipfile.ZipFile(os.path.join(data_dir, 'celeba', face_archive)) as archive:
    (tmp_path / name).write_bytes(archive.read(f'img_align_celeba/{name}'))
  np.testing.assert_array_equal(
      image_io.prepare_target(image_io.read_image(tmp_path / name), 64, 3), faces[1]
  )
  grey_faces = data.load_images('celeba', 'test', data_dir=data_dir, channels=1, limit=2, cache_dir=cache)
  np.testing.assert_array_equal(
      image_io.prepare_target(image_io.read_image(tmp_path / name), 64, 1), grey_faces[1]
  )

  digits = data.load_images('mnist', 'test', data_dir=data_dir, channels=1, limit=1, cache_dir=cache)
  raw = mnist.read_idx_images(os.path.join(data_dir, 'mnist', 't10k-images-idx3-ubyte.gz'))[0]
  Image.fromarray(255 - raw).save(tmp_path / 'digit.png')  # ink on white, as a user would draw it
  np.testing.assert_array_equal(
      image_io.prepare_target(image_io.read_image(tmp_path / 'digit.png'), 64, 1), digits[0]
  )


def test_prepare_target_is_exactly_the_training_pipeline(tmp_path):
  # On files in the real formats written here (tests/dataset_files.py); the real data: the test below.
  dataset_files.write_celeba(tmp_path / 'data', {'train': 1, 'test': 3})
  dataset_files.write_mnist(tmp_path / 'data', {'test': 2})
  _check_prepare_target_is_the_training_pipeline(str(tmp_path / 'data'), 'img_align_celeba.zip', tmp_path)


def test_prepare_target_is_exactly_the_training_pipeline_on_real_data(tmp_path):
  data_dir = real_data.require('celeba')
  assert real_data.require('mnist') == data_dir
  _check_prepare_target_is_the_training_pipeline(str(data_dir), 'img_align_celeba_subset.zip', tmp_path)


def test_unreadable_images_raise_clear_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match='does not exist'):
    image_io.read_image(tmp_path / 'absent.png')
  (tmp_path / 'notes.txt').write_text('not an image')
  with pytest.raises(image_io.ImageReadError, match='notes.txt: not a readable image'):
    image_io.read_image(tmp_path / 'notes.txt')
  buffer = io.BytesIO()
  Image.fromarray(np.zeros((50, 50, 3), np.uint8)).save(buffer, format='PNG')
  (tmp_path / 'truncated.png').write_bytes(buffer.getvalue()[:60])
  with pytest.raises(image_io.ImageReadError, match='truncated.png'):
    image_io.read_image(tmp_path / 'truncated.png')


def test_atomic_output_leaves_no_partial_file(tmp_path):
  out = tmp_path / 'painting.png'
  image_io.write_png(out, np.full((8, 8, 1), 0.5, np.float32))
  before = out.read_bytes()
  with pytest.raises(RuntimeError):
    with image_io.atomic_output(out) as tmp:
      with open(tmp, 'wb') as f:
        f.write(b'partial')
      raise RuntimeError('interrupted')
  assert out.read_bytes() == before
  assert sorted(os.listdir(tmp_path)) == ['painting.png']


# --- painting ----------------------------------------------------------------------------------------


def test_paint_returns_consistent_paintings_whose_programs_replay(painter, tmp_path):
  target = fixtures.trained_run().train_images[3]
  paintings = painter.paint(target, num_samples=2, seed=5)
  assert len(paintings) == 2
  settings = painter.settings
  unit = settings['canvas_width'] / settings['grid_width']
  for painting in paintings:
    length = fixtures.EPISODE_LENGTH
    assert painting.canvases.shape == (length, 64, 64, 1)
    np.testing.assert_array_equal(painting.canvases[0], np.ones((64, 64, 1), np.float32))  # blank
    np.testing.assert_array_equal(painting.canvas, painting.canvases[-1])
    np.testing.assert_array_equal(painting.target, target.astype(np.float32) / 255)
    assert painting.mse == pytest.approx(np.mean((painting.canvas - target / 255.0) ** 2), rel=1e-6)
    assert len(painting.actions) == len(painting.records) == length - 1
    pen = [0.0, 0.0]
    for record, action in zip(painting.records, painting.actions):
      assert record['action'] == action
      assert record['from'] == pen
      row, col = divmod(action['end'], settings['grid_width'])
      assert record['to'] == [unit * col, unit * row]
      if action['flag'] == 1:
        assert record['type'] == 'paint'
        row, col = divmod(action['control'], settings['grid_width'])
        assert record['control'] == [unit * col, unit * row]
        assert record['pressure'] == pytest.approx(0.1 + 0.1 * action['pressure'])
        assert record['radius'] == settings['brush_sizes'][action['size']]
        assert record['rgb'] == [0.0, 0.0, 0.0]
      else:
        assert record['type'] == 'move' and 'radius' not in record
      pen = record['to']
    # The program file replays exactly at scale 1 and approximately (brush jitter) at 2×.
    path = image_io.write_text(tmp_path / 'program.json', painting.to_json_text())
    with open(path) as f:
      assert json.load(f) == json.loads(json.dumps(painting.to_json()))
    np.testing.assert_array_equal(painter_lib.replay_program(path), painting.canvas)
    np.testing.assert_array_equal(
        libmypaint.replay(painter_lib.load_program(path)[0], **painter.settings), painting.canvas
    )
    big = painter_lib.replay_program(path, scale=2)
    np.testing.assert_array_equal(big, libmypaint.replay(painting.actions, scale=2, **settings))
    assert big.shape == (128, 128, 1)
    # The same picture at 2×, up to dry_brush's dab jitter: about as much ink (measured over 172
    # random paintings: 2× ink / 1× ink in [0.86, 1.28]).
    ink, big_ink = np.sum(1 - painting.canvas), np.sum(1 - big) / 4
    if ink > 1:
      assert 2 / 3 < big_ink / ink < 3 / 2, (ink, big_ink)


def test_program_records_colour_and_pressure_values():
  settings = fixtures.tiny_config('/tmp/unused', use_color=True, grid_width=32).libmypaint_settings()
  actions = [
      {
          'control': 33,
          'end': 2 * 32 + 5,
          'flag': 1,
          'pressure': 9,
          'size': 2,
          'red': 19,
          'green': 0,
          'blue': 10,
      },
      {'control': 0, 'end': 31, 'flag': 0, 'pressure': 0, 'size': 0, 'red': 0, 'green': 0, 'blue': 0},
  ]
  paint, move = painter_lib.program_records(actions, settings)
  assert paint['from'] == [0.0, 0.0] and paint['control'] == [2.0, 2.0] and paint['to'] == [10.0, 4.0]
  assert paint['pressure'] == 1.0 and paint['radius'] == 4.0
  assert paint['rgb'] == [1.0, 0.0, round(10 / 19, 4)]
  assert move == {'step': 1, 'type': 'move', 'from': [10.0, 4.0], 'to': [62.0, 0.0], 'action': actions[1]}


def test_paint_reads_image_files_of_every_kind(painter, tmp_path):
  rng = np.random.default_rng(2)
  Image.fromarray((rng.integers(0, 65536, (100, 80))).astype(np.uint16)).save(tmp_path / 'deep.png')
  Image.fromarray(rng.integers(0, 256, (90, 120, 4), dtype=np.uint8), 'RGBA').save(tmp_path / 'a.png')
  Image.fromarray(rng.integers(0, 256, (1200, 1600, 3), dtype=np.uint8)).save(tmp_path / 'big.jpg')
  for name in ('deep.png', 'a.png', 'big.jpg'):
    expected = image_io.prepare_target(image_io.read_image(tmp_path / name), 64, 1)
    (painting,) = painter.paint(tmp_path / name)
    np.testing.assert_array_equal(painting.target, expected.astype(np.float32) / 255)


def test_painter_refuses_bad_models_and_inputs(painter, tmp_path):
  with pytest.raises(painter_lib.ModelNotFoundError, match='does not exist'):
    painter_lib.Painter.from_saved_model(tmp_path / 'absent')
  run_dir = fixtures.trained_run().root_dir
  with pytest.raises(painter_lib.ModelNotFoundError, match='did you mean'):
    painter_lib.Painter.from_saved_model(run_dir)
  with pytest.raises(painter_lib.ModelError, match="trained for the 'mujoco_scenes' renderer"):
    painter_lib.Painter.from_saved_model(_tampered_export(tmp_path, renderer='mujoco_scenes'))
  shutil.rmtree(tmp_path / 'tampered')
  with pytest.raises(
      painter_lib.ModelError, match='trained for another renderer.*end: model 256 vs ' 'renderer 1024'
  ):
    painter_lib.Painter.from_saved_model(_tampered_export(tmp_path, grid_width=32))
  with pytest.raises(ValueError, match='conditional agent'):
    painter.paint(None)
  with pytest.raises(ValueError, match='num_samples'):
    painter.paint(np.zeros((64, 64), np.uint8), num_samples=0)


# --- the paint CLI -----------------------------------------------------------------------------------

# Runs launch/paint.py's main() once per argument list in one process (one TensorFlow import and model
# load for all), parsing each command line with absl as the real entry point does.
PAINT_MAIN_MANY_TIMES = r"""
import json, runpy, sys
from absl import flags
cli = runpy.run_path('launch/paint.py', run_name='paint_cli')
for args in json.loads(sys.argv[1]):
  flags.FLAGS.unparse_flags()
  flags.FLAGS(['paint.py'] + args)
  print('exit', cli['main'](['paint.py']), flush=True)
"""


def test_paint_cli_on_rgba_grey_16_bit_palette_and_large_images(tmp_path):
  rng = np.random.default_rng(4)
  Image.fromarray(rng.integers(0, 256, (700, 900, 4), dtype=np.uint8), 'RGBA').save(tmp_path / 'rgba.png')
  Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(tmp_path / 'grey.png')
  Image.fromarray(rng.integers(0, 65536, (300, 200)).astype(np.uint16)).save(tmp_path / 'deep.png')
  palette = Image.fromarray(rng.integers(0, 3, (50, 70), dtype=np.uint8), 'P')
  palette.putpalette([255, 255, 255, 0, 0, 0, 200, 30, 30] + [0] * 759)
  palette.save(tmp_path / 'palette.png', transparency=2)
  Image.fromarray(rng.integers(0, 256, (2400, 3200, 3), dtype=np.uint8)).save(tmp_path / 'large.jpg')
  names = ['rgba.png', 'grey.png', 'deep.png', 'palette.png', 'large.jpg']
  out = tmp_path / 'out'
  runs = [
      [
          f'--model={fixtures.exported_model()}',
          f'--target={tmp_path / name}',
          f'--out={out / name}.png',
          f'--program={out / name}.json',
      ]
      for name in names
  ]
  runs[0] += [f'--strokes={out / "rgba.gif"}', '--scale=2']
  result = fixtures.run_python(PAINT_MAIN_MANY_TIMES, json.dumps(runs))
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.count('exit 0') == len(names), result.stdout + result.stderr[-2000:]
  assert sorted(os.listdir(out)) == sorted(
      [f'{n}.{e}' for n in names for e in ('png', 'json')] + ['rgba.gif', 'rgba.png_x2.png']
  )
  for name in names:
    painting = np.asarray(Image.open(out / f'{name}.png'))
    assert painting.shape == (64, 64)
    replayed = painter_lib.replay_program(out / f'{name}.json')
    np.testing.assert_array_equal(image_io.to_uint8_image(replayed), painting)
    with open(out / f'{name}.json') as f:
      mse = json.load(f)['mse']
    target = image_io.prepare_target(image_io.read_image(tmp_path / name), 64, 1) / 255.0
    assert mse == pytest.approx(np.mean((replayed - target) ** 2), rel=1e-5)

  painting = np.asarray(Image.open(out / 'rgba.png.png'))
  assert np.asarray(Image.open(out / 'rgba.png_x2.png')).shape == (128, 128)
  gif = Image.open(out / 'rgba.gif')
  # One frame per step, except that the GIF writer merges a move's unchanged canvas into the frame before.
  actions, settings = painter_lib.load_program(out / 'rgba.png.json')
  steps = [
      image_io.to_uint8_image(libmypaint.replay(actions[:t], **settings)) for t in range(len(actions) + 1)
  ]
  changes = sum(not np.array_equal(a, b) for a, b in zip(steps, steps[1:]))
  assert gif.n_frames == 1 + changes and gif.size == (128, 128)
  gif.seek(gif.n_frames - 1)
  np.testing.assert_array_equal(np.asarray(gif.convert('L'))[::2, ::2], painting)


def test_paint_cli_bad_inputs_fail_without_outputs(tmp_path):
  model = fixtures.exported_model()
  (tmp_path / 'notes.png').write_text('this is text, not a PNG')
  out = tmp_path / 'out'
  cases = [
      ([f'--model={model}', f'--target={tmp_path / "notes.png"}'], 'notes.png: not a readable image'),
      ([f'--model={model}', f'--target={tmp_path / "absent.png"}'], 'does not exist'),
      ([f'--model={model}'], 'pass the image to reconstruct with --target'),
      ([f'--model={tmp_path / "nowhere"}', f'--target={tmp_path / "notes.png"}'], 'does not exist'),
      (
          [
              f'--model={_tampered_export(tmp_path, renderer="mujoco_scenes")}',
              f'--target={tmp_path / "notes.png"}',
          ],
          "trained for the 'mujoco_scenes' renderer",
      ),
      (
          [f'--model={model}', f'--target={tmp_path / "fine.png"}', f'--out={out / "p.xyz"}'],
          "unknown image extension '.xyz'",
      ),
  ]
  Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / 'fine.png')
  for args, message in cases:
    result = fixtures.run_script(
        'paint.py',
        f'--out={out / "p.png"}',
        f'--program={out / "p.json"}',
        f'--strokes={out / "s.gif"}',
        *args,
    )
    assert result.returncode == 1, (args, result.stderr[-2000:])
    assert message in result.stderr, (message, result.stderr[-2000:])
    assert not out.exists() or os.listdir(out) == []


def test_unconditional_agent_paints_samples_and_refuses_targets(tmp_path):
  """A freshly initialised unconditional agent (the weights do not matter for the plumbing)."""
  from spiral_tf import components  # pylint: disable=g-import-not-at-top
  from spiral_tf.inference import export  # pylint: disable=g-import-not-at-top

  config = fixtures.tiny_config(str(tmp_path / 'run'), conditional=False, reward='spiral')
  agent = components.make_agent(config)
  export_dir = export.export_saved_model(agent, config, tmp_path / 'export')
  painter = painter_lib.Painter.from_saved_model(export_dir)
  assert not painter.conditional
  paintings = painter.paint(None, num_samples=3, seed=0)
  assert len(paintings) == 3
  for painting in paintings:
    assert painting.target is None and painting.mse is None
    np.testing.assert_array_equal(painting.replay(), painting.canvas)
  with pytest.raises(ValueError, match='unconditional agent'):
    painter.paint(np.zeros((64, 64), np.uint8))
  result = fixtures.run_script(
      'paint.py', f'--model={export_dir}', f'--target={tmp_path / "x.png"}', f'--out={tmp_path / "out.png"}'
  )
  assert result.returncode == 1 and 'unconditional agent' in result.stderr
  assert not (tmp_path / 'out.png').exists()
