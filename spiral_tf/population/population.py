"""`--role=all --population_size=N`: N members trained side by side, with PBT rounds between them.

Each member is a whole run — `launch/train.py --role=all` with its own supervisor, Reverb server, learner,
actors and discriminator — under `root_dir/members/<i>/` (spiral_tf/run_dir.py, PopulationDir), started with
`--seed=<seed + i>` and its own policy learning rate and entropy cost. One Reverb server per member, not
one server with N sets of tables: a member is then exactly a single run (nothing in the actor, learner or
replay code knows about populations), a server that dies takes one member down rather than all, and the
member restarts as any run does. This process imports no TensorFlow.

Hyper-parameters: drawn log-uniformly from `--pbt_learning_rate_range` and `--pbt_entropy_cost_range` when
the population is created, kept in `population.json` and reused on resume (the saved ones win over the
ranges; a different `--population_size` than the saved one is an error). So is the step of the next round:
a resume with another `--pbt_interval_steps` holds that round first, then steps by the new interval (the
members checkpoint at multiples of the new one, so that round copies the latest checkpoint before it).

PBT (`--pbt_interval_steps=K` > 0; spiral_tf/population/pbt.py for the rules): each member's learner
checkpoints at every multiple of K and rewrites its `status.json` at every log line. Round r happens once
every member has passed step r·K (or has finished): the fitness of a member is the mean of the values its
status showed since its previous round (`--pbt_fitness`: −l2 of the final canvas to its target, or D's
score of the renders), the bottom quarter copy a random top-quarter member and perturb the copied
hyper-parameters. An exploit stops the member (SIGTERM: it checkpoints), replaces its checkpoints by the
source's latest complete one (checkpoints.py), saves the new hyper-parameters, writes the lineage line and
starts it again — it resumes from the copy: weights, optimizers, reward normaliser, step and frames. A
finished member (it reached its limits) is ranked but not restarted.

The shared discriminator (`--shared_discriminator`, SPIRAL++): the population gives each member a Reverb
port of its own (`--reverb_port`, kept for the member's restarts) and starts one more process,
`launch/train.py --role=discriminator` with the members' addresses, under `root_dir/discriminator/`
(spiral_tf/distributed/shared_discriminator.py): it trains D on every member's fakes and publishes its
weights to every member, whose learners train only their policies. It is restarted like a member when it
dies, stopped after the members when the population stops, and stopped once every member finished. With
a shared D, the fitness `d_score` (the shared D's score of a member's renders) compares members on one
scale — the paper's choice.

Across hosts (`--population_members=i,j,…` on each host, all sharing `--root_dir` on a shared file
system; spiral_tf/run_dir.py has the files named here): each host's process runs its own members, and one
of them, `--population_lead`, decides. The lead creates population.json (the others wait for it and read
their members' hyper-parameters from it at each start), ranks every member from the status.json files
and, for a round, saves the new hyper-parameters with the round as pending, then asks each copying
member's host for the copy (`pbt/member-<i>.copy.json`). The host that runs the member stops it, copies
the checkpoint, answers (`pbt/member-<i>.copied.json`) and starts it again; once every answer is in, the
lead writes the lineage and clears the pending round (a lead that restarts in between finishes that round
first; its lineage lines are written once). One machine is the same exchange within one process. Each
host records where its members run (`hosts/member-<i>.json`: the Reverb address a shared D trains through
— this host's `--reverb_bind_address` — and whether the member finished); the lead starts the shared D
once every member has an address (it clears the other hosts' addresses when it starts; each host rewrites
its own when they differ), restarts it when one changes (a host's process restarted), and stops
when every member finished; another host's process stops when its own members finished. A host that is
down holds the rounds (the lead says so once); its members' peers train on.

Reliability: a member that exits with an error (its learner died, say) is started again from its
checkpoint, with the supervisor's back-off for quick deaths; a configuration error (exit 2) stops the
population. Ctrl-C / SIGTERM stops every member (each checkpoints) and returns; the same command resumes
every member, its hyper-parameters and the lineage. Not handled: a member's supervisor killed with SIGKILL
leaves its roles running (they are in sessions of their own, as in a single run).

Usage:
  exit_code = Population(train_py, argv, config).run()   # config.population_members: this host's share
  best = fittest(root_dir)     # the index of the member whose latest status is the fittest
"""

