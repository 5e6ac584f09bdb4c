"""The processes of a training run: `run(role, config)` for reverb, actor, learner, evaluator, discriminator.

`launch/train.py` calls this in a fresh process per role (`--role=all` starts them as subprocesses). This
module is the one home of what makes a process of a role: its signal handling (SIGTERM and SIGINT set a
stop event; an actor keeps the default SIGTERM), the waits for the Reverb server, and its exit code:

  0  finished (a stop condition, or asked to stop)
  2  configuration error (the message names the flag), as launch/train.py's own checks
  3  learner stopped by --max_nonfinite_updates (the checkpoint keeps the last finite weights)

Every role builds its environment, agent and discriminator through `spiral_tf/components.py`, so the
Reverb signatures and weight tables agree across processes and hosts. The library classes it runs
(Actor, Learner, the evaluator's watch) neither install handlers nor end the process.

Usage:
  sys.exit(roles.run('learner', config))
"""

import ipaddress
import os
import signal
import sys
import threading

from absl import logging
import reverb
import tensorflow as tf

from spiral_tf import components
from spiral_tf import config as config_lib
from spiral_tf import run_dir
from spiral_tf.distributed import actor as actor_lib
from spiral_tf.distributed import console
from spiral_tf.distributed import evaluator as evaluator_lib
from spiral_tf.distributed import learner as learner_lib
from spiral_tf.distributed import listen
from spiral_tf.distributed import shared_discriminator
from spiral_tf.distributed import startup
from spiral_tf.learning import strategy as strategy_lib
from spiral_tf.replay import tables as replay

REVERB_STOP_S = 10.0
EXIT_OK = 0
EXIT_CONFIGURATION = 2
EXIT_NONFINITE = 3


def stop_event() -> threading.Event:
  """An event set by SIGTERM or SIGINT (the supervisor's and the user's way of saying stop)."""
  stop = threading.Event()
  handle_stop_signals(stop)
  return stop


def handle_stop_signals(stop: threading.Event) -> None:
  """SIGTERM and SIGINT set `stop`. Called again once a multi-worker strategy is up: TensorFlow's
  coordination service installs its own handlers, and a worker would then ignore SIGTERM."""
  for s in (signal.SIGTERM, signal.SIGINT):
    signal.signal(s, lambda signum, frame: stop.set())


def _tables(config: config_lib.Config):
  """The server needs only the specs and the variables' shapes: no renderer, no dataset."""
  agent = components.make_agent(config)
  discriminator = components.make_discriminator(config)
  trajectory_spec, fake_spec = components.specs(config)
  return replay.make_tables(
      trajectory_spec,
      fake_spec,
      agent.variables,
      discriminator.variables,
      queue_size=config.effective_queue_size,
      fakes_size=config.effective_fakes_replay_size,
      fakes_queue=config.shared_discriminator,
  )


def run_reverb(config: config_lib.Config) -> int:
  """Serves the tables on --reverb_bind_address:--reverb_port until SIGTERM/SIGINT.

  A restarted server starts empty (nobody writes Reverb checkpoints): the learner pushes its weights
  again and actors refill the queue; both reconnect by themselves.
  """
  bind = config.reverb_bind_address
  listen.ensure_preloaded(bind)  # May re-execute this process (spiral_tf/distributed/listen.py).
  # Port 0 must be resolved here: Reverb would pick one itself but report it as 0.
  port = listen.free_port(bind) if config.reverb_port == 0 else config.reverb_port
  stop = stop_event()
  checkpoint_dir = run_dir.RunDir(config.root_dir).reverb_checkpoints
  server = reverb.Server(
      _tables(config), port=port, checkpointer=reverb.checkpointers.DefaultCheckpointer(checkpoint_dir)
  )
  # This process listens on nothing else, so any other socket means the shim did not take effect.
  listening = listen.listening_sockets()
  if not listen.is_wildcard(bind) and listening != {(str(ipaddress.ip_address(bind)), port)}:
    server.stop()
    raise RuntimeError(
        f'Reverb listens on {sorted(listening)}, not only on --reverb_bind_address={bind} ' f'port {port}'
    )
  where = 'every interface' if listen.is_wildcard(bind) else bind
  console.say(f'[reverb] serving on {where}, port {port}')
  while not stop.wait(1.0):  # A timed wait: the signal handler always gets its turn.
    pass
  # The server holds nothing worth waiting for (a restarted one starts empty), and its gRPC shutdown
  # has been seen to hang: give it a few seconds, then leave.
  stopper = threading.Thread(target=server.stop, name='reverb-stop', daemon=True)
  stopper.start()
  stopper.join(REVERB_STOP_S)
  if stopper.is_alive():
    logging.warning('[reverb] the server did not stop within %.0f s; exiting anyway', REVERB_STOP_S)
    os._exit(EXIT_OK)  # pylint: disable=protected-access
  return EXIT_OK


