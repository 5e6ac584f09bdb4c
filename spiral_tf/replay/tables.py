"""The Reverb hub between actors and the learner: its tables, built from the specs.

Tables:
  queue             whole episodes (spiral_tf/replay/trajectory.py); FIFO, each sampled once, bounded: a
                    full queue blocks the actors, which keeps their policy lag small (IMPALA).
  fakes             final renders (and their targets) for D; uniform sampling from the most recent
                    `fakes_size` (the paper's replay of the last 20 batches = 1,280 renders). With
                    `fakes_queue` (a population's shared D, SPIRAL++) a queue instead: each render is
                    sampled once, oldest first, and a full table drops its oldest (actors never block).
  policy_variables  the agent's weights and the learner step they come from (max_size 1).
  d_variables       the discriminator's weights (max_size 1): the evaluator and any extra learners read them.

Usage:
  tables = make_tables(trajectory_spec, fake_spec, policy_vars, d_vars, queue_size=256)
  server = reverb.Server(tables, port=port)        # in the `reverb` role
  client = reverb.Client(address); wait_for_server(address, timeout_s=60)
"""

import time
from typing import Any, Sequence

import reverb
import tensorflow as tf

QUEUE = 'queue'
FAKES = 'fakes'
POLICY_VARIABLES = 'policy_variables'
D_VARIABLES = 'd_variables'


def variables_signature(variables: Sequence[tf.Variable]) -> dict:
  """The signature of a variables table: the learner step and one tensor per variable."""
  return {
      'learner_step': tf.TensorSpec((), tf.int64),
      'weights': [tf.TensorSpec(v.shape, v.dtype) for v in variables],
  }


def make_tables(
    trajectory_spec: Any,
    fake_spec: Any,
    policy_variables: Sequence[tf.Variable],
    d_variables: Sequence[tf.Variable],
    queue_size: int,
    fakes_size: int = 1280,
    fakes_queue: bool = False,
) -> list[reverb.Table]:
  return [
      reverb.Table.queue(QUEUE, max_size=queue_size, signature=trajectory_spec),
      reverb.Table(
          FAKES,
          sampler=reverb.selectors.Fifo() if fakes_queue else reverb.selectors.Uniform(),
          remover=reverb.selectors.Fifo(),
          max_size=fakes_size,
          max_times_sampled=1 if fakes_queue else 0,
          rate_limiter=reverb.rate_limiters.MinSize(1),
          signature=fake_spec,
      ),
      _variables_table(POLICY_VARIABLES, policy_variables),
      _variables_table(D_VARIABLES, d_variables),
  ]


def _variables_table(name, variables):
  return reverb.Table(
      name,
      sampler=reverb.selectors.Fifo(),
      remover=reverb.selectors.Fifo(),
      max_size=1,
      rate_limiter=reverb.rate_limiters.MinSize(1),
      signature=variables_signature(variables),
  )


def wait_for_server(address: str, timeout_s: float, table: str | None = None) -> dict:
  """Waits until the server at `address` answers (and `table`, if given, holds an item)."""
  deadline = time.monotonic() + timeout_s
  client = reverb.Client(address)
  while True:
    try:
      info = client.server_info(timeout=5)
      if table is None or info[table].current_size > 0:
        return info
    except (reverb.errors.DeadlineExceededError, RuntimeError, ValueError):
      pass  # Not up yet (or restarting): try again until the deadline.
    if time.monotonic() > deadline:
      what = f'table {table!r} to receive its first item' if table else 'the Reverb server'
      raise TimeoutError(
          f'waited {timeout_s:.0f} s for {what} at {address}; is `--role=reverb` '
          f'running there (see --reverb_address)?'
      )
    time.sleep(0.5)