import contextlib
import dataclasses
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

from spiral_tf import config as config_lib
from spiral_tf import files
from spiral_tf import run_dir
from spiral_tf.distributed import console
from spiral_tf.distributed import listen
from spiral_tf.distributed import supervisor as supervisor_lib
from spiral_tf.population import checkpoints
from spiral_tf.population import pbt

POLL_S = 2.0
# A member's supervisor stops its learner (a final checkpoint and export) and then its other roles.
MEMBER_SHUTDOWN_S = supervisor_lib.LEARNER_SHUTDOWN_S + supervisor_lib.CHILD_SHUTDOWN_S + 30.0
CONFIG_ERROR = 2


@dataclasses.dataclass
class State:
  """`population.json`: what a population keeps across restarts."""

  num_members: int
  seed: int
  hyperparameters: list  # [{'policy_learning_rate': …, 'entropy_cost': …}] per member
  next_round_step: int = 0  # The learner step every member must pass for the next PBT round (0: none).
  # A round decided and not yet done: {'step', 'fitness': {member: value}, 'decisions': [Decision fields]}.
  pending: dict | None = None

  @classmethod
  def load_or_create(cls, path: str, config: config_lib.Config) -> 'State':
    if not os.path.exists(path):
      hypers = pbt.initial(config.population_size, config.pbt_ranges, seed=config.seed)
      return cls(config.population_size, config.seed, hypers, config.pbt_interval_steps)
    return cls.load(path, config)

  @classmethod
  def load(cls, path: str, config: config_lib.Config) -> 'State':
    try:
      with open(path) as f:
        state = cls(**json.load(f))
    except (json.JSONDecodeError, TypeError) as e:
      raise config_lib.ConfigError(f'{path}: not a population state ({e})') from None
    if state.num_members != config.population_size:
      raise config_lib.ConfigError(
          f'--population_size: {config.population_size}, but the population in {os.path.dirname(path)} has '
          f'{state.num_members} members (population.json); resume it with --population_size='
          f'{state.num_members} or use another --root_dir'
      )
    if config.pbt_interval_steps and not state.next_round_step:
      state.next_round_step = config.pbt_interval_steps
    return state

  def save(self, path: str):
    files.write_json(path, dataclasses.asdict(self))


def _read_json(path: str) -> dict | None:
  """The JSON object in `path`, None if there is none (yet). Every file read here is written atomically."""
  try:
    with open(path) as f:
      return json.load(f)
  except (FileNotFoundError, json.JSONDecodeError):
    return None


def read_status(member: run_dir.RunDir) -> dict | None:
  """A member's status.json ({'learner_step', 'frames', 'scalars'}), None before its first log line."""
  return _read_json(member.status_file)


def fitness_value(status: dict, fitness: str) -> float | None:
  """What a status says of a member's fitness (higher is better), None if it does not say it yet."""
  scalars = status.get('scalars', {})
  if fitness == 'l2':
    return -scalars['l2_to_target'] if 'l2_to_target' in scalars else None
  return scalars.get('d_score_fake')


def fittest(root: str) -> int:
  """The member of the population in `root` whose latest status is the fittest, by its own --pbt_fitness.

  The latest status is the last logged batch (noisy; what `launch/export.py --member=best` ranks by).
  Raises ValueError naming the directory if it is not a population or no member has a status yet.
  """
  directory = run_dir.PopulationDir(root)
  if not os.path.isfile(directory.state_file):
    raise ValueError(f'{root} is not a population directory (no population.json)')
  with open(directory.state_file) as f:
    num_members = json.load(f)['num_members']
  scores = {}
  for i in range(num_members):
    member = directory.member(i)
    status = read_status(member)
    if status is None or not member.is_run():
      continue
    with open(member.config_file) as f:
      member_config = config_lib.from_dict(json.load(f))
    value = fitness_value(status, member_config.effective_pbt_fitness)
    if value is not None:
      scores[i] = value
  if not scores:
    raise ValueError(f'{root}: no member has logged a fitness yet (members/<i>/status.json)')
  return max(scores, key=lambda i: (scores[i], -i))


