"""Strategies from flag names; unusable ones fail with a message that names the flag and the fix."""
import pytest
import tensorflow as tf

from spiral_tf import strategy as strategy_lib


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


def test_tpu_absent_is_a_clear_error():
  with pytest.raises(strategy_lib.StrategyError, match=r'--strategy=tpu: no TPU reachable'):
    strategy_lib.make_strategy('tpu')


def test_unknown_name_and_bad_replica_count():
  with pytest.raises(strategy_lib.StrategyError, match=r"'gpu_cluster' is not one of"):
    strategy_lib.make_strategy('gpu_cluster')
  with pytest.raises(strategy_lib.StrategyError, match='num_cpu_replicas=0'):
    strategy_lib.make_strategy('mirrored', num_cpu_replicas=0)
