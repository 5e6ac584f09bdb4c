"""Where the processes of a `--role=all` run go on this host: how many actor processes, how many
environments each, and whether the whole run fits in memory.

The configs describe the experiment (the paper's 64 actors per learner); this module decides how it runs on
the one host `--role=all` is given. The run's environments (`--num_actors` × `--envs_per_actor`) are packed
into as many local actor processes as the host holds — at most one per core (an actor runs TensorFlow on one
thread) and as many as the memory budget allows, using the measured footprint of each process below — and each
process steps its share with one batched policy call (spiral_tf/distributed/actor.py).
No environment is dropped: the shares add up to the requested total. `--local_actors=N` sets the number of
processes instead. The learner keeps its batch. On a cluster, `--role=actor` is not planned here: each
process is one actor with `--envs_per_actor` environments, as configured.

The memory guard: a plan whose estimated footprint exceeds the memory the host has available is refused
before anything starts, with the figures and the flag to change (`PlacementError`).

`plan()` is a pure function of the host's facts (`Host`), the request and the per-process footprint, so
the plans are tested without the host; `host_facts()` and `footprint()` read this host and config.

Usage:
  p = plan(host_facts(), config.num_actors, config.envs_per_actor, footprint(config),
           local_actors=config.local_actors, evaluator=config.evaluator)
  print(p.describe()); p.actor_envs  # (32, 32); p.first_env(1) == 32
"""

import dataclasses
import glob
import json
import os

from spiral_tf.data import celeba
from spiral_tf.data import locations

GIB = 2**30
MIB = 2**20
# The share of the host's RAM a run sizes itself to (the rest: the OS, page cache, other jobs).
BUDGET_FRACTION = 0.6
# The supervisor warns when the host's available memory falls below this share of its RAM, and stops
# the run cleanly (the learner checkpoints first) below CRITICAL_FRACTION, before the kernel's OOM killer
# picks a process.
FLOOR_FRACTION = 0.10
CRITICAL_FRACTION = 0.04

# Measured footprints: proportional set size (PSS) of each role's processes at their peak over the first
# minutes of the paper configs (benchmarks/run_on_host.py on a 2-core AMD EPYC, TensorFlow 2.15.1,
# 2026-12-01; docs/full_scale.md §3.5), rounded up. A process's figure is its base plus what scales:
#   learner    base + batch × episode_length × per step (the unrolled agent's activations and gradients,
#              D on its batches; XLA's compilation of the deepmind update peaks higher than TensorFlow's
#              kernels) + the training images for D (one uint8 tensor, spiral_tf/data/pipeline.py);
#   actor      base (TensorFlow, the agent) + every training target (conditional runs keep them all in
#              memory) + per environment (its renderer and episode buffers; MuJoCo's far more);
#   Reverb     base + the queue's episodes and the fakes (float32 observations).
# Measured: CelebA learner 4.2 GiB (TensorFlow kernels) and 5.1 GiB (XLA), MNIST 2.3, Omniglot 3.4,
# MuJoCo 4.4; an actor with 32 environments 0.57 (unconditional CelebA) to 0.86 (MNIST, 60k targets),
# 1.8 GiB for MuJoCo scenes (45k targets); Reverb 0.44–0.58.
LEARNER_BASE = {'tiny': 600 * MIB, 'deepmind': 600 * MIB}
LEARNER_PER_STEP = {
    ('deepmind', False): 3.0 * MIB,
    ('deepmind', True): 3.7 * MIB,
    ('tiny', False): 0.5 * MIB,
    ('tiny', True): 0.7 * MIB,
}  # (network_size, jit_compile)
ACTOR = {'tiny': 450 * MIB, 'deepmind': 500 * MIB}
EVALUATOR = {'tiny': 700 * MIB, 'deepmind': 1000 * MIB}
REVERB_BASE = 450 * MIB
SUPERVISOR = 60 * MIB
# Per environment of an actor, by renderer.
PER_ENV = {'libmypaint': 6 * MIB, 'mujoco_scenes': 26 * MIB}
# Training images per dataset when their number cannot be read from the files (full datasets).
TRAIN_IMAGES = {'strokes': 10_000, 'mnist': 60_000, 'omniglot': 19_280, 'celeba': 162_770, 'scenes': 45_000}


class PlacementError(ValueError):
  """A run that cannot be placed on this host; the message names the figures and the flag to change."""


