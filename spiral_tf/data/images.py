"""Image conversions shared by the dataset loaders: resizing, cropping, channels, uint8 rounding.

Every resize is a pair of small matrices applied as `R_rows @ image @ R_cols.T`, so a whole array of
images is resized with two batched matrix products (70,000 MNIST digits take about a second) and each
method is an explicit, testable weighting:

  area      output pixel = mean of the source area it covers, with fractional weights for partly
            covered source pixels (exact box filter; TensorFlow's `resize(method='area')`). Used for
            every downsample (Omniglot 105 -> 64, CelebA 178 -> 64): it keeps the ink and does not alias.
  bilinear  half-pixel-centred linear interpolation (TensorFlow's `resize(method='bilinear')`,
            no antialiasing). Used to upsample MNIST 28 -> 64, where area would give blocky digits.

Usage:
  small = resize(images_uint8, 64, 64, 'area')        # [N, H, W, C] -> uint8 [N, 64, 64, C]
  square = centre_crop(images_uint8)                 # largest centred square
  grey = convert_channels(rgb_uint8, 1)              # ITU-R BT.601 luma
"""

import numpy as np

RESIZE_METHODS = ('area', 'bilinear')
# ITU-R BT.601 luma, the weights of tf.image.rgb_to_grayscale and Pillow's 'L' conversion.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)
_CHUNK = 1024  # images per matrix product: bounds the float32 temporaries


def area_matrix(in_size: int, out_size: int) -> np.ndarray:
  """[out, in] weights: row i averages the source interval [i·s, (i+1)·s), s = in/out."""
  _check_sizes(in_size, out_size)
  scale = in_size / out_size
  lo = np.arange(out_size)[:, None] * scale  # output pixel i covers [lo_i, hi_i)
  hi = lo + scale
  src = np.arange(in_size)[None, :]  # source pixel j covers [j, j + 1)
  overlap = np.clip(np.minimum(hi, src + 1) - np.maximum(lo, src), 0.0, None)
  return (overlap / scale).astype(np.float32)


def bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
  """[out, in] weights of half-pixel-centred linear interpolation, clamped at the borders."""
  _check_sizes(in_size, out_size)
  centre = (np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5
  centre = np.clip(centre, 0.0, in_size - 1)
  left = np.floor(centre).astype(np.int64)
  right = np.minimum(left + 1, in_size - 1)
  frac = centre - left
  weights = np.zeros((out_size, in_size), np.float64)
  rows = np.arange(out_size)
  np.add.at(weights, (rows, left), 1.0 - frac)
  np.add.at(weights, (rows, right), frac)
  return weights.astype(np.float32)


def resize(images: np.ndarray, height: int, width: int, method: str) -> np.ndarray:
  """Resizes uint8 images [N, H, W, C] to uint8 [N, height, width, C] (see module docstring)."""
  images = np.asarray(images)
  if images.ndim != 4:
    raise ValueError(f'resize expects images [N, H, W, C], got shape {images.shape}')
  if method not in RESIZE_METHODS:
    raise ValueError(f'unknown resize method {method!r}; one of {RESIZE_METHODS}')
  n, in_h, in_w, channels = images.shape
  if (in_h, in_w) == (height, width):
    return to_uint8(images) if images.dtype != np.uint8 else images
  make = area_matrix if method == 'area' else bilinear_matrix
  rows, cols = make(in_h, height), make(in_w, width)
  out = np.empty((n, height, width, channels), np.uint8)
  for start in range(0, n, _CHUNK):
    chunk = images[start : start + _CHUNK].astype(np.float32)
    # tensordot makes each contraction one large matrix product (a stack of small ones is slow).
    by_rows = np.tensordot(chunk, rows, axes=([1], [1]))  # [n, W, C, h]
    resized = np.tensordot(by_rows, cols, axes=([1], [1]))  # [n, C, h, w]
    out[start : start + _CHUNK] = to_uint8(resized.transpose(0, 2, 3, 1))
  return out


def centre_crop(images: np.ndarray) -> np.ndarray:
  """The largest centred square of [N, H, W, C] images (CelebA 218×178 -> rows 20..197)."""
  _, h, w, _ = images.shape
  side = min(h, w)
  top, left = (h - side) // 2, (w - side) // 2
  return images[:, top : top + side, left : left + side]


def convert_channels(images: np.ndarray, channels: int) -> np.ndarray:
  """uint8 [N, H, W, 1|3] -> [N, H, W, channels]: grey is repeated; colour becomes BT.601 luma."""
  if channels not in (1, 3):
    raise ValueError(f'channels must be 1 (grey) or 3 (colour), got {channels!r}')
  have = images.shape[-1]
  if have == channels:
    return images
  if have == 1:
    return np.repeat(images, 3, axis=-1)
  if have == 3:
    out = np.empty(images.shape[:-1] + (1,), np.uint8)
    for start in range(0, len(images), _CHUNK):
      luma = images[start : start + _CHUNK].astype(np.float32) @ LUMA_WEIGHTS
      out[start : start + _CHUNK, ..., 0] = to_uint8(luma)
    return out
  raise ValueError(f'cannot convert images with {have} channels (shape {images.shape}) to {channels}')


def to_uint8(values: np.ndarray) -> np.ndarray:
  """Rounds [0, 255] floats to the nearest uint8 (clipped)."""
  return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _check_sizes(in_size, out_size):
  if in_size < 1 or out_size < 1:
    raise ValueError(f'resize sizes must be positive, got {in_size} -> {out_size}')
