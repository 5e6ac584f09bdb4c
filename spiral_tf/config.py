"""Training configuration: the flags of `launch/train.py`, as one validated, immutable `Config`.

Every role (reverb, actor, learner, evaluator) builds the same `Config` from the same command line, so a
configuration error is found by the supervisor before any process starts.

The update's settings are nested in it, `cfg.learner` (a LearnerConfig, what learner_step uses as it is);
their flags, like all others, are flat (--policy_learning_rate). A run's config.json is `to_dict`: flat too.

Usage:
  config.define_flags()                       # once, in the binary
  cfg = config.from_flags(flags.FLAGS)        # raises ConfigError naming the flag
  cfg.learner.policy_learning_rate
  same = config.validate(config.from_dict(config.to_dict(cfg)))
"""

import dataclasses
import ipaddress
import math
import os

from absl import flags

DATASETS = ('strokes', 'mnist', 'omniglot', 'celeba', 'scenes')
ENVIRONMENTS = ('libmypaint', 'mujoco_scenes')
REWARDS = ('spiral', 'spiral++', 'l2')
STRATEGIES = ('default', 'one_device', 'mirrored', 'multi_worker', 'tpu')
D_LOSSES = ('wgan-gp', 'sn-gan')
D_CONDITIONINGS = ('pair', 'complement')
ROLES = ('all', 'reverb', 'actor', 'learner', 'evaluator', 'discriminator')
# IMPALA's schedule (Espeholt et al. 2018): the policy learning rate falls linearly to 0 at --max_frames.
LEARNING_RATE_DECAYS = ('none', 'linear')
REWARD_NORMALISATIONS = ('none', 'std', 'standardise')  # spiral_tf/learning/normalisation.py.
PRECISIONS = ('float32', 'mixed_bfloat16')  # spiral_tf/networks/precision.py.
# What ranks a population's members at a PBT round (spiral_tf/population/): auto is l2 for a conditional
# run, the D score of the renders otherwise.
PBT_FITNESSES = ('auto', 'l2', 'd_score')
# SPIRAL++'s per-step reward needs γ < 1 to assign credit (with γ = 1 the return of every step is the
# final score, the SPIRAL reward plus a state baseline); the paper searched γ ∈ [0, 0.99].
SPIRAL_PP_DISCOUNT = 0.9
# D's replay of fakes holds the last this many batches of renders (the paper: 20).
FAKES_REPLAY_BATCHES = 20


class ConfigError(ValueError):
  """A flag value that cannot work; the message names the flag."""


def _fixed(default):
  """A setting of the update that has no flag: the method fixes it (tests vary some)."""
  return dataclasses.field(default=default, metadata={'flag': False})


def _is_flag(field: dataclasses.Field) -> bool:
  return field.metadata.get('flag', True)


