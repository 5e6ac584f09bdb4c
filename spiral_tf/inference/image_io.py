"""Image files in and out for inference: any common image → a training-style target; atomic writes.

Reading (`read_image`) accepts what Pillow decodes — PNG and JPEG among others — in any mode: grey,
RGB, RGBA / LA / transparent palette (composited on white paper, the painter's background), palette,
16-bit grey (scaled to 8 bits), CMYK. JPEG EXIF rotation is applied. `prepare_target` then does what the
training data pipeline does to a dataset image (spiral_tf/data/images.py, the same helpers): the largest
centred square, an area downsample (or a bilinear upsample for small images, as MNIST's 28 → 64), and
BT.601 luma for grey agents.

Writing (`write_png`, `write_gif`, `write_json`) goes to a temporary file in the destination's directory
and is renamed over it, so an interrupted run never leaves a half-written output.

Usage:
  pixels = read_image('face.jpg')                       # uint8 [H, W, 1|3], ink on white
  target = prepare_target(pixels, width=64, channels=3)   # uint8 [64, 64, 3]
  write_png('painting.png', canvas_float01)
"""

import os

import numpy as np
from PIL import Image
from PIL import ImageOps

from spiral_tf import files
from spiral_tf.data import images as image_ops


class ImageReadError(ValueError):
  """A file that is not a readable image; the message names it."""


def read_image(path) -> np.ndarray:
  """Decodes an image file into uint8 [H, W, 1] (grey) or [H, W, 3] (colour), on white paper.

  Raises:
    FileNotFoundError: `path` does not exist (or is a directory).
    ImageReadError: the file is not an image Pillow can decode, or is truncated.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f'target image {path!r} does not exist' + (' (it is a directory)' if os.path.isdir(path) else '')
    )
  try:
    with Image.open(path) as image:
      image.load()  # Decode now: a truncated file fails here, not later.
      image = ImageOps.exif_transpose(image)
      return to_pixels(image)
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
    raise ImageReadError(
        f'{path}: not a readable image ({type(e).__name__}: {e}); '
        'expected a PNG or JPEG (grey, RGB, RGBA, 16-bit or palette)'
    ) from None


def to_pixels(image: Image.Image) -> np.ndarray:
  """A decoded Pillow image as uint8 [H, W, 1 | 3], transparency composited on white."""
  mode = image.mode
  if mode == 'P' or mode == 'PA':
    image = image.convert('RGBA' if ('transparency' in image.info or mode == 'PA') else 'RGB')
    mode = image.mode
  if mode in ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I'):
    # 16-bit grey (PNG). 'I' is 32-bit: anything above 255 means a 16-bit range.
    values = np.asarray(image, dtype=np.float64)
    scale = 255.0 / 65535.0 if mode != 'I' or values.max() > 255 else 1.0
    return image_ops.to_uint8(values * scale)[..., None]
  if mode == 'F':
    values = np.asarray(image, dtype=np.float64)
    scale = 255.0 if values.max() <= 1.0 else 1.0
    return image_ops.to_uint8(values * scale)[..., None]
  if mode in ('1', 'L'):
    return np.asarray(image.convert('L'))[..., None]
  if mode in ('LA', 'La', 'RGBA', 'RGBa'):
    rgba = np.asarray(image.convert('RGBA'), dtype=np.float32)
    alpha = rgba[..., 3:] / 255.0
    on_white = rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)
    pixels = image_ops.to_uint8(on_white)
    return pixels[..., :1] if mode in ('LA', 'La') else pixels
  return np.asarray(image.convert('RGB'))


def prepare_target(pixels: np.ndarray, width: int, channels: int) -> np.ndarray:
  """uint8 [H, W, C] (any size, C ∈ {1, 3}) → uint8 [width, width, channels], as training data is made.

  The largest centred square, then an area downsample (bilinear upsample when the square is smaller
  than `width`), then grey ↔ colour (BT.601 luma) — the helpers of spiral_tf/data/images.py.
  """
  pixels = np.asarray(pixels)
  if pixels.ndim == 2:
    pixels = pixels[..., None]
  if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[-1] not in (1, 3):
    raise ValueError(f'target pixels must be uint8 [H, W, 1|3], got {pixels.dtype} {pixels.shape}')
  if min(pixels.shape[:2]) < 1:
    raise ValueError(f'target image is empty ({pixels.shape[1]}×{pixels.shape[0]})')
  square = image_ops.centre_crop(pixels[None])
  side = square.shape[1]
  method = 'area' if side >= width else 'bilinear'
  resized = image_ops.resize(square, width, width, method)
  return image_ops.convert_channels(resized, channels)[0]


def to_uint8_image(canvas) -> np.ndarray:
  """float [H, W, C] in [0, 1] → uint8 [H, W] (grey) or [H, W, C]."""
  pixels = image_ops.to_uint8(np.asarray(canvas, np.float32) * 255.0)
  return pixels[..., 0] if pixels.shape[-1] == 1 else pixels


# Images and JSON are written atomically (spiral_tf/files.py); callers of image_io.atomic_output and
# image_io.write_json keep working.
atomic_output = files.atomic_output
write_json = files.write_json


def image_format(path, default='PNG'):
  """Pillow's format name for `path`'s extension (`default` if none); ValueError if unknown."""
  ext = os.path.splitext(os.fspath(path))[1].lower()
  registered = Image.registered_extensions()
  if not ext:
    return default
  if ext not in registered:
    raise ValueError(f'{path}: unknown image extension {ext!r} (use .png, .jpg, .gif, ...)')
  return registered[ext]


def write_png(path, canvas) -> str:
  """Writes a float [H, W, C] canvas in [0, 1] (format from the extension; PNG if none)."""
  image = Image.fromarray(to_uint8_image(canvas))
  fmt = image_format(path)
  with atomic_output(path) as tmp:
    image.save(tmp, format=fmt)
  return os.fspath(path)


def write_gif(path, frames, frame_ms=250, last_frame_ms=1500) -> str:
  """Writes float [T, H, W, C] frames in [0, 1] as a looping GIF (the last frame held longer).

  Pillow merges a frame identical to the one before (a pen move) into it, adding up their durations.
  """
  frames = [Image.fromarray(to_uint8_image(f)) for f in frames]
  if not frames:
    raise ValueError('write_gif needs at least one frame')
  durations = [frame_ms] * (len(frames) - 1) + [last_frame_ms]
  with atomic_output(path) as tmp:
    frames[0].save(
        tmp, format='GIF', save_all=True, append_images=frames[1:], duration=durations, loop=0, disposal=1
    )
  return os.fspath(path)


def write_text(path, text: str) -> str:
  with atomic_output(path) as tmp:
    with open(tmp, 'w', encoding='utf-8') as f:
      f.write(text)
  return os.fspath(path)


def upscale_nearest(canvas, factor: int) -> np.ndarray:
  """[..., H, W, C] → [..., H·factor, W·factor, C] by pixel repetition (for viewing small canvases)."""
  canvas = np.asarray(canvas)
  return np.repeat(np.repeat(canvas, factor, axis=-3), factor, axis=-2)
