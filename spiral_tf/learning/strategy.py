"""A tf.distribute strategy from its flag name, with clear errors instead of stack traces.

  default       tf.distribute.get_strategy() (no distribution)
  one_device    OneDeviceStrategy on the first GPU, else the CPU
  mirrored      MirroredStrategy over the local GPUs; with none, over `num_cpu_replicas` logical CPUs
                (split before TensorFlow initialises its devices — call this first)
  multi_worker  MultiWorkerMirroredStrategy (cluster from the TF_CONFIG environment variable)
  tpu           TPUStrategy through TPUClusterResolver(tpu), where `tpu` (the --tpu flag) is
                  'local'             the TPU attached to this host (a TPU VM)
                  a Cloud TPU name    looked up through the Cloud TPU API (a TPU node)
                  'grpc://host:port'  a TPU node's address (e.g. grpc://10.0.0.2:8470)
                  ''                  the name in the TPU_NAME environment variable (TensorFlow's default;
                                      TPU_NAME=local is treated as a name, not as this host's TPU)
                Any failure to reach the TPU is a StrategyError saying what was tried.

Under `multi_worker` every worker runs the same learner loop, and each update's all-reduce needs all of
them: `Workers` says which one is the chief (the only one that writes) and makes the decisions that must be
the same on every worker at the same step (`any_of`, `broadcast_from_chief`).

Usage:
  strategy = make_strategy(config.strategy, num_cpu_replicas=config.num_cpu_replicas, tpu=config.tpu)
  with strategy.scope():
    agent = Agent(...)
  workers = Workers(strategy)
"""

import ipaddress
import json
import os

import grpc
import tensorflow as tf

from spiral_tf import config as config_lib

# A TPU's gRPC address must answer within this long: TensorFlow itself retries an unreachable one forever.
TPU_CONNECT_TIMEOUT_S = 10.0


class StrategyError(RuntimeError):
  """The requested strategy cannot be built here; the message says why and what to do."""


def _split_cpu(num_replicas: int) -> list:
  cpus = tf.config.list_physical_devices('CPU')
  if num_replicas == 1:
    return ['/cpu:0']
  try:
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(num_replicas)]
    )
  except RuntimeError as e:
    logical = tf.config.list_logical_devices('CPU')
    if len(logical) >= num_replicas:  # Split earlier (e.g. by a previous call): reuse.
      return [d.name for d in logical[:num_replicas]]
    raise StrategyError(
        f'--strategy=mirrored: cannot split the CPU into {num_replicas} replicas because TensorFlow has '
        f'already initialised its devices ({e}); build the strategy before any other TensorFlow op'
    ) from None
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
    return _tpu_strategy(tpu)
  raise StrategyError(f'--strategy={name!r} is not one of {config_lib.STRATEGIES}')


def _tpu_strategy(tpu: str) -> tf.distribute.TPUStrategy:
  tried = _what_is_tried(tpu)
  try:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    _check_reachable(resolver.master())
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
  # Off a TPU host: ValueError (no name), URLError/OSError (no metadata server, refused connection),
  # tf.errors.NotFoundError (no local TPU), RuntimeError (empty name on Google Cloud).
  except (ValueError, OSError, RuntimeError, tf.errors.OpError) as e:
    reason = (str(e).strip().splitlines() or [''])[0].rstrip('.') or 'no details'
    reason = reason if len(reason) <= 300 else reason[:300] + '…'
    others = ', '.join(s for s in config_lib.STRATEGIES if s != 'tpu')
    raise StrategyError(
        f'--strategy=tpu: no TPU reachable with --tpu={tpu!r}: tried {tried}; failed with '
        f'{type(e).__name__}: {reason}. Pass --tpu=local on a TPU VM, --tpu=<Cloud TPU name> or '
        f'--tpu=grpc://host:8470 for a TPU node, or choose another --strategy ({others}).'
    ) from None
  return tf.distribute.TPUStrategy(resolver)


def _what_is_tried(tpu: str) -> str:
  if tpu == 'local':
    return 'the TPU attached to this host'
  if tpu.startswith('grpc://'):
    return f'the TPU at {tpu}'
  if tpu:
    return f'looking up the Cloud TPU named {tpu!r}'
  name = os.environ.get('TPU_NAME')
  if not name:
    return 'the TPU_NAME environment variable (--tpu is empty), which is unset or empty'
  return f'looking up the Cloud TPU named {name!r} from the TPU_NAME environment variable (--tpu is empty)'