@dataclasses.dataclass(frozen=True)
class Host:
  """What the plan needs to know about a host."""

  cores: int
  memory_total: int  # bytes (RAM, or the cgroup's limit)
  memory_available: int  # bytes (MemAvailable, or what the cgroup's limit leaves)

  def describe(self) -> str:
    return (
        f'{self.cores} core{"s" if self.cores != 1 else ""}, {_gib(self.memory_total)} GiB, '
        f'{_gib(self.memory_available)} GiB available'
    )


@dataclasses.dataclass(frozen=True)
class Footprint:
  """Estimated resident memory (bytes) of each process of a run."""

  learner: int
  reverb: int
  actor: int  # one actor process, without its environments
  per_env: int
  evaluator: int = 0
  supervisor: int = SUPERVISOR

  def fixed(self, evaluator: bool) -> int:
    """Everything but the actors."""
    return self.supervisor + self.learner + self.reverb + (self.evaluator if evaluator else 0)

  def total(self, processes: int, envs: int, evaluator: bool) -> int:
    return self.fixed(evaluator) + processes * self.actor + envs * self.per_env


@dataclasses.dataclass(frozen=True)
class Plan:
  """The local actor processes of a `--role=all` run and the memory they are expected to take."""

  num_actors: int  # requested (the config)
  envs_per_actor: int  # requested
  actor_envs: tuple  # environments of each local actor process, in task order
  host: Host
  footprint: Footprint
  evaluator: bool
  reason: str  # why this many processes
  learner_flags: tuple = ()  # flags the supervisor adds to the learner's command (see learner_jit)
  notes: tuple = ()  # printed with the plan

  @property
  def total_envs(self) -> int:
    return sum(self.actor_envs)

  @property
  def processes(self) -> int:
    return len(self.actor_envs)

  @property
  def memory_needed(self) -> int:
    return self.footprint.total(self.processes, self.total_envs, self.evaluator)

  @property
  def repacked(self) -> bool:
    return self.actor_envs != (self.envs_per_actor,) * self.num_actors

  def first_env(self, task: int) -> int:
    """Index of task `task`'s first environment among the run's (its seeds; see
    spiral_tf/distributed/roles.py)."""
    return sum(self.actor_envs[:task])

  def describe(self) -> str:
    """The plan, as the supervisor prints it before anything starts."""
    envs = sorted(set(self.actor_envs), reverse=True)
    shares = ' + '.join(f'{self.actor_envs.count(k)} × {k}' for k in envs)
    processes = (
        f'{self.processes} actor process{"es" if self.processes != 1 else ""} × '
        f'{_envs(self.actor_envs[0])}'
        if len(envs) == 1
        else f'{self.processes} actor processes ({shares} envs)'
    )
    f = self.footprint
    memory = (
        f'memory ≈ {_gib(self.memory_needed)} GiB (learner {_gib(f.learner)}, Reverb '
        f'{_gib(f.reverb)}, {self.processes} × actor {_gib(f.actor)} + {self.total_envs} envs × '
        f'{f.per_env / MIB:.0f} MiB'
        + (f', evaluator {_gib(f.evaluator)}' if self.evaluator else '')
        + f'; {BUDGET_FRACTION:.0%} of RAM = {_gib(BUDGET_FRACTION * self.host.memory_total)} GiB)'
    )
    return (
        f'{self.num_actors} actor{"s" if self.num_actors != 1 else ""} × '
        f'{_envs(self.envs_per_actor)} requested; this host ({self.host.describe()}): {processes} '
        f'[{self.reason}]; {memory}' + ''.join(f'; {note}' for note in self.notes)
    )


