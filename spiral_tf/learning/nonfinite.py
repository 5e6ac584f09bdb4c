"""Skips updates that go non-finite: keeps the last good value of every variable and puts it back.

One NaN or Inf in a loss or gradient poisons the weights for good (Adam carries it in its moments), so the
learner snapshots the networks *and* the optimizers before each update and, if the update's metrics or any
variable came out non-finite, restores the snapshot: the skipped update leaves no trace, not even in
Adam's step count. After `max_in_a_row` skipped updates in a row the run should stop (`exhausted`).

Usage:
  guard = NonFiniteGuard([*agent.variables, *d.variables, *optimizer.variables], max_in_a_row=10)
  guard.snapshot()
  metrics = update(batch)
  if not guard.accept(metrics):     # restored; guard.in_a_row / guard.skipped count the failures
    if guard.exhausted: stop()
"""

from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf


class NonFiniteGuard:
  """Snapshot / accept-or-restore around an update (see module docstring)."""

  def __init__(self, variables: Sequence[tf.Variable], max_in_a_row: int):
    if max_in_a_row < 1:
      raise ValueError(f'max_in_a_row={max_in_a_row}: must be ≥ 1')
    self._variables = list(variables)
    self.max_in_a_row = max_in_a_row
    self.in_a_row = 0
    self.skipped = 0
    self._saved = None
    floats = [v for v in self._variables if v.dtype.is_floating]
    self._all_finite = tf.function(
        lambda: tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in floats])
    )

  def snapshot(self) -> None:
    # np.array copies: an in-place (or XLA-aliased) update cannot reach the snapshot.
    self._saved = [np.array(v.numpy()) for v in self._variables]

  def variables_finite(self) -> bool:
    return bool(self._all_finite().numpy())

  def accept(self, metrics: Mapping[str, tf.Tensor]) -> bool:
    """True if the update is kept; otherwise restores the snapshot and returns False."""
    if self._saved is None:
      raise RuntimeError('NonFiniteGuard.accept() before snapshot()')
    finite = all(np.all(np.isfinite(np.asarray(v))) for v in metrics.values()) and self.variables_finite()
    if finite:
      self.in_a_row = 0
      return True
    for variable, value in zip(self._variables, self._saved):
      variable.assign(value)
    self.in_a_row += 1
    self.skipped += 1
    return False

  @property
  def exhausted(self) -> bool:
    return self.in_a_row >= self.max_in_a_row

  def bad_metrics(self, metrics: Mapping[str, tf.Tensor]) -> list[str]:
    """Names of the non-finite metrics (for the log line)."""
    return sorted(k for k, v in metrics.items() if not np.all(np.isfinite(np.asarray(v))))