def _check_reachable(master: str) -> None:
  """Raises OSError unless a grpc:// master answers TensorFlow's worker status call in time.

  TensorFlow's own connect retries an unanswering address forever, and aborts the process on one that
  answers but is no TensorFlow worker (e.g. an HTTP proxy); this asks first, with a deadline.
  """
  if not master.startswith('grpc://'):
    return  # 'local': the TPU of this host, no network involved.
  target = master[len('grpc://') :]
  channel = grpc.insecure_channel(target)
  try:
    # Bytes in, bytes out: an empty GetStatusRequest serialises to b''.
    channel.unary_unary('/tensorflow.WorkerService/GetStatus')(b'', timeout=TPU_CONNECT_TIMEOUT_S)
  except grpc.RpcError as e:
    details = (e.details() or '').split('\n')[0]
    raise OSError(
        f"{target} did not answer TensorFlow's worker status call (deadline "
        f'{TPU_CONNECT_TIMEOUT_S:g} s): {e.code().name}: {details}'
    ) from None
  finally:
    channel.close()


class Workers:
  """The workers of a strategy: which one is the chief, and decisions they all take together.

  Under MultiWorkerMirroredStrategy each worker runs its own copy of the learner loop; the update's
  all-reduce waits for every worker, so a worker that leaves the loop (its own clock, a signal only it
  received, a Reverb error only it saw) or skips an update leaves the others waiting for ever. Such local
  facts go through `any_of`, one all-reduce that every worker calls at the same point of its loop, so
  every worker takes the same decision at the same step. Under any other strategy (one worker) both are
  plain local values and cost nothing. A TPU host is one worker (the chief) of TPUStrategy.

  Usage:
    workers = Workers(strategy)
    if workers.is_chief:
      write_the_logs()
    stop, save = workers.any_of(stop_event.is_set(), workers.is_chief and checkpoint_due)
    chief_step = workers.broadcast_from_chief(step)
  """

  def __init__(self, strategy: tf.distribute.Strategy):
    self.strategy = strategy
    # should_checkpoint is False exactly on the non-chief workers of a multi-worker strategy.
    self.is_chief = bool(strategy.extended.should_checkpoint)
    resolver = getattr(strategy, 'cluster_resolver', None)
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and spec:
      self.num_workers = sum(len(spec.get(job, ())) for job in ('chief', 'worker'))
      self.task = f'{resolver.task_type}:{resolver.task_id}'
      self._local_replicas = len(strategy.extended.worker_devices)
    else:
      self.num_workers, self.task, self._local_replicas = 1, 'worker:0', strategy.num_replicas_in_sync
    self._sum = None

  def _sum_over_workers(self, values):
    """Each worker's float vector `values`, summed over the workers (one all-reduce)."""
    if self._sum is None:
      strategy = self.strategy
      # Every replica of a worker returns the same vector: the sum over replicas is local replicas × the
      # sum over workers (MultiWorkerMirroredStrategy gives every worker the same number of devices).
      self._sum = tf.function(
          lambda v: strategy.reduce(
              tf.distribute.ReduceOp.SUM, strategy.run(tf.identity, args=(v,)), axis=None
          )
      )
    return self._sum(tf.constant(values, tf.float32)).numpy() / self._local_replicas

  def any_of(self, *flags: bool) -> tuple[bool, ...]:
    """For each flag: whether it is true on any worker. Every worker must call this at the same point."""
    if self.num_workers == 1:
      return tuple(bool(f) for f in flags)
    return tuple(bool(total > 0.5) for total in self._sum_over_workers([float(bool(f)) for f in flags]))

  def broadcast_from_chief(self, value: float) -> float:
    """The chief's `value` on every worker (a float32 all-reduce: exact for integers below 2²⁴)."""
    if self.num_workers == 1:
      return value
    return float(self._sum_over_workers([float(value) if self.is_chief else 0.0])[0])


def worker_listen_address(environ=None) -> str | None:
  """The IP address this worker's TensorFlow server is named by in TF_CONFIG, or None (no TF_CONFIG, or
  a host name rather than an address): where a multi-worker learner should listen instead of everywhere.

  Usage:
    address = worker_listen_address()   # '127.0.0.1' for TF_CONFIG's worker 1 at 127.0.0.1:41235
  """
  text = (os.environ if environ is None else environ).get('TF_CONFIG')
  if not text:
    return None
  try:
    config = json.loads(text)
    task = config['task']
    host = config['cluster'][task['type']][int(task['index'])].rsplit(':', 1)[0].strip('[]')
    ipaddress.ip_address(host)
  except (ValueError, KeyError, IndexError, TypeError):
    return None
  return host