def plan(
    host: Host,
    num_actors: int,
    envs_per_actor: int,
    footprint: Footprint,
    local_actors: int = 0,
    evaluator: bool = False,
    budget_fraction: float = BUDGET_FRACTION,
    learner_flags: tuple = (),
    notes: tuple = (),
) -> Plan:
  """The local placement of a `--role=all` run (module docstring); raises PlacementError."""
  total = num_actors * envs_per_actor
  if num_actors < 1 or envs_per_actor < 1:
    raise PlacementError(f'--num_actors={num_actors} × --envs_per_actor={envs_per_actor}: no environment')
  if local_actors < 0:
    raise PlacementError(f'--local_actors={local_actors} < 0 (0: sized to this host)')
  if local_actors > total:
    raise PlacementError(
        f'--local_actors={local_actors} is more processes than the run has environments '
        f'({num_actors} actors × {_envs(envs_per_actor)} = {total}); nothing is dropped or '
        f'duplicated, so use at most --local_actors={total}'
    )
  fixed = footprint.fixed(evaluator) + total * footprint.per_env
  if local_actors:
    processes, reason = local_actors, f'--local_actors={local_actors}'
  else:
    budget = min(budget_fraction * host.memory_total, host.memory_available)
    by_memory = int((budget - fixed) // footprint.actor) if footprint.actor > 0 else num_actors
    processes = max(1, min(num_actors, host.cores, by_memory))
    if processes == num_actors:
      reason = 'as configured: fits this host'
    elif processes == host.cores and (by_memory >= processes):
      reason = 'one per core; --local_actors=N overrides'
    else:
      reason = f'what {_gib(budget)} GiB of memory holds beside the learner; --local_actors=N ' f'overrides'
  result = Plan(
      num_actors=num_actors,
      envs_per_actor=envs_per_actor,
      actor_envs=_split(total, processes) if processes != num_actors else (envs_per_actor,) * num_actors,
      host=host,
      footprint=footprint,
      evaluator=evaluator,
      reason=reason,
      learner_flags=tuple(learner_flags),
      notes=tuple(notes),
  )
  check_memory(result)
  return result


def check_memory(p: Plan) -> None:
  """The memory guard: refuses a plan that needs more memory than the host has available."""
  needed, available = p.memory_needed, p.host.memory_available
  if needed <= available:
    return
  f = p.footprint
  figures = (
      f'this run needs ≈ {_gib(needed)} GiB (learner {_gib(f.learner)}, Reverb {_gib(f.reverb)}, '
      f'{p.processes} actor process{"es" if p.processes != 1 else ""} × {_gib(f.actor)} + '
      f'{p.total_envs} environments × {f.per_env / MIB:.0f} MiB'
      + (f', evaluator {_gib(f.evaluator)}' if p.evaluator else '')
      + f') but this host has {_gib(available)} GiB available (of {_gib(p.host.memory_total)} GiB)'
  )
  room = available - f.fixed(p.evaluator) - p.total_envs * f.per_env
  fits = int(room // f.actor) if f.actor > 0 else 0
  if p.reason.startswith('--local_actors') and fits >= 1:
    raise PlacementError(f'--local_actors={p.processes}: {figures}; at most --local_actors={fits} fit')
  changes = []
  if p.processes > 1:
    changes.append(
        f'fewer actor processes (--local_actors={max(1, fits)})'
        if fits >= 1
        else 'one actor process (--local_actors=1)'
    )
  changes.append(
      f'fewer environments (--num_actors × --envs_per_actor = {p.num_actors} × ' f'{p.envs_per_actor})'
  )
  if p.evaluator:
    changes.append('no evaluator (--evaluator=false)')
  changes.append(
      'a smaller learner (--batch_size, --episode_length, --network_size; --jit_compile=false '
      'compiles the update in less memory than XLA)'
  )
  raise PlacementError(
      f'{figures}. Needs less: {"; ".join(changes)}; or run the roles on several hosts '
      f'(--role=reverb/learner/actor; README, Operations)'
  )


def learner_jit(jit_compile: bool, given: bool, strategy: str, accelerator: bool):
  """(jit_compile for the learner, note or None): a CPU-only host runs the update with TensorFlow's kernels.

  XLA:CPU compiles the deepmind update for minutes (more than 5 on this 2-core machine under load, during
  which the learner cannot even stop for a checkpoint) and then runs it slower than TensorFlow's kernels
  (benchmarks/results.md: 289 vs 76 frames/s deepmind, 986 vs 182 tiny). So unless --jit_compile is given
  (on the command line or in the flagfile), a host with no GPU or TPU runs the learner without XLA.
  """
  if given or not jit_compile or accelerator or strategy == 'tpu':
    return jit_compile, None
  return False, (
      'learner: TensorFlow kernels, not XLA (no GPU or TPU here: XLA:CPU compiles this update for '
      'minutes and runs it slower; --jit_compile=true keeps XLA)'
  )


def has_accelerator() -> bool:
  """Whether this host shows a GPU or TPU device (NVIDIA, AMD ROCm, Cloud TPU), without TensorFlow."""
  return any(
      glob.glob(pattern)
      for pattern in ('/dev/nvidia[0-9]*', '/dev/kfd', '/dev/accel[0-9]*', '/dev/vfio/[0-9]*')
  )


def _split(total: int, processes: int) -> tuple:
  """`total` environments over `processes` processes, as evenly as possible (larger shares first)."""
  base, extra = divmod(total, processes)
  return tuple(base + (1 if i < extra else 0) for i in range(processes))


def _gib(n) -> str:
  return f'{n / GIB:.1f}'


def _envs(k: int) -> str:
  return f'{k} env{"s" if k != 1 else ""}'


# --- this host and this config ---------------------------------------------------------------------------


def read_meminfo(path: str = '/proc/meminfo') -> dict:
  """{field: bytes} of /proc/meminfo."""
  out = {}
  with open(path, encoding='ascii') as f:
    for line in f:
      name, _, value = line.partition(':')
      parts = value.split()
      if parts and parts[0].isdigit():
        out[name] = int(parts[0]) * (1024 if parts[1:] == ['kB'] else 1)
  return out


def _read_first(path):
  try:
    with open(path, encoding='ascii') as f:
      return f.read().split()
  except OSError:
    return None


def host_facts() -> Host:
  """This host's usable cores (affinity, cgroup CPU quota) and memory (RAM, cgroup limit)."""
  cores = len(os.sched_getaffinity(0))
  quota = _read_first('/sys/fs/cgroup/cpu.max')  # cgroup v2: "max 100000" or "200000 100000"
  if quota and quota[0] != 'max' and len(quota) == 2 and int(quota[1]) > 0:
    cores = max(1, min(cores, int(quota[0]) // int(quota[1])))
  info = read_meminfo()
  total, available = info['MemTotal'], info.get('MemAvailable', info.get('MemFree', 0))
  limit, current = _read_first('/sys/fs/cgroup/memory.max'), _read_first('/sys/fs/cgroup/memory.current')
  if limit and limit[0].isdigit() and int(limit[0]) < total:
    total = int(limit[0])
    if current and current[0].isdigit():
      available = min(available, max(0, total - int(current[0])))
  return Host(cores=max(1, cores), memory_total=total, memory_available=available)


def train_images(config) -> int:
  """The number of training images of the run's dataset (read from the files where that is cheap)."""
  try:
    if config.dataset == 'celeba':
      return len(celeba.split_files(config.data_dir, 'train'))
    if config.dataset == 'scenes':
      root, _ = locations.resolve_data_dir(config.data_dir)
      with open(os.path.join(root, 'scenes', 'metadata.json'), encoding='utf-8') as f:
        metadata = json.load(f)
      count = metadata['splits']['train']['num_scenes']  # spiral_tf/data/scenes_dataset.py
      if isinstance(count, int) and count > 0:
        return count
  except Exception:  # pylint: disable=broad-except — a missing file is the data loader's to report.
    pass
  return TRAIN_IMAGES.get(config.dataset, TRAIN_IMAGES['celeba'])


def footprint(config, images: int | None = None) -> Footprint:
  """The estimated memory of each process of `config`'s run (constants above; `images`: train count)."""
  size = config.network_size if config.network_size in ACTOR else 'deepmind'
  images = train_images(config) if images is None else images
  image_bytes = images * config.canvas_width**2 * config.channels  # uint8
  targets = image_bytes if config.conditional else 0
  # Reverb holds the queue (whole episodes, float32 canvas and target per step) and the fakes.
  observation = config.canvas_width**2 * config.channels * 4 * (2 if config.conditional else 1)
  reverb = (
      REVERB_BASE
      + config.effective_queue_size * config.episode_length * observation
      + config.fakes_replay_size * observation
  )
  # Each learner worker holds TensorFlow, the networks and the real images; the batch is split over them.
  learner = (
      config.num_learner_workers * (LEARNER_BASE[size] + image_bytes)
      + config.batch_size * config.episode_length * LEARNER_PER_STEP[(size, bool(config.jit_compile))]
  )
  return Footprint(
      learner=int(learner),
      reverb=reverb,
      actor=ACTOR[size] + targets,
      per_env=PER_ENV.get(config.environment, PER_ENV['mujoco_scenes']),
      evaluator=EVALUATOR[size] + image_bytes // 10,
  )