@dataclasses.dataclass(frozen=True)
class LearnerConfig:
  """The settings of one update (spiral_tf/learning/learner_step.py), as `Config.learner`.

  A field is the flag of the same name unless it is `_fixed`. The values are checked here, when they are
  built (from the flags, a saved config.json or a test), and only here; an error names the flag.
  """

  reward: str = 'spiral'
  discount: float | None = None  # None: SPIRAL_PP_DISCOUNT for spiral++, 1 otherwise.
  d_loss: str = 'wgan-gp'
  d_conditioning: str = 'pair'  # D's input when the run is conditional (--conditional).
  gradient_penalty_weight: float = 10.0
  gradient_penalty_target: float = 1.0
  policy_learning_rate: float = 1e-4
  d_learning_rate: float = 1e-4
  entropy_cost: float = 1e-2
  baseline_cost: float = 0.5
  d_steps_per_policy_step: int = 1
  stroke_penalty: float = 0.0
  blank_penalty: float = 0.0
  reward_normalisation: str = 'standardise'
  max_gradient_norm: float = 40.0
  centring_weight: float = _fixed(1e-3)  # WGAN-GP's drift term, keeps D's scores near 0.
  clip_rho: float = _fixed(1.0)  # V-trace's truncations ρ̄, ρ̄ of the policy gradient, c̄.
  clip_pg_rho: float = _fixed(1.0)
  clip_c: float = _fixed(1.0)
  algorithm: str = _fixed('vtrace')  # 'a2c': ignore the behaviour policy (importance weights 1).
  blank_threshold: float = _fixed(1 / 255)  # Below this change the final canvas counts as blank.
  reward_normalisation_decay: float = _fixed(0.99)

  def __post_init__(self):
    def need(ok, name, message):
      if not ok:
        field = next(f for f in dataclasses.fields(self) if f.name == name)
        where = f'--{name}' if _is_flag(field) else f'Config.learner.{name}={getattr(self, name)!r}'
        raise ConfigError(f'{where}: {message}')

    need(self.reward in REWARDS, 'reward', f'{self.reward!r} is not one of {REWARDS}')
    need(
        self.d_conditioning in D_CONDITIONINGS,
        'd_conditioning',
        f'{self.d_conditioning!r} is not one of {D_CONDITIONINGS}',
    )
    need(self.d_loss in D_LOSSES, 'd_loss', f'{self.d_loss!r} is not one of {D_LOSSES}')
    need(
        self.discount is None or 0.0 <= self.discount <= 1.0, 'discount', f'{self.discount} is not in [0, 1]'
    )
    need(
        self.reward_normalisation in REWARD_NORMALISATIONS,
        'reward_normalisation',
        f'{self.reward_normalisation!r} is not one of {REWARD_NORMALISATIONS}',
    )
    need(
        math.isfinite(self.max_gradient_norm) and self.max_gradient_norm >= 0,
        'max_gradient_norm',
        f'{self.max_gradient_norm} must be ≥ 0 (0: no clipping)',
    )
    need(
        self.d_steps_per_policy_step >= 1,
        'd_steps_per_policy_step',
        f'{self.d_steps_per_policy_step} < 1 (every policy update comes with at least one D update)',
    )
    for name in ('policy_learning_rate', 'd_learning_rate'):
      value = getattr(self, name)
      need(math.isfinite(value) and value > 0, name, f'{value} must be a positive number')
    for name in (
        'gradient_penalty_weight',
        'entropy_cost',
        'baseline_cost',
        'stroke_penalty',
        'blank_penalty',
        'centring_weight',
    ):
      value = getattr(self, name)
      need(math.isfinite(value) and value >= 0, name, f'{value} must be ≥ 0')
    need(self.algorithm in ('vtrace', 'a2c'), 'algorithm', "not 'vtrace' or 'a2c'")
    need(0.0 <= self.reward_normalisation_decay < 1.0, 'reward_normalisation_decay', 'must be in [0, 1)')

  @property
  def effective_discount(self) -> float:
    if self.discount is not None:
      return float(self.discount)
    return SPIRAL_PP_DISCOUNT if self.reward == 'spiral++' else 1.0


