"""A training run's directory (`--root_dir`): the one place its layout is spelled.

  config.json           the run's Config (the learner writes it; export, paint and evaluate read it back)
  status.json           the learner's latest progress line as data: {"learner_step", "frames", "scalars"}
                        (rewritten atomically at each log line; a population ranks its members by it)
  checkpoints/          the learner's tf.train checkpoints (a run resumes from the latest)
  export/               the latest SavedModel (spiral_tf/inference/export.py), swapped into place atomically
  tensorboard/          one sub-directory per writer: learner/, eval/ (spiral_tf/dashboard.py)
  logs/<role>.log       the output of every role `--role=all` supervises (spiral_tf/distributed/supervisor.py)
  reverb_checkpoints/   the Reverb server's checkpoint directory (spiral_tf/distributed/roles.py)

A population (spiral_tf/population/, issue 18) is a directory of member runs (PopulationDir):

  population.json       the population's state: its size, seed, each member's hyper-parameters, the next round
  pbt.jsonl             the lineage: one line per PBT decision (spiral_tf/population/pbt.py)
  members/<i>/          member i's run directory, laid out as above
  logs/member-<i>.log   the output of member i's `--role=all` process
  discriminator/        with --shared_discriminator, the shared D's run directory: config.json,
                        checkpoints/, status.json (its step, and fakes trained on per member), tensorboard/
  logs/discriminator.log  the output of the `--role=discriminator` process
  hosts/member-<i>.json the host process running member i: {"hostname", "pid", "reverb_address" (with a
                        shared D: what it trains through), "finished"}, rewritten by that process
  pbt/member-<i>.copy.json    a PBT exploit the lead asks of member i's host: {"step", "source",
                              "hyperparameters"}; removed once done
  pbt/member-<i>.copied.json  its answer: {"step", "source", "checkpoint"} (checkpoint null: not copied,
                              the member had finished); the lead removes it after writing the lineage

Imports nothing heavy: the supervisor, which must not load TensorFlow, and the CLIs' cheap checks use it.

Usage:
  run = RunDir(config.root_dir)
  run.config_file, run.checkpoints, run.export, run.tensorboard, run.log('learner')
  run.is_run()                                   # has config.json: a training run directory
  population = PopulationDir(root)
  population.state_file, population.lineage, population.member(2)   # member(2) is a RunDir
  population.discriminator, population.log('discriminator')          # a RunDir; the D role's output
  population.host_record(2), population.copy_request(2), population.copy_answer(2)
"""

import dataclasses
import os

CONFIG_FILE = 'config.json'
TENSORBOARD = 'tensorboard'  # `make tensorboard RUN=<run>` serves this one (launch/serve_tensorboard.py).


@dataclasses.dataclass(frozen=True)
class RunDir:
  """The paths of one run directory (module docstring); nothing is created or read."""

  root: str

  def __post_init__(self):
    object.__setattr__(self, 'root', os.fspath(self.root))

  def _path(self, *parts) -> str:
    return os.path.join(self.root, *parts)

  @property
  def config_file(self) -> str:
    return self._path(CONFIG_FILE)

  @property
  def checkpoints(self) -> str:
    return self._path('checkpoints')

  @property
  def status_file(self) -> str:
    return self._path('status.json')

  @property
  def export(self) -> str:
    return self._path('export')

  @property
  def tensorboard(self) -> str:
    return self._path(TENSORBOARD)

  @property
  def logs(self) -> str:
    return self._path('logs')

  def log(self, role: str) -> str:
    return os.path.join(self.logs, f'{role}.log')

  @property
  def reverb_checkpoints(self) -> str:
    return self._path('reverb_checkpoints')

  def is_run(self) -> bool:
    return os.path.isfile(self.config_file)


@dataclasses.dataclass(frozen=True)
class PopulationDir:
  """The paths of a population's directory (module docstring); nothing is created or read."""

  root: str

  def __post_init__(self):
    object.__setattr__(self, 'root', os.fspath(self.root))

  @property
  def state_file(self) -> str:
    return os.path.join(self.root, 'population.json')

  @property
  def lineage(self) -> str:
    return os.path.join(self.root, 'pbt.jsonl')

  def log(self, index) -> str:
    """Member `index`'s output, or the shared D's for index 'discriminator'."""
    name = index if index == 'discriminator' else f'member-{index}'
    return os.path.join(self.root, 'logs', f'{name}.log')

  def host_record(self, index: int) -> str:
    return os.path.join(self.root, 'hosts', f'member-{index}.json')

  def copy_request(self, index: int) -> str:
    return os.path.join(self.root, 'pbt', f'member-{index}.copy.json')

  def copy_answer(self, index: int) -> str:
    return os.path.join(self.root, 'pbt', f'member-{index}.copied.json')

  @property
  def discriminator(self) -> RunDir:
    return RunDir(os.path.join(self.root, 'discriminator'))

  def member(self, index: int) -> RunDir:
    if index < 0:
      raise ValueError(f'member index {index} must be ≥ 0')
    return RunDir(os.path.join(self.root, 'members', str(index)))
