"""The discriminator D: a DCGAN-like critic, its losses, and the conditional input pairings.

  D(x)   x [B, W, W, C'] → 4 × (Conv 4×4/2, LeakyReLU 0.2) → flatten → Linear 1 → score [B]
         No batch norm (it breaks the per-example gradient penalty). With `spectral_norm=True` every
         weight is divided by its largest singular value (one power iteration per training call).

Losses (each returns a flat dict of scalars, `loss` being the one to minimise):
  wgan_gp_loss   E[D(fake)] − E[D(real)] + λ·E[(‖∇D(x̂)‖ − slope)²] + centring·(E[D(real)] + E[D(fake)])²/4
                 x̂ = ε·real + (1 − ε)·fake, ε ~ U[0, 1] per example. DeepMind's agents: λ = slope = 1;
                 our default λ = 10 (Gulrajani et al.): for a D linear along the real–fake line the loss
                 −g·d + λ(g − 1)² is minimised at slope g = 1 + d/(2λ), and real–fake distances on 64²
                 images are d ≈ 20–35, so λ = 1 lets D's slope (and outputs) grow tenfold.
                 The centring term pins the free offset of a Wasserstein critic (its mean) near zero.
  sn_gan_loss    softplus(−D(real)) + softplus(D(fake)) (the standard, non-saturating GAN; SPIRAL++).
  reward_score   what the agent is paid for a render: D(x) for WGAN; for the GAN loss the bounded σ(D(x))
                 (D's probability that the render is real, in (0, 1) — SPIRAL++ and urw7rs/spiralpp; the
                 unbounded log σ(D(x)) pays −∞ for a render D is sure of, which swamps every other signal).

Conditional inputs (`pair_inputs`): 'none' → the image; 'pair' → concat(image, target) on channels, real =
(target, target); 'complement' → concat(target·(1−m), image·m) for a mask m covering one half of the image
(top, bottom, left or right, `half` ∈ {0..3}), real = (target·(1−m), target·m) (SPIRAL++).

Usage:
  d = Discriminator(size='deepmind')
  d = Discriminator(size='deepmind', precision='mixed_bfloat16')   # bfloat16 convs, float32 scores
  losses = wgan_gp_loss(d, real_inputs, fake_inputs, epsilon)      # inside a GradientTape over d
"""

from typing import Optional, Sequence

import tensorflow as tf

from spiral_tf import config as config_lib
from spiral_tf.networks import precision as precision_lib

SIZES = {'deepmind': (64, 128, 256, 512), 'tiny': (16, 32, 64, 128)}
CONDITIONING = ('none',) + config_lib.D_CONDITIONINGS  # 'none': an unconditional D.


class SpectralNormalized(tf.keras.layers.Layer):
  """A Conv2D or Dense whose kernel is used as W / σ(W), σ estimated by power iteration.

  Unlike Keras's SpectralNormalization wrapper (which overwrites the kernel with W/σ outside the
  gradient), the gradient here flows through W/σ, with the singular vector u treated as a constant.
  """

  def __init__(self, layer: tf.keras.layers.Layer, **kwargs):
    super().__init__(**kwargs)
    self.layer = layer

  def build(self, input_shape):
    self.layer.build(input_shape)
    kernel = self.layer.kernel
    self.u = self.add_weight(
        'u',
        shape=[1, kernel.shape[-1]],
        trainable=False,
        dtype=kernel.dtype,
        initializer=tf.keras.initializers.RandomNormal(),
        # Every replica computes the same u from the same weights, and
        # updates its own copy (no cross-replica sync inside XLA).
        synchronization=tf.VariableSynchronization.ON_READ,
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
    )
    super().build(input_shape)

  def call(self, x, training=False):
    # σ by power iteration in the variables' dtype (float32, or float64 in tests) whatever the compute
    # dtype (under mixed precision the variables read as bfloat16 here); only the normalised kernel is
    # cast to the dtype of x.
    dtype = self.layer.kernel.dtype  # An AutoCastVariable's own dtype, not the one it reads as.
    kernel = tf.cast(self.layer.kernel, dtype)
    w = tf.reshape(kernel, [-1, kernel.shape[-1]])
    v = tf.math.l2_normalize(tf.matmul(tf.cast(self.u, dtype), w, transpose_b=True))
    u = tf.math.l2_normalize(tf.matmul(v, w))
    u, v = tf.stop_gradient(u), tf.stop_gradient(v)
    if training:
      self.u.assign(u)
    sigma = tf.reduce_sum(tf.matmul(v, w) * u)
    normalized = tf.cast(kernel / sigma, x.dtype)
    if isinstance(self.layer, tf.keras.layers.Conv2D):
      y = tf.nn.conv2d(x, normalized, self.layer.strides, self.layer.padding.upper())
    else:
      y = tf.matmul(x, normalized)
    return tf.nn.bias_add(y, tf.cast(self.layer.bias, x.dtype))


