"""The processes of a training run: `run(role, config)` for reverb, actor, learner and evaluator.

`launch/train.py` calls this in a fresh process per role (`--role=all` starts them as subprocesses).
Every role builds its environment, agent and discriminator through `spiral_tf/components.py`, so the
Reverb signatures and weight tables agree across processes and hosts.
"""
import ipaddress
import os
import signal
import threading

import reverb
import tensorflow as tf

from spiral_tf import components
from spiral_tf import config as config_lib
from spiral_tf import listen
from spiral_tf import replay

REVERB_CHECKPOINTS = 'reverb_checkpoints'
REVERB_STOP_S = 10.0


def stop_event() -> threading.Event:
  """An event set by SIGTERM or SIGINT (the supervisor's and the user's way of saying stop)."""
  stop = threading.Event()
  for s in (signal.SIGTERM, signal.SIGINT):
    signal.signal(s, lambda signum, frame: stop.set())
  return stop


def _tables(config: config_lib.Config):
  env = components.make_environment(config, images=_placeholder_targets(config))
  agent = components.make_agent(config, env)
  discriminator = components.make_discriminator(config)
  trajectory_spec, fake_spec = components.specs(config, env, agent)
  return replay.make_tables(trajectory_spec, fake_spec, agent.variables, discriminator.variables,
                            queue_size=config.effective_queue_size, fakes_size=config.effective_fakes_replay_size)


def _placeholder_targets(config):
  """The server needs only the specs: one blank target instead of loading the dataset."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  return np.full((1, config.canvas_width, config.canvas_width, config.channels), 255, np.uint8)


def run_reverb(config: config_lib.Config) -> int:
  """Serves the tables on --reverb_bind_address:--reverb_port until SIGTERM/SIGINT.

  A restarted server starts empty (nobody writes Reverb checkpoints): the learner pushes its weights
  again and actors refill the queue; both reconnect by themselves.
  """
  bind = config.reverb_bind_address
  listen.ensure_preloaded(bind)  # May re-execute this process (spiral_tf/listen.py).
  # Port 0 must be resolved here: Reverb would pick one itself but report it as 0.
  port = listen.free_port(bind) if config.reverb_port == 0 else config.reverb_port
  stop = stop_event()
  checkpoint_dir = os.path.join(config.root_dir, REVERB_CHECKPOINTS)
  server = reverb.Server(_tables(config), port=port,
                         checkpointer=reverb.checkpointers.DefaultCheckpointer(checkpoint_dir))
  # This process listens on nothing else, so any other socket means the shim did not take effect.
  listening = listen.listening_sockets()
  if not listen.is_wildcard(bind) and listening != {(str(ipaddress.ip_address(bind)), port)}:
    server.stop()
    raise RuntimeError(f'Reverb listens on {sorted(listening)}, not only on --reverb_bind_address={bind} '
                       f'port {port}')
  where = 'every interface' if listen.is_wildcard(bind) else bind
  print(f'[reverb] serving on {where}, port {port}', flush=True)
  while not stop.wait(1.0):  # A timed wait: the signal handler always gets its turn.
    pass
  # The server holds nothing worth waiting for (a restarted one starts empty), and its gRPC shutdown
  # has been seen to hang: give it a few seconds, then leave.
  stopper = threading.Thread(target=server.stop, name='reverb-stop', daemon=True)
  stopper.start()
  stopper.join(REVERB_STOP_S)
  if stopper.is_alive():
    print(f'[reverb] the server did not stop within {REVERB_STOP_S:.0f} s; exiting anyway', flush=True)
    os._exit(0)  # pylint: disable=protected-access
  return 0


def run_actor(config: config_lib.Config, task: int) -> int:
  from spiral_tf import actor as actor_lib  # pylint: disable=g-import-not-at-top
  tf.config.threading.set_intra_op_parallelism_threads(1)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  # SIGTERM keeps its default action: an actor owns nothing worth saving (a partial episode is the only
  # loss), and a Python handler would wait behind a blocked Reverb insert.
  images = components.load_targets(config, 'train') if config.conditional else None
  k = config.envs_per_actor
  # Environment n of the run (n = first + i) is seeded by n: --role=all packs the run's environments into
  # fewer processes (spiral_tf/placement.py) and passes each its --first_env.
  first = config.first_env if config.first_env >= 0 else task * k
  envs = [components.make_environment(config, 'train', seed=config.seed * 100_003 + first + i,
                                      images=images) for i in range(k)]
  agent = components.make_agent(config, envs[0])
  replay.wait_for_server(config.reverb_address, timeout_s=600)
  weights = actor_lib.WeightPuller(config.reverb_address, agent.variables, config.weight_pull_seconds)
  actor = actor_lib.Actor(envs, agent, reverb.Client(config.reverb_address), weights,
                          conditional=config.conditional, episode_length=config.episode_length)
  print(f'[actor {task}] {k} environments (the run\'s {first}–{first + k - 1}), weights from learner step '
        f'{weights.learner_step}', flush=True)
  actor.run()
  weights.stop()
  return 0


def run(role: str, config: config_lib.Config, task: int = 0) -> int:
  # Grappler's remapper logs spurious errors about the residual blocks' fused adds; the graphs run fine.
  tf.config.optimizer.set_experimental_options({'remapping': False})
  if role == 'reverb':
    return run_reverb(config)
  if role == 'actor':
    return run_actor(config, task)
  if role == 'learner':
    from spiral_tf import learner  # pylint: disable=g-import-not-at-top
    return learner.run(config)
  if role == 'evaluator':
    from spiral_tf import evaluator  # pylint: disable=g-import-not-at-top
    return evaluator.run(config)
  raise ValueError(f'unknown role {role!r}')
