"""Compute precision of the networks: float32, or Keras's mixed_bfloat16.

Under `mixed_bfloat16` the layers keep float32 variables and compute in bfloat16 (oneDNN's AMX and
AVX-512 BF16 kernels on recent x86 CPUs, the MXU on TPUs). Everything that sums many terms or needs the
full exponent-and-mantissa stays float32: the networks cast their logits, values and scores to float32
before they leave, so log-softmax, entropies, V-trace, the losses, the gradient penalty's norms, the
reward normaliser and the optimizer all run in float32 whatever the precision. bfloat16 has float32's
exponent range, so no loss scaling is needed.

Usage:
  with precision.layers_in(config.precision):   # layers built here compute in that precision
    layer = tf.keras.layers.Dense(8)
  precision.compute_dtype('mixed_bfloat16')     # tf.bfloat16
"""

import contextlib

import tensorflow as tf

from spiral_tf import config as config_lib


def _check(precision: str) -> str:
  if precision not in config_lib.PRECISIONS:
    raise ValueError(f'precision {precision!r} is not one of {config_lib.PRECISIONS}')
  return precision


def compute_dtype(precision: str) -> tf.DType:
  """The dtype the layers of that precision compute in."""
  return tf.bfloat16 if _check(precision) == 'mixed_bfloat16' else tf.float32


@contextlib.contextmanager
def layers_in(precision: str):
  """Keras layers constructed inside take `precision`'s dtype policy (a layer keeps the policy it was
  built with; the global policy is restored on exit, so nothing else in the process changes)."""
  previous = tf.keras.mixed_precision.global_policy()
  tf.keras.mixed_precision.set_global_policy(_check(precision))  # The names are Keras policies'.
  try:
    yield
  finally:
    tf.keras.mixed_precision.set_global_policy(previous)