class Discriminator(tf.Module):
  """DCGAN-like critic on [B, W, W, C'] images (W a multiple of 16); returns scores [B]."""

  def __init__(
      self,
      size: str = 'deepmind',
      channels: Optional[Sequence[int]] = None,
      spectral_norm: bool = False,
      input_shape: Optional[Sequence[int]] = None,
      dtype=tf.float32,
      precision: str = 'float32',
      name: str = 'discriminator',
  ):
    """`dtype`: of the weights and inputs (float64 for numerical tests); `precision`: compute precision
    (spiral_tf/networks/precision.py; mixed_bfloat16 needs float32 weights). Scores are returned in
    `dtype`."""
    super().__init__(name=name)
    if channels is None:
      if size not in SIZES:
        raise ValueError(f'Discriminator size {size!r} is not one of {sorted(SIZES)}')
      channels = SIZES[size]
    if precision_lib.compute_dtype(precision) != tf.float32 and dtype != tf.float32:
      raise ValueError(f'precision {precision!r} computes with float32 weights, not {dtype}')
    layer_dtype = dtype if precision == 'float32' else precision  # A Keras dtype policy's name.
    wrap = (
        (lambda layer: SpectralNormalized(layer, dtype=layer_dtype))
        if spectral_norm
        else (lambda layer: layer)
    )
    self._convs = [
        wrap(tf.keras.layers.Conv2D(n, 4, strides=2, padding='same', dtype=layer_dtype, name=f'conv_{i}'))
        for i, n in enumerate(channels)
    ]
    self._out = wrap(tf.keras.layers.Dense(1, dtype=layer_dtype, name='out'))
    self._spectral_norm = spectral_norm
    self._dtype = dtype
    if input_shape is not None:
      self(tf.zeros([1] + list(input_shape), dtype))

  def __call__(self, images, training: bool = False):
    """Scores [B]; `training` advances the spectral-norm power iteration."""
    x = tf.convert_to_tensor(images, self._dtype)
    if x.shape.rank != 4 or x.shape[1] % 16 or x.shape[1] != x.shape[2]:
      raise ValueError(f'discriminator input shape {x.shape}: need [B, W, W, C] with W a multiple of 16')
    for conv in self._convs:
      x = conv(x, training=training) if self._spectral_norm else conv(x)
      x = tf.nn.leaky_relu(x, 0.2)
    x = tf.reshape(x, [tf.shape(x)[0], x.shape[1] * x.shape[2] * x.shape[3]])
    x = self._out(x, training=training) if self._spectral_norm else self._out(x)
    return tf.cast(x[:, 0], self._dtype)

  def num_parameters(self) -> int:
    return int(sum(v.shape.num_elements() for v in self.trainable_variables))