def run_actor(config: config_lib.Config, task: int) -> int:
  tf.config.threading.set_intra_op_parallelism_threads(1)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  # SIGTERM keeps its default action: an actor owns nothing worth saving (a partial episode is the only
  # loss), and a Python handler would wait behind a blocked Reverb insert.
  images = components.load_targets(config, 'train') if config.conditional else None
  k = config.envs_per_actor
  # Environment n of the run (n = first + i) is seeded by n: --role=all packs the run's environments into
  # fewer processes (spiral_tf/distributed/placement.py) and passes each its --first_env.
  first = config.first_env if config.first_env >= 0 else task * k
  envs = [
      components.make_environment(config, 'train', seed=config.seed * 100_003 + first + i, images=images)
      for i in range(k)
  ]
  agent = components.make_agent(config)
  replay.wait_for_server(config.reverb_address, timeout_s=600)
  weights = actor_lib.WeightPuller(config.reverb_address, agent.variables, config.weight_pull_seconds)
  actor = actor_lib.Actor(
      envs,
      agent,
      reverb.Client(config.reverb_address),
      weights,
      conditional=config.conditional,
      episode_length=config.episode_length,
  )
  console.say(
      f"[actor {task}] {k} environments (the run's {first}–{first + k - 1}), "
      f'weights from learner step {weights.learner_step}'
  )
  actor.run()
  weights.stop()
  return EXIT_OK


def run_learner(config: config_lib.Config) -> int:
  """Trains until a stop condition or SIGTERM/SIGINT (then checkpoints); never returns (see the end).

  A multi-worker learner's TensorFlow server listens only on this worker's address in TF_CONFIG (loopback
  for --role=all's workers), not on every interface: the rule of --reverb_bind_address, by the same shim.
  """
  address = strategy_lib.worker_listen_address() if config.strategy == 'multi_worker' else None
  if address is not None:
    listen.ensure_preloaded(address)  # May re-execute this process (spiral_tf/distributed/listen.py).
  stop = stop_event()
  heartbeat = startup.Heartbeat(config, cores=len(os.sched_getaffinity(0)))
  heartbeat.start()
  replay.wait_for_server(config.reverb_address, timeout_s=600)
  try:
    learner = learner_lib.Learner(config, stop)
  except (strategy_lib.StrategyError, config_lib.ConfigError) as e:
    heartbeat.stop()
    console.say(f'train.py: configuration error: {e}', error=True)
    return EXIT_CONFIGURATION
  handle_stop_signals(stop)
  learner.heartbeat = heartbeat
  reason = learner.run()
  heartbeat.stop()
  learner.writer.close()
  sys.stdout.flush()
  sys.stderr.flush()
  # Everything is saved. Skip interpreter teardown: destroying Reverb dataset iterators waits for their
  # in-flight samples (up to learner.DATA_TIMEOUT_MS) once the actors stop feeding the queue.
  code = EXIT_NONFINITE if learner.stopped_by_nonfinite(reason) else EXIT_OK
  os._exit(code)  # pylint: disable=protected-access


def run_evaluator(config: config_lib.Config) -> int:
  """Evaluates each new export until SIGTERM/SIGINT (spiral_tf/distributed/evaluator.py)."""
  evaluator_lib.watch(config, stop_event())
  return EXIT_OK


def run_discriminator(config: config_lib.Config) -> int:
  """A population's shared D until SIGTERM/SIGINT (spiral_tf/distributed/shared_discriminator.py)."""
  stop = stop_event()
  try:
    shared = shared_discriminator.SharedDiscriminator(config, stop)
  except config_lib.ConfigError as e:
    console.say(f'train.py: configuration error: {e}', error=True)
    return EXIT_CONFIGURATION
  shared.run()
  return EXIT_OK


def run(role: str, config: config_lib.Config, task: int = 0) -> int:
  # Grappler's remapper logs spurious errors about the residual blocks' fused adds; the graphs run fine.
  tf.config.optimizer.set_experimental_options({'remapping': False})
  if role == 'reverb':
    return run_reverb(config)
  if role == 'actor':
    return run_actor(config, task)
  if role == 'learner':
    return run_learner(config)
  if role == 'evaluator':
    return run_evaluator(config)
  if role == 'discriminator':
    return run_discriminator(config)
  raise ValueError(f'unknown role {role!r}')