@dataclasses.dataclass(frozen=True)
class Config:
  """All settings of a training run (see `define_flags` for their meaning)."""

  root_dir: str = 'runs/strokes'
  # Task.
  environment: str = 'libmypaint'
  dataset: str = 'strokes'
  data_dir: str | None = None
  conditional: bool = True
  episode_length: int = 20
  canvas_width: int = 64
  render_width: int | None = None
  grid_width: int = 32
  brush_type: str = 'classic/dry_brush'
  brush_sizes: tuple = (1, 2, 4, 8, 12, 24)
  use_color: bool = False
  use_pressure: bool = True
  # Agent and discriminator.
  network_size: str = 'tiny'
  # Learning: the update's own settings, then the loop's.
  learner: LearnerConfig = dataclasses.field(default_factory=LearnerConfig)
  batch_size: int = 64
  policy_learning_rate_decay: str = 'none'
  fakes_replay_size: int = 0  # 0: FAKES_REPLAY_BATCHES × batch_size.
  strategy: str = 'default'
  num_cpu_replicas: int = 1
  tpu: str = ''
  jit_compile: bool = True
  precision: str = 'float32'
  # Actors.
  num_actors: int = 2
  envs_per_actor: int = 4
  weight_pull_seconds: float = 2.0
  queue_size: int = 0  # 0: 2 × batch_size.
  # Running.
  reverb_address: str | None = None
  reverb_port: int = 0
  reverb_bind_address: str = '127.0.0.1'
  max_nonfinite_updates: int = 10
  max_frames: int = 0
  max_learner_steps: int = 0
  max_minutes: float = 0.0
  checkpoint_every_minutes: float = 10.0
  log_every_seconds: float = 10.0
  image_summary_every_steps: int = 100
  evaluator: bool = False
  eval_targets: int = 64
  seed: int = 0
  # --role=all: 0 sizes the actor processes to the host (spiral_tf/distributed/placement.py).
  local_actors: int = 0
  num_learner_workers: int = 1  # --role=all: MultiWorkerMirroredStrategy workers on loopback.
  first_env: int = -1  # -1: task × envs_per_actor.
  # A population (--role=all, spiral_tf/population/): members, and PBT over their hyper-parameters.
  population_size: int = 1
  pbt_interval_steps: int = 0  # 0: no PBT rounds.
  pbt_fitness: str = 'auto'
  pbt_learning_rate_range: tuple = (1e-5, 3e-4)  # DeepMind's ranges (SPIRAL's PBT).
  pbt_entropy_cost_range: tuple = (2e-3, 1e-1)
  # SPIRAL++'s shared D (spiral_tf/distributed/shared_discriminator.py): a member's learner trains only its
  # policy and rewards with the D weights published to its `d_variables` table by the population's
  # --role=discriminator, which trains on every member's fakes (`discriminator_members`: their servers).
  shared_discriminator: bool = False
  discriminator_members: str = ''  # --role=discriminator: host:port,host:port,… of the members' servers.
  # A population across hosts (spiral_tf/population/population.py): the members this host's process runs
  # ('' : every member) and whether it is the population's lead — the one process that decides the PBT
  # rounds and runs the shared D. A process that runs every member is the lead.
  population_members: str = ''
  population_lead: bool = False

  @property
  def discriminator_member_addresses(self) -> tuple:
    return tuple(a.strip() for a in self.discriminator_members.split(',') if a.strip())

  @property
  def population_member_indices(self) -> tuple:
    """The members this host's population process runs: --population_members, or every member."""
    if not self.population_members.strip():
      return tuple(range(self.population_size))
    return tuple(int(i) for i in self.population_members.split(',') if i.strip())

  @property
  def is_population_lead(self) -> bool:
    return self.population_lead or not self.population_members.strip()

  @property
  def effective_pbt_fitness(self) -> str:
    if self.pbt_fitness != 'auto':
      return self.pbt_fitness
    return 'l2' if self.conditional else 'd_score'

  @property
  def pbt_ranges(self) -> dict:
    """{hyper-parameter: (low, high)} that PBT draws and perturbs (spiral_tf/population/pbt.py)."""
    return {
        'policy_learning_rate': tuple(self.pbt_learning_rate_range),
        'entropy_cost': tuple(self.pbt_entropy_cost_range),
    }

  @property
  def num_replicas(self) -> int:
    """Replicas known from the flags alone; the learner checks the built strategy's real count (GPUs)."""
    if self.strategy == 'multi_worker':
      return self.num_learner_workers
    return self.num_cpu_replicas if self.strategy == 'mirrored' else 1

  @property
  def channels(self) -> int:
    if self.environment == 'mujoco_scenes':
      return 3
    return 3 if self.use_color else 1

  @property
  def frames_per_episode(self) -> int:
    return self.episode_length - 1

  @property
  def effective_queue_size(self) -> int:
    return self.queue_size or 2 * self.batch_size

  @property
  def effective_fakes_replay_size(self) -> int:
    return self.fakes_replay_size or FAKES_REPLAY_BATCHES * self.batch_size

  def libmypaint_settings(self) -> dict:
    """The keyword arguments of environments.libmypaint.LibMyPaint for this run, as JSON-ready values
    (training builds its renderer from them; the painter rebuilds it and writes them into programs)."""
    return {
        'episode_length': int(self.episode_length),
        'canvas_width': int(self.canvas_width),
        'grid_width': int(self.grid_width),
        'brush_type': self.brush_type,
        'brush_sizes': [float(s) for s in self.brush_sizes],
        'use_color': bool(self.use_color),
        'use_pressure': bool(self.use_pressure),
        'background': 'white',
        'render_width': None if self.render_width is None else int(self.render_width),
    }


