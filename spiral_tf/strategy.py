"""A tf.distribute strategy from its flag name, with clear errors instead of stack traces.

  default       tf.distribute.get_strategy() (no distribution)
  one_device    OneDeviceStrategy on the first GPU, else the CPU
  mirrored      MirroredStrategy over the local GPUs; with none, over `num_cpu_replicas` logical CPUs
                (split before TensorFlow initialises its devices — call this first)
  multi_worker  MultiWorkerMirroredStrategy (cluster from the TF_CONFIG environment variable)
  tpu           TPUStrategy through TPUClusterResolver(tpu) (tpu: name or grpc:// address; '' = local)

Usage:
  strategy = make_strategy(config.strategy, num_cpu_replicas=config.num_cpu_replicas)
  with strategy.scope():
    agent = Agent(...)
"""
import tensorflow as tf

from spiral_tf import config as config_lib


class StrategyError(RuntimeError):
  """The requested strategy cannot be built here; the message says why and what to do."""


def _split_cpu(num_replicas: int) -> list:
  cpus = tf.config.list_physical_devices('CPU')
  if num_replicas == 1:
    return ['/cpu:0']
  try:
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(num_replicas)])
  except RuntimeError as e:
    logical = tf.config.list_logical_devices('CPU')
    if len(logical) >= num_replicas:  # Split earlier (e.g. by a previous call): reuse.
      return [d.name for d in logical[:num_replicas]]
    raise StrategyError(
        f'--strategy=mirrored: cannot split the CPU into {num_replicas} replicas because TensorFlow has '
        f'already initialised its devices ({e}); build the strategy before any other TensorFlow op') from None
  return [d.name for d in tf.config.list_logical_devices('CPU')[:num_replicas]]


def make_strategy(name: str, num_cpu_replicas: int = 1, tpu: str = '') -> tf.distribute.Strategy:
  """The strategy called `name` (one of config.STRATEGIES)."""
  if name == 'default':
    return tf.distribute.get_strategy()
  if name == 'one_device':
    gpus = tf.config.list_logical_devices('GPU')
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else '/cpu:0')
  if name == 'mirrored':
    if num_cpu_replicas < 1:
      raise StrategyError(f'--num_cpu_replicas={num_cpu_replicas}: need at least 1')
    if tf.config.list_physical_devices('GPU'):  # Physical: listing logical devices would fix them.
      return tf.distribute.MirroredStrategy()
    devices = _split_cpu(num_cpu_replicas)
    return tf.distribute.MirroredStrategy(devices)
  if name == 'multi_worker':
    return tf.distribute.MultiWorkerMirroredStrategy()
  if name == 'tpu':
    try:
      resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
      tf.config.experimental_connect_to_cluster(resolver)
      tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as e:
      first_line = (str(e).strip().splitlines() or [type(e).__name__])[0].rstrip('.')
      raise StrategyError(f'--strategy=tpu: no TPU reachable (tpu={tpu!r}): {first_line}. Run on a TPU VM '
                          'or pass its name/grpc address, or choose another --strategy '
                          f'({", ".join(s for s in config_lib.STRATEGIES if s != "tpu")}).') from None
    return tf.distribute.TPUStrategy(resolver)
  raise StrategyError(f'--strategy={name!r} is not one of {config_lib.STRATEGIES}')