def half_masks(half, width: int, dtype=tf.float32):
  """[B, W, W, 1] masks: half 0 = top, 1 = bottom, 2 = left, 3 = right half of the image is 1."""
  half = tf.convert_to_tensor(half)[:, None, None, None]
  index = tf.range(width)
  rows, cols = index[None, :, None, None], index[None, None, :, None]
  upper = rows < width // 2
  left = cols < width // 2
  mask = tf.where(half == 0, upper, tf.where(half == 1, ~upper, tf.where(half == 2, left, ~left)))
  return tf.cast(mask, dtype)


def pair_inputs(images, targets=None, conditioning: str = 'none', half=None):
  """D's input for renders (or real images) `images`, conditioned on `targets` (see module docstring)."""
  if conditioning == 'none':
    return images
  if targets is None:
    raise ValueError(f'conditioning {conditioning!r} needs targets')
  if conditioning == 'pair':
    return tf.concat([images, targets], -1)
  if conditioning == 'complement':
    if half is None:
      raise ValueError("conditioning 'complement' needs `half` (which half of each image D judges)")
    mask = half_masks(half, images.shape[1], images.dtype)
    return tf.concat([targets * (1.0 - mask), images * mask], -1)
  raise ValueError(f'conditioning {conditioning!r} is not one of {CONDITIONING}')


def gradient_penalty(d: Discriminator, real, fake, epsilon, slope: float = 1.0):
  """(E[(‖∇D(x̂)‖ − slope)²], ‖∇D(x̂)‖ [B]) at x̂ = ε·real + (1 − ε)·fake, ε [B] per example."""
  epsilon = tf.reshape(tf.cast(epsilon, real.dtype), [-1, 1, 1, 1])
  mixed = epsilon * real + (1.0 - epsilon) * fake
  with tf.GradientTape() as tape:
    tape.watch(mixed)
    scores = d(mixed)
  grads = tape.gradient(scores, mixed)
  # A tiny floor keeps the norm's own gradient finite where ∇D vanishes.
  norms = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]) + 1e-12)
  return tf.reduce_mean(tf.square(norms - slope)), norms


def wgan_gp_loss(
    d: Discriminator,
    real,
    fake,
    epsilon,
    penalty_weight: float = 10.0,
    slope: float = 1.0,
    centring_weight: float = 1e-3,
) -> dict:
  d_real, d_fake = d(real, training=True), d(fake, training=True)
  penalty, norms = gradient_penalty(d, real, fake, epsilon, slope)
  mean_real, mean_fake = tf.reduce_mean(d_real), tf.reduce_mean(d_fake)
  centring = tf.square(0.5 * (mean_real + mean_fake))
  loss = mean_fake - mean_real + penalty_weight * penalty + centring_weight * centring
  return {
      'loss': loss,
      'loss_real': -mean_real,
      'loss_fake': mean_fake,
      'gradient_penalty': penalty,
      'centring': centring,
      'score_real': mean_real,
      'score_fake': mean_fake,
      'interpolate_grad_norm': tf.reduce_mean(norms),
  }


def sn_gan_loss(d: Discriminator, real, fake) -> dict:
  d_real, d_fake = d(real, training=True), d(fake, training=True)
  loss_real = tf.reduce_mean(tf.nn.softplus(-d_real))
  loss_fake = tf.reduce_mean(tf.nn.softplus(d_fake))
  return {
      'loss': loss_real + loss_fake,
      'loss_real': loss_real,
      'loss_fake': loss_fake,
      'gradient_penalty': tf.zeros([]),
      'centring': tf.zeros([]),
      'score_real': tf.reduce_mean(d_real),
      'score_fake': tf.reduce_mean(d_fake),
      'interpolate_grad_norm': tf.zeros([]),
  }  # No interpolates: the spectral norm bounds D instead.


def reward_score(scores, loss: str):
  """The agent's payment for D's scores: WGAN pays the score, the GAN loss σ(score)."""
  if loss == 'wgan-gp':
    return scores
  if loss == 'sn-gan':
    return tf.math.sigmoid(scores)
  raise ValueError(f'discriminator loss {loss!r} is not one of {config_lib.D_LOSSES}')