def validate(config: Config) -> Config:
  """Raises ConfigError, naming the flag, for settings that cannot work.

  `config.learner` checked its own values when it was built; here are the rest and the ones that depend on
  several parts (an l2 reward needs a target).
  """

  def need(ok, flag, message):
    if not ok:
      raise ConfigError(f'--{flag}: {message}')

  need(
      config.environment in ENVIRONMENTS,
      'environment',
      f'{config.environment!r} is not one of {ENVIRONMENTS}',
  )
  need(config.dataset in DATASETS, 'dataset', f'unknown dataset {config.dataset!r}; one of {DATASETS}')
  need(config.strategy in STRATEGIES, 'strategy', f'{config.strategy!r} is not one of {STRATEGIES}')
  need(
      config.network_size in ('tiny', 'deepmind'),
      'network_size',
      f'{config.network_size!r} is not tiny or deepmind',
  )
  need(config.episode_length >= 2, 'episode_length', f'{config.episode_length} < 2 (no action fits)')
  need(
      config.canvas_width > 0 and config.canvas_width % 64 == 0,
      'canvas_width',
      f'{config.canvas_width} is not a positive multiple of 64',
  )
  if config.environment == 'libmypaint':
    need(
        0 < config.grid_width <= config.canvas_width,
        'grid_width',
        f'grid {config.grid_width} must be between 1 and the canvas width {config.canvas_width}',
    )
    need(
        config.grid_width in (16, 32),
        'grid_width',
        f'{config.grid_width}: the location head decodes 16×16 or 32×32 grids',
    )
    need(
        config.render_width is None or config.render_width % config.canvas_width == 0,
        'render_width',
        f'{config.render_width} is not a multiple of --canvas_width={config.canvas_width}',
    )
    need(
        len(config.brush_sizes) > 0 and all(s > 0 for s in config.brush_sizes),
        'brush_sizes',
        f'{config.brush_sizes}: need at least one positive size',
    )
  if config.environment == 'mujoco_scenes':
    need(config.dataset == 'scenes', 'dataset', 'the mujoco_scenes environment reconstructs `scenes`')
  if config.learner.reward == 'l2':
    need(config.conditional, 'reward', 'l2 needs a target: set --conditional')
  need(config.batch_size > 0, 'batch_size', f'{config.batch_size} must be positive')
  need(config.num_cpu_replicas >= 1, 'num_cpu_replicas', f'{config.num_cpu_replicas} < 1')
  need(config.num_learner_workers >= 1, 'num_learner_workers', f'{config.num_learner_workers} < 1')
  need(
      config.num_learner_workers == 1 or config.strategy == 'multi_worker',
      'num_learner_workers',
      f'{config.num_learner_workers} learner workers need --strategy=multi_worker (got '
      f'--strategy={config.strategy})',
  )
  need(
      config.batch_size % config.num_replicas == 0,
      'batch_size',
      f'{config.batch_size} is not divisible by the {config.num_replicas} replicas of '
      f'--strategy={config.strategy}',
  )
  if config.tpu:
    need(
        config.strategy == 'tpu',
        'tpu',
        f'{config.tpu!r} is set but --strategy={config.strategy}; the '
        'TPU address is used by --strategy=tpu only',
    )
    need(_is_tpu_address(config.tpu), 'tpu', f'{config.tpu!r} is not a TPU name, grpc://host:port or local')
  need(
      config.policy_learning_rate_decay in LEARNING_RATE_DECAYS,
      'policy_learning_rate_decay',
      f'{config.policy_learning_rate_decay!r} is not one of {LEARNING_RATE_DECAYS}',
  )
  need(
      config.policy_learning_rate_decay == 'none' or config.max_frames > 0,
      'policy_learning_rate_decay',
      f'{config.policy_learning_rate_decay!r} decays to 0 at --max_frames, which is 0 (no limit): set it',
  )
  need(config.precision in PRECISIONS, 'precision', f'{config.precision!r} is not one of {PRECISIONS}')
  need(config.num_actors >= 1, 'num_actors', f'{config.num_actors} < 1')
  need(config.envs_per_actor >= 1, 'envs_per_actor', f'{config.envs_per_actor} < 1')
  need(
      config.fakes_replay_size == 0 or config.fakes_replay_size >= config.batch_size,
      'fakes_replay_size',
      f'{config.fakes_replay_size} is smaller than a batch ({config.batch_size})',
  )
  need(config.eval_targets >= 1, 'eval_targets', f'{config.eval_targets} < 1')
  need(
      0 <= config.local_actors <= config.num_actors * config.envs_per_actor,
      'local_actors',
      f"{config.local_actors} is not between 0 (sized to the host) and the run's "
      f'{config.num_actors * config.envs_per_actor} environments (--num_actors × --envs_per_actor)',
  )
  need(config.first_env >= -1, 'first_env', f'{config.first_env} < -1')
  need(config.population_size >= 1, 'population_size', f'{config.population_size} < 1')
  need(config.pbt_interval_steps >= 0, 'pbt_interval_steps', f'{config.pbt_interval_steps} < 0')
  need(
      config.pbt_fitness in PBT_FITNESSES,
      'pbt_fitness',
      f'{config.pbt_fitness!r} is not one of {PBT_FITNESSES}',
  )
  need(
      config.effective_pbt_fitness != 'l2' or config.conditional,
      'pbt_fitness',
      'l2 ranks reconstructions of a target: set --conditional',
  )
  for name in ('pbt_learning_rate_range', 'pbt_entropy_cost_range'):
    low_high = getattr(config, name)
    need(
        len(low_high) == 2 and 0 < low_high[0] <= low_high[1],
        name,
        f'{list(low_high)} must be two numbers, 0 < low ≤ high (drawn log-uniformly)',
    )
  need(
      not (config.shared_discriminator and config.strategy == 'multi_worker'),
      'shared_discriminator',
      'a member learner with several workers is not supported (each would pull the shared D alone)',
  )
  if config.population_members.strip():
    try:
      members = config.population_member_indices
    except ValueError:
      raise ConfigError(
          f'--population_members: {config.population_members!r} must be member indices, e.g. 0,1'
      ) from None
    need(config.population_size > 1, 'population_members', 'needs a population (--population_size > 1)')
    need(
        members
        and len(set(members)) == len(members)
        and all(0 <= i < config.population_size for i in members),
        'population_members',
        f'{config.population_members!r} must be distinct indices between 0 and --population_size − 1 '
        f'({config.population_size - 1})',
    )
    need(
        config.is_population_lead
        or not config.shared_discriminator
        or not (
            _is_ip(config.reverb_bind_address)
            and ipaddress.ip_address(config.reverb_bind_address).is_loopback
        ),
        'reverb_bind_address',
        f'{config.reverb_bind_address} is loopback: the shared D runs on the lead host and trains through '
        "this host's members' Reverb servers; give this host's address (or 0.0.0.0)",
    )
  need(
      not config.population_lead or config.population_size > 1,
      'population_lead',
      'needs a population (--population_size > 1)',
  )
  for address in config.discriminator_member_addresses:
    need(
        _is_host_port(address),
        'discriminator_members',
        f"{address!r} is not host:port (a member's Reverb server, e.g. localhost:8000)",
    )
  need(config.root_dir != '', 'root_dir', 'must name a directory')
  _validate_root_dir(config.root_dir)
  need(
      _is_ip(config.reverb_bind_address),
      'reverb_bind_address',
      f'{config.reverb_bind_address!r} is not an IP address (127.0.0.1: this host only; 0.0.0.0: every '
      "interface; or one of this host's addresses)",
  )
  need(0 <= config.reverb_port <= 65535, 'reverb_port', f'{config.reverb_port} is not a port (0–65535)')
  if config.reverb_address is not None:
    need(
        _is_host_port(config.reverb_address),
        'reverb_address',
        f'{config.reverb_address!r} is not host:port (e.g. localhost:8000 or 10.0.0.2:8000)',
    )
  need(
      config.max_nonfinite_updates >= 1,
      'max_nonfinite_updates',
      f'{config.max_nonfinite_updates} < 1 (updates with a NaN/Inf loss allowed in a row)',
  )
  if config.data_dir is not None and config.dataset != 'strokes':
    need(os.path.isdir(config.data_dir), 'data_dir', f'{config.data_dir} is not a directory')
  return config


