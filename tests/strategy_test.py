"""Strategies from flag names; unusable ones fail with a message that names the flag and the fix."""

import socket
import time

import pytest
import tensorflow as tf

from spiral_tf.learning import strategy as strategy_lib


def test_default_and_one_device():
  assert strategy_lib.make_strategy('default') is tf.distribute.get_strategy()
  one = strategy_lib.make_strategy('one_device')
  assert isinstance(one, tf.distribute.OneDeviceStrategy)
  assert one.num_replicas_in_sync == 1
  assert one.extended.worker_devices[0].endswith('CPU:0')


def test_mirrored_on_one_cpu_runs_a_replica_function():
  mirrored = strategy_lib.make_strategy('mirrored', num_cpu_replicas=1)
  assert isinstance(mirrored, tf.distribute.MirroredStrategy)
  with mirrored.scope():
    v = tf.Variable(2.0)
  out = mirrored.run(tf.function(lambda x: v * x), args=(tf.constant(3.0),))
  assert float(mirrored.reduce(tf.distribute.ReduceOp.SUM, out, axis=None)) == 6.0


@pytest.mark.parametrize(
    'tpu, tpu_name, tried',
    [
        ('', None, 'TPU_NAME environment variable'),
        ('', 'local', "Cloud TPU named 'local' from the TPU_NAME"),  # TensorFlow reads it as a name.
        ('local', None, 'the TPU attached to this host'),
        ('local', 'some-tpu', 'the TPU attached to this host'),
        ('grpc://127.0.0.1:1', None, 'the TPU at grpc://127.0.0.1:1'),  # Refused at once (no hang).
    ],
)
def test_tpu_absent_is_a_clear_error_naming_the_flag(monkeypatch, tpu, tpu_name, tried):
  if tpu_name is None:
    monkeypatch.delenv('TPU_NAME', raising=False)
  else:
    monkeypatch.setenv('TPU_NAME', tpu_name)
  with pytest.raises(strategy_lib.StrategyError) as error:
    strategy_lib.make_strategy('tpu', tpu=tpu)
  message = str(error.value)
  assert message.startswith(f'--strategy=tpu: no TPU reachable with --tpu={tpu!r}: tried '), message
  assert tried in message
  assert '--tpu=local' in message and '--tpu=grpc://' in message  # What to pass instead.


def test_silent_tpu_address_fails_at_the_deadline_instead_of_hanging(monkeypatch):
  # A socket that accepts connections but never speaks: TensorFlow's own connect would wait forever.
  monkeypatch.setattr(strategy_lib, 'TPU_CONNECT_TIMEOUT_S', 0.5)
  with socket.socket() as silent:
    silent.bind(('127.0.0.1', 0))
    silent.listen()
    address = f'grpc://127.0.0.1:{silent.getsockname()[1]}'
    start = time.monotonic()
    with pytest.raises(strategy_lib.StrategyError) as error:
      strategy_lib.make_strategy('tpu', tpu=address)
  assert time.monotonic() - start < 30
  assert f'--tpu={address!r}' in str(error.value)
  assert 'DEADLINE_EXCEEDED' in str(error.value) and 'deadline 0.5 s' in str(error.value)


def test_unknown_name_and_bad_replica_count():
  with pytest.raises(strategy_lib.StrategyError, match=r"'gpu_cluster' is not one of"):
    strategy_lib.make_strategy('gpu_cluster')
  with pytest.raises(strategy_lib.StrategyError, match='num_cpu_replicas=0'):
    strategy_lib.make_strategy('mirrored', num_cpu_replicas=0)