class Population:
  """Runs, ranks and restarts the members of a population (module docstring)."""

  def __init__(self, train_py: str, argv: list, config: config_lib.Config, poll_s: float = POLL_S):
    self._train_py, self._argv, self._config, self._poll_s = train_py, list(argv), config, poll_s
    self.dir = run_dir.PopulationDir(config.root_dir)
    self.members = [self.dir.member(i) for i in range(config.population_size)]
    self.own = config.population_member_indices  # The members this process runs.
    self.lead = config.is_population_lead
    self.lineage = pbt.Lineage(self.dir.lineage)
    self._procs: dict[int, subprocess.Popen] = {}
    self._logs = {}
    self._finished: set[int] = set()
    self._started_at: dict[int, float] = {}
    self._quick_deaths: dict[int, int] = {}
    self._restart_at: dict[int, float] = {}
    self._scores: dict[int, dict[int, float]] = {i: {} for i in range(config.population_size)}
    self._stopping = False
    self.state: State | None = None
    self._ports: dict[int, int] = {}  # Own members' Reverb ports, with a shared D (it trains through them).
    self._d_proc: subprocess.Popen | None = None
    self._d_members: list[str] = []  # The addresses the running shared D trains through.
    self._d_restart_at: float | None = None
    self._waiting_for: set[int] = set()  # Members whose copy the lead waits for (said once each).

  # --- members ---------------------------------------------------------------------------------------

  def _run_command(self, role: str, root: str, seed: int) -> list:
    """train.py's command for one run of the population; later flags win (absl), so these override the
    user's and the flagfile's."""
    return [
        sys.executable,
        self._train_py,
        *self._argv,
        f'--role={role}',
        '--population_size=1',
        '--population_members=',
        '--nopopulation_lead',
        f'--root_dir={root}',
        f'--seed={seed}',
    ]

  def _command(self, i: int) -> list:
    if not self.lead:  # The lead saves a round's values before it asks for the copy: read them fresh.
      self.state = State.load(self.dir.state_file, self._config)
    hypers = self.state.hyperparameters[i]
    return [
        *self._run_command('all', self.members[i].root, self._config.seed + i),
        f'--policy_learning_rate={hypers["policy_learning_rate"]!r}',
        f'--entropy_cost={hypers["entropy_cost"]!r}',
        *([f'--reverb_port={self._ports[i]}'] if i in self._ports else []),
    ]

  def _address(self, i: int) -> str | None:
    """Where own member `i`'s Reverb server listens for the shared D (None without one)."""
    if i not in self._ports:
      return None
    bind = self._config.reverb_bind_address
    if not listen.is_wildcard(bind):
      return f'{bind}:{self._ports[i]}'
    # Every interface: loopback serves a lead that runs every member; other hosts need a name.
    host = '127.0.0.1' if len(self.own) == len(self.members) else socket.gethostname()
    return f'{host}:{self._ports[i]}'

  def _write_host_record(self, i: int):
    files.write_json(
        self.dir.host_record(i),
        {
            'hostname': socket.gethostname(),
            'pid': os.getpid(),
            'reverb_address': self._address(i),
            'finished': i in self._finished,
        },
    )

  def _is_finished(self, i: int) -> bool:
    if i in self.own:
      return i in self._finished
    return bool((_read_json(self.dir.host_record(i)) or {}).get('finished'))

  def _spawn(self, key, command) -> subprocess.Popen:
    """`command` in a session of its own, its output appended to the log of `key` (a member's index, or
    'discriminator'; PopulationDir.log)."""
    os.makedirs(os.path.dirname(self.dir.log(key)), exist_ok=True)
    out = self._logs.get(key) or open(self.dir.log(key), 'ab')  # pylint: disable=consider-using-with
    self._logs[key] = out
    return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

  def _terminate(self, processes: dict):
    """SIGTERM to each of {name: process} still running (each checkpoints), then waits for all; kills one
    that has not stopped within MEMBER_SHUTDOWN_S."""
    running = {name: proc for name, proc in processes.items() if proc.poll() is None}
    for proc in running.values():
      proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + MEMBER_SHUTDOWN_S
    for name, proc in running.items():
      try:
        proc.wait(max(0.1, deadline - time.monotonic()))
      except subprocess.TimeoutExpired:
        console.say(f'[population] {name} did not stop in {MEMBER_SHUTDOWN_S:.0f} s; killing it')
        proc.kill()
        proc.wait()

  def _member_addresses(self) -> list[str] | None:
    """Every member's Reverb address from the host records, None while one is missing."""
    addresses = [
        (_read_json(self.dir.host_record(i)) or {}).get('reverb_address') for i in range(len(self.members))
    ]
    return None if None in addresses else addresses

  def _start_discriminator(self, members: list[str]):
    command = [
        *self._run_command('discriminator', self.dir.discriminator.root, self._config.seed),
        f'--discriminator_members={",".join(members)}',
    ]
    self._d_proc, self._d_members = self._spawn('discriminator', command), members
    console.say(
        f'[population] started the shared discriminator (pid {self._d_proc.pid}) on the fakes of '
        f'{",".join(members)}; log {self.dir.log("discriminator")}'
    )

  def _watch_discriminator(self) -> int | None:
    """Starts the shared D once every member has an address, restarts it when one changes or it died (after
    a few seconds); CONFIG_ERROR if it cannot start at all."""
    members = self._member_addresses()
    if members is None:
      return None
    if self._d_proc is None:
      self._start_discriminator(members)
      return None
    if self._d_proc.poll() is None:
      if members != self._d_members:
        console.say('[population] a member moved (its host restarted): restarting the shared discriminator')
        self._stop_discriminator()
        self._start_discriminator(members)
      return None
    if self._d_proc.returncode == CONFIG_ERROR:
      console.say(
          f'[population] shared discriminator: configuration error (its log: '
          f'{self.dir.log("discriminator")})',
          error=True,
      )
      return CONFIG_ERROR
    if self._d_restart_at is None:
      console.say(
          f'[population] the shared discriminator exited with code {self._d_proc.returncode}; '
          'restarting it from its checkpoint'
      )
      self._d_restart_at = time.monotonic() + supervisor_lib.restart_delay(1)
    elif time.monotonic() >= self._d_restart_at:
      self._d_restart_at = None
      self._start_discriminator(members)
    return None

  def _stop_discriminator(self):
    if self._d_proc is not None:
      self._terminate({'the shared discriminator': self._d_proc})

  def _start(self, i: int):
    self._procs[i] = self._spawn(i, self._command(i))
    self._started_at[i] = time.monotonic()
    h = self.state.hyperparameters[i]
    console.say(
        f'[population] started member {i} (pid {self._procs[i].pid}): policy learning rate '
        f'{h["policy_learning_rate"]:.3g}, entropy cost {h["entropy_cost"]:.3g}; log {self.dir.log(i)}'
    )

  def _stop(self, members):
    """SIGTERM to each running member (its supervisor checkpoints its learner), then waits for all."""
    self._terminate({f'member {i}': self._procs[i] for i in members if i in self._procs})

  # --- the loop --------------------------------------------------------------------------------------

  def _on_signal(self, signum, frame):
    del frame
    if not self._stopping:
      console.say(f'[population] {signal.Signals(signum).name}: stopping every member (each checkpoints)')
    self._stopping = True

  def run(self) -> int:
    previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
      try:
        self.state = self._load_state()
      except config_lib.ConfigError as e:
        console.say(f'train.py: configuration error: {e}', error=True)
        return CONFIG_ERROR
      if self.state is None:  # Stopped while waiting for the lead.
        return 0
      done = len(self.lineage.read())
      console.say(
          f'[population] {self.state.num_members} members in {self.dir.root}'
          + ('' if len(self.own) == len(self.members) else f'; this host runs members {list(self.own)}')
          + (
              f'; PBT every {self._config.pbt_interval_steps} steps'
              if self._config.pbt_interval_steps
              else ''
          )
          + (f'; resuming after {done} PBT decisions' if done else '')
      )
      if self._config.shared_discriminator:
        self._ports = {i: listen.free_port(self._config.reverb_bind_address) for i in self.own}
      if self.lead:  # Other hosts' addresses are of their previous start until they rewrite them (_watch).
        for i in set(range(len(self.members))) - set(self.own):
          record = _read_json(self.dir.host_record(i))
          if record is not None and record.get('reverb_address'):
            files.write_json(self.dir.host_record(i), dict(record, reverb_address=None))
      for i in self.own:
        self._write_host_record(i)
      if self.lead and self._config.shared_discriminator:
        self._watch_discriminator()  # On one machine every address is known now: D starts first.
      for i in self.own:
        self._start(i)
      return self._watch()
    finally:
      self._stop(list(self._procs))
      self._stop_discriminator()  # After the members: their last renders are of no use to it then.
      if self.lead and self.state is not None:
        self.state.save(self.dir.state_file)
      for s, handler in previous.items():
        signal.signal(s, handler)
      for f in self._logs.values():
        f.close()

  def _load_state(self) -> State | None:
    """The lead creates (or resumes) population.json; another host waits for it (None: stopped meanwhile)."""
    if self.lead:
      state = State.load_or_create(self.dir.state_file, self._config)
      state.save(self.dir.state_file)
      return state
    if not os.path.exists(self.dir.state_file):
      console.say(f'[population] waiting for the lead (--population_lead) to create {self.dir.state_file}')
    while not os.path.exists(self.dir.state_file):
      if self._stopping:
        return None
      time.sleep(self._poll_s)
    return State.load(self.dir.state_file, self._config)

  def _watch(self) -> int:
    while not self._stopping:
      self._answer_copy_requests()
      for i in self.own:  # The lead clears other hosts' addresses when it starts.
        if (_read_json(self.dir.host_record(i)) or {}).get('reverb_address') != self._address(i):
          self._write_host_record(i)
      for i, proc in list(self._procs.items()):
        if i in self._finished or proc.poll() is None:
          continue
        code = proc.returncode
        if code == 0:
          self._finished.add(i)
          self._write_host_record(i)
          console.say(f'[population] member {i} finished')
        elif code == CONFIG_ERROR:
          console.say(
              f'[population] member {i}: configuration error (its log: {self.dir.log(i)})', error=True
          )
          return CONFIG_ERROR
        elif i not in self._restart_at:
          lived = time.monotonic() - self._started_at[i]
          quick = lived < supervisor_lib.HEALTHY_AFTER_S
          self._quick_deaths[i] = self._quick_deaths.get(i, 0) + 1 if quick else 0
          delay = supervisor_lib.restart_delay(self._quick_deaths[i])
          console.say(f'[population] member {i} exited with code {code}; restarting it in {delay:.0f} s')
          self._restart_at[i] = time.monotonic() + delay
        elif time.monotonic() >= self._restart_at[i]:
          del self._restart_at[i]
          self._start(i)
      if not self.lead and len(self._finished) == len(self.own):
        console.say(f'[population] every member of this host finished ({list(self.own)})')
        return 0
      if self.lead:
        if all(self._is_finished(i) for i in range(len(self.members))):
          console.say('[population] every member finished')
          return 0
        if self._config.shared_discriminator and self._watch_discriminator() == CONFIG_ERROR:
          return CONFIG_ERROR
        self._poll_scores()
        if self.state.pending:
          self._finish_round()
        elif self.state.next_round_step and self._round_due():
          self._round()
      time.sleep(self._poll_s)
    return 0

  def _poll_scores(self):
    fitness = self._config.effective_pbt_fitness
    for i, member in enumerate(self.members):
      status = read_status(member)
      if status is None:
        continue
      value = fitness_value(status, fitness)
      if value is not None:
        self._scores[i][int(status['learner_step'])] = value

  def _step(self, i: int) -> int:
    status = read_status(self.members[i])
    return int(status['learner_step']) if status else 0

  def _round_due(self) -> bool:
    return all(
        self._is_finished(i) or self._step(i) >= self.state.next_round_step for i in range(len(self.members))
    )

  def _round(self):
    """Decides a round and asks for its copies; _finish_round writes it down once they are done."""
    step = self.state.next_round_step
    fitness = {
        i: (sum(scores.values()) / len(scores) if scores else None) for i, scores in self._scores.items()
    }
    rng = random.Random(self.state.seed * 1_000_003 + step)
    decisions = pbt.decide(fitness, self.state.hyperparameters, self._config.pbt_ranges, rng)
    shown = ', '.join(f'{i}: {"—" if f is None else f"{f:.4g}"}' for i, f in fitness.items())
    console.say(f'[population] PBT round at step {step}: fitness {shown}')
    copies = []
    for d in decisions:
      if self._is_finished(d.member):
        console.say(f'[population] member {d.member} finished; not copying member {d.source} into it')
        continue
      copies.append(d)
      self.state.hyperparameters[d.member] = d.hyperparameters
      self._scores[d.member] = {}
    self.state.pending = {
        'step': step,
        'fitness': {str(i): f for i, f in fitness.items()},
        'decisions': [dataclasses.asdict(d) for d in copies],
    }
    self.state.next_round_step = step + self._config.pbt_interval_steps
    self.state.save(self.dir.state_file)  # The new values first: a member's host reads them at its restart.
    for d in copies:
      files.write_json(
          self.dir.copy_request(d.member),
          {'step': step, 'source': d.source, 'hyperparameters': d.hyperparameters},
      )
    for i in self._scores:  # Fitness is over the renders since the previous round.
      self._scores[i] = {s: v for s, v in self._scores[i].items() if s > step}
    self._answer_copy_requests()  # This host's own copies at once.
    self._finish_round()

  def _finish_round(self):
    """Once every copy of the pending round is answered: its lineage lines (once), then no round pending."""
    pending = self.state.pending
    step, decisions = pending['step'], [pbt.Decision(**d) for d in pending['decisions']]
    copied = {}
    for d in decisions:
      answer = _read_json(self.dir.copy_answer(d.member))
      if answer is not None and answer['step'] == step:
        if answer['checkpoint']:
          copied[d.member] = answer['checkpoint']
      elif not self._is_finished(d.member):
        if d.member not in self._waiting_for:
          self._waiting_for.add(d.member)
          console.say(f"[population] PBT round at step {step}: waiting for member {d.member}'s host to copy")
        return
    if not any(line['step'] == step for line in self.lineage.read()):
      fitness = {int(i): f for i, f in pending['fitness'].items()}
      self.lineage.append(step, [d for d in decisions if d.member in copied], fitness, copied)
    self.state.pending = None
    self.state.save(self.dir.state_file)
    self._waiting_for.clear()
    for d in decisions:
      with contextlib.suppress(FileNotFoundError):
        os.remove(self.dir.copy_answer(d.member))

  def _answer_copy_requests(self):
    """Does what the lead asked of this host's members: stop, copy the checkpoint, answer, start again."""
    for i in self.own:
      request = _read_json(self.dir.copy_request(i))
      if request is None:
        continue
      answer = {'step': request['step'], 'source': request['source'], 'checkpoint': None}
      if i in self._finished:
        console.say(f'[population] member {i} finished; not copying member {request["source"]} into it')
      else:
        self._stop([i])
        # Its status is its own, pre-copy self's: the restarted learner writes a new one.
        with contextlib.suppress(FileNotFoundError):
          os.remove(self.members[i].status_file)
        copied = checkpoints.copy_latest(
            self.members[request['source']].checkpoints, self.members[i].checkpoints
        )
        answer['checkpoint'] = os.path.basename(copied)
        console.say(
            f'[population] member {i} ← member {request["source"]} ({answer["checkpoint"]}): '
            + ', '.join(f'{k} {v:.3g}' for k, v in request['hyperparameters'].items())
        )
      files.write_json(self.dir.copy_answer(i), answer)
      os.remove(self.dir.copy_request(i))
      if answer['checkpoint']:
        self._restart_at.pop(i, None)  # A member that was down waiting to restart starts now.
        self._start(i)