def check_replicas(config: Config, num_replicas: int) -> None:
  """Raises ConfigError unless the global batch splits evenly over the strategy's `num_replicas`.

  `validate` knows only --num_cpu_replicas; with GPUs (mirrored), several workers or a TPU the count
  comes from the built strategy (`strategy.num_replicas_in_sync`), so the learner calls this then.
  """
  if num_replicas < 1 or config.batch_size % num_replicas:
    raise ConfigError(
        f'--batch_size: {config.batch_size} is not divisible by the {num_replicas} replicas of '
        f'--strategy={config.strategy} (each replica takes an equal share of the batch); '
        f'pick a multiple of {num_replicas}'
    )


def _is_tpu_address(tpu: str) -> bool:
  """A Cloud TPU name, grpc://host:port, or `local` (the TPU of this TPU VM)."""
  if tpu.startswith('grpc://'):
    return _is_host_port(tpu[len('grpc://') :])
  return '://' not in tpu and not any(c.isspace() for c in tpu) and ':' not in tpu


def _is_ip(address: str) -> bool:
  try:
    ipaddress.ip_address(address)
  except ValueError:
    return False
  return '%' not in address  # A scoped IPv6 address (fe80::1%eth0) is beyond the bind shim.


def _is_host_port(address: str) -> bool:
  host, sep, port = address.rpartition(':')
  host = host[1:-1] if host.startswith('[') and host.endswith(']') else host  # [::1]:8000
  return (
      bool(sep)
      and bool(host)
      and not any(c.isspace() for c in host)
      and port.isdigit()
      and 0 < int(port) <= 65535
  )


def _validate_root_dir(root_dir: str) -> None:
  """The run directory must be (or become) a writable directory; checked without creating it."""
  path = os.path.abspath(root_dir)
  if os.path.exists(path):
    if not os.path.isdir(path):
      raise ConfigError(f'--root_dir: {root_dir} exists and is not a directory')
    if not os.access(path, os.W_OK | os.X_OK):
      raise ConfigError(f'--root_dir: {root_dir} is not writable')
    return
  parent = os.path.dirname(path)
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
    raise ConfigError(f'--root_dir: cannot create {root_dir}: {parent} is not a writable directory')


def _flag_defaults() -> dict:
  """{flag name: default} of every setting with a flag: Config's own fields and Config.learner's."""
  config = Config()
  return {
      field.name: getattr(settings, field.name)
      for settings in (config, config.learner)
      for field in dataclasses.fields(settings)
      if field.name != 'learner' and _is_flag(field)
  }


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Defines one absl flag per setting (defaults from Config and LearnerConfig), plus --role and --task."""
  flags.DEFINE_enum(
      'role',
      'all',
      ROLES,
      'Which part of the system this process runs; `all` starts and '
      'supervises the others as subprocesses.',
      flag_values=flag_values,
  )
  flags.DEFINE_integer('task', 0, 'Index of this actor (role=actor).', flag_values=flag_values)
  help_text = {
      'root_dir': 'Run directory: checkpoints, TensorBoard logs, exports. An existing run resumes.',
      'environment': 'Renderer: libmypaint or mujoco_scenes.',
      'dataset': f'Real images / targets: one of {DATASETS}. `strokes` needs no download.',
      'data_dir': 'Where the datasets live (default: $SPIRAL_DATA_DIR or ~/spiral_data).',
      'conditional': 'Reconstruct a target (True) or generate unconditionally (False).',
      'render_width': 'Render at this width and show the agent canvas_width (SPIRAL++: 256 → 64).',
      'network_size': 'tiny (CPU experiments) or deepmind (the released architecture).',
      'reward': 'spiral: D(final) at the last step; spiral++: D differences; l2: −‖final − target‖².',
      'd_loss': 'wgan-gp (SPIRAL) or sn-gan (SPIRAL++: spectral norm + non-saturating loss).',
      'd_conditioning': 'Conditional D input: pair (render, target) — real = (target, target) — or '
      'complement (SPIRAL++: D judges one half of the render beside the other half of '
      'the target).',
      'd_steps_per_policy_step': "Discriminator updates per policy update (≥ 1; WGAN's n_critic): each "
      'learner step trains D this many times, each on a fresh batch of real '
      'images against a fresh batch of replayed fakes.',
      'stroke_penalty': 'Auxiliary reward: −this for every new disjoint stroke (the paper, MNIST).',
      'blank_penalty': 'Auxiliary reward: −this when the final canvas shows nothing (the paper, MNIST).',
      'fakes_replay_size': 'D samples fakes uniformly from the most recent this many renders (0: the last '
      f'{FAKES_REPLAY_BATCHES} batches, as in the paper).',
      'discount': f'γ of the return (default: {SPIRAL_PP_DISCOUNT} for --reward=spiral++, 1 otherwise).',
      'gradient_penalty_weight': "WGAN-GP weight λ (10: keeps D's outputs O(1–10) on 64² images; "
      "DeepMind's released agents: 1).",
      'policy_learning_rate_decay': 'none: constant; linear: falls to 0 at --max_frames (IMPALA), so the '
      "final weights come from small steps. D's rate stays constant.",
      'reward_normalisation': 'Rewards before V-trace: none; std (÷ a running std of episode returns); '
      'standardise (also centred). See spiral_tf/learning/normalisation.py.',
      'max_gradient_norm': 'Global-norm clipping of the policy + critic gradients (0: none).',
      'strategy': f'tf.distribute strategy: {STRATEGIES}.',
      'precision': 'float32, or mixed_bfloat16: the networks compute in bfloat16 (variables, logits, '
      'losses and V-trace stay float32; TPUs, and CPUs with AMX/AVX-512 BF16).',
      'num_cpu_replicas': 'With --strategy=mirrored and no accelerator: split the CPU into this many '
      'logical devices.',
      'tpu': 'With --strategy=tpu: which TPU. A Cloud TPU name (looked up through the Cloud TPU API), '
      "grpc://host:port (a TPU node's address, e.g. grpc://10.0.0.2:8470), or local (the TPU "
      'attached to this TPU VM). Empty (default): the name in the TPU_NAME environment variable.',
      'envs_per_actor': 'Environments each actor steps in lockstep with one batched policy call.',
      'weight_pull_seconds': 'How often an actor fetches fresh weights (in the background).',
      'queue_size': 'Episodes buffered in Reverb between actors and learner (0: 2 × batch).',
      'reverb_address': 'host:port of the Reverb server (default: started by --role=all on loopback).',
      'reverb_port': 'Port for --role=reverb (0: pick a free one; the server prints it).',
      'reverb_bind_address': 'The address the Reverb server listens on: 127.0.0.1 (this host only), '
      '0.0.0.0 (every interface: actors on other hosts) or one address of this '
      'host (see README, Operations).',
      'max_nonfinite_updates': 'Stop the run (the last good checkpoint stays) after this many updates '
      'in a row with a NaN/Inf loss or weights; each one is skipped and logged.',
      'max_frames': 'Stop after this many environment frames (0: no limit).',
      'max_learner_steps': 'Stop after this many learner steps (0: no limit).',
      'max_minutes': 'Stop after this many minutes of training (0: no limit).',
      'evaluator': 'With --role=all: also run the evaluator (scores each export on held-out targets).',
      'eval_targets': 'Held-out targets the evaluator paints per export.',
      'local_actors': "With --role=all: how many actor processes share the run's --num_actors × "
      '--envs_per_actor environments on this host (0: as many as its cores and memory '
      'hold; the plan is printed before anything starts). --role=actor ignores it.',
      'num_learner_workers': 'With --role=all and --strategy=multi_worker: how many learner processes '
      'train together (MultiWorkerMirroredStrategy, TF_CONFIG generated on loopback '
      'ports; worker 0, the chief, alone writes to --root_dir). On a cluster each '
      'learner host runs --role=learner with its own TF_CONFIG instead.',
      'first_env': "Index of this actor's first environment among the run's, for their seeds "
      '(-1: --task × --envs_per_actor). Set by --role=all for the actors it starts.',
      'population_size': 'With --role=all: train this many members, each a whole run under '
      '--root_dir/members/<i>/ with its own Reverb server, seed (--seed + i) and hyper-parameters '
      '(spiral_tf/population/). 1: one run.',
      'pbt_interval_steps': 'In a population: every this many learner steps, the bottom quarter of '
      'the members by --pbt_fitness copy a top-quarter member (weights, optimizers) and perturb its '
      'policy learning rate and entropy cost by × 0.8 or × 1.25 (PBT). 0: no PBT.',
      'pbt_fitness': "What ranks members: l2 (−the final canvas's l2 to its target, conditional runs), "
      "d_score (D's mean score of the renders) or auto (l2 if --conditional, else d_score).",
      'pbt_learning_rate_range': "low,high of the members' initial policy learning rates (log-uniform) "
      "and of PBT's perturbations.",
      'pbt_entropy_cost_range': "low,high of the members' initial entropy costs (log-uniform) and of "
      "PBT's perturbations.",
      'shared_discriminator': 'In a population: one discriminator (SPIRAL++), trained by its own process '
      "on every member's fakes (a queue, no replay), whose weights every member's learner rewards with; "
      'the members train only their policies. False: each member its own D (SPIRAL).',
      'discriminator_members': 'With --role=discriminator: host:port,… of the Reverb servers of the '
      'members it trains on (set by the population).',
      'population_members': 'A population across hosts: the members this host runs (e.g. 2,3), all '
      'hosts sharing --root_dir (a shared file system). Empty: every member, on this host.',
      'population_lead': 'A population across hosts: this host decides the PBT rounds and runs the '
      'shared D (exactly one host per population; the one that runs every member is the lead).',
  }
  for name, default in _flag_defaults().items():
    text = help_text.get(name, name.replace('_', ' ') + '.')
    if isinstance(default, bool):
      flags.DEFINE_bool(name, default, text, flag_values=flag_values)
    elif isinstance(default, int):
      flags.DEFINE_integer(name, default, text, flag_values=flag_values)
    elif isinstance(default, float):
      flags.DEFINE_float(name, default, text, flag_values=flag_values)
    elif isinstance(default, tuple):
      flags.DEFINE_list(name, [str(x) for x in default], text, flag_values=flag_values)
    elif name == 'render_width':
      flags.DEFINE_integer(name, None, text, flag_values=flag_values)
    elif name == 'discount':
      flags.DEFINE_float(name, None, text, flag_values=flag_values)
    else:
      flags.DEFINE_string(name, default, text, flag_values=flag_values)


def from_flags(flag_values) -> Config:
  """Builds and validates the Config from parsed absl flags."""
  values = {name: flag_values[name].value for name in _flag_defaults()}
  try:
    values['brush_sizes'] = tuple(int(x) for x in values['brush_sizes'])
  except ValueError:
    raise ConfigError(f'--brush_sizes: {values["brush_sizes"]} must be a list of integers') from None
  for name in ('pbt_learning_rate_range', 'pbt_entropy_cost_range'):
    try:
      values[name] = tuple(float(x) for x in values[name])
    except ValueError:
      raise ConfigError(f'--{name}: {values[name]} must be two numbers, low,high') from None
  return validate(from_dict(values))


# The names of to_dict: Config's fields but `learner`, and the update's (each name is one setting's).
_LEARNER_SETTINGS = tuple(field.name for field in dataclasses.fields(LearnerConfig))
SETTINGS = tuple(f.name for f in dataclasses.fields(Config) if f.name != 'learner') + _LEARNER_SETTINGS


def to_dict(config: Config) -> dict:
  """Every setting of `config` by its name, flat: what a run's config.json and an export's metadata hold.

  Flat like the flags (a setting's name is its flag's), so the files of runs saved before the update's
  settings were nested in `Config.learner` read back unchanged, and a file reads like a flag file.
  """
  values = {name: getattr(config, name) for name in SETTINGS if name not in _LEARNER_SETTINGS}
  values.update(dataclasses.asdict(config.learner))
  return values


def from_dict(values) -> Config:
  """The Config of flat `values` (to_dict's form; JSON lists allowed); absent settings take their defaults.

  Checks only what LearnerConfig checks; `validate` the result. Raises ConfigError for unknown names.
  """
  values = dict(values)
  unknown = sorted(set(values) - set(SETTINGS))
  if unknown:
    raise ConfigError(f'settings {unknown} are unknown to this spiral_tf (saved by a newer version?)')
  for name in ('brush_sizes', 'pbt_learning_rate_range', 'pbt_entropy_cost_range'):
    if values.get(name) is not None:
      values[name] = tuple(values[name])
  learner = LearnerConfig(**{name: values.pop(name) for name in _LEARNER_SETTINGS if name in values})
  return Config(learner=learner, **values)
