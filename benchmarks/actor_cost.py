r"""CPU cost of one actor frame, as `--role=actor` runs it: renderers + batched policy + Reverb writes.

Sizes a cluster (docs/full_scale.md): frames/s one core delivers = 1 / (CPU-seconds per frame). Builds the
actor of a training config exactly as the actor role does (spiral_tf/distributed/roles.py: one TensorFlow
thread, `envs_per_actor` environments in lockstep, spiral_tf/distributed/actor.py writing whole episodes),
except that targets are random images (the cost does not depend on them) and the Reverb server runs in this
process with a queue large enough never to block. For each number of environments it times whole episodes of
the untrained policy, and the same environments stepped with random actions alone (the
renderer's share). CPU time is the process's (server included); unlike wall time it hardly moves when
other jobs share the machine.

  .venv/bin/python benchmarks/actor_cost.py --flagfile=configs/celeba.cfg --envs=1,16 --episodes=2

The last printed line is one JSON object.
"""

import json
import os
import resource
import time

from absl import app
from absl import flags
import numpy as np

from spiral_tf import config as config_lib

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # Before TensorFlow loads (lazily, in measure).

config_lib.define_flags()
flags.DEFINE_list('envs', ['1', '16'], 'Environments per actor to measure (overrides --envs_per_actor).')
flags.DEFINE_integer('episodes', 2, 'Timed episodes per environment (after one warm-up episode).')
FLAGS = flags.FLAGS


def _timed(fn):
  wall, cpu = time.perf_counter(), time.process_time()
  fn()
  return time.perf_counter() - wall, time.process_time() - cpu


def _random_steps(envs, steps, rng):
  """The renderers alone: `steps` random actions per environment (resets excluded from nothing)."""
  spec = envs[0].action_spec()
  for env in envs:
    env.reset()
  for _ in range(steps):
    for env in envs:
      timestep = env.step({k: int(rng.integers(s.num_values)) for k, s in spec.items()})
      if timestep.last():
        env.reset()


def measure(config, k, episodes, rng):
  # TensorFlow (reverb and components load it) only once TF_CPP_MIN_LOG_LEVEL, set below the top-level
  # imports, is in the environment.
  import reverb
  import tensorflow as tf

  # These load TensorFlow too.
  from spiral_tf import components
  from spiral_tf.distributed import actor as actor_lib
  from spiral_tf.replay import tables as replay

  shape = (256, config.canvas_width, config.canvas_width, config.channels)
  targets = rng.integers(0, 256, size=shape, dtype=np.uint8)
  envs = [components.make_environment(config, seed=i, images=targets) for i in range(k)]
  agent = components.make_agent(config)
  discriminator = components.make_discriminator(config)
  trajectory_spec, fake_spec = components.specs(config)
  tables = replay.make_tables(
      trajectory_spec,
      fake_spec,
      agent.variables,
      discriminator.variables,
      queue_size=k * (episodes + 1) + 1,
      fakes_size=max(config.effective_fakes_replay_size, k),
  )
  server = reverb.Server(tables, port=None)
  try:
    client = reverb.Client(f'localhost:{server.port}')
    actor = actor_lib.Actor(
        envs, agent, client, None, conditional=config.conditional, episode_length=config.episode_length
    )
    actor.run(num_episodes=1, log_every_s=1e9)  # Warm-up: traces the policy, opens the writer.
    wall, cpu = _timed(lambda: actor.run(num_episodes=episodes, log_every_s=1e9))
    queued = client.server_info()[replay.QUEUE].current_size
  finally:
    server.stop()
  frames = k * episodes * config.frames_per_episode
  env_wall, env_cpu = _timed(lambda: _random_steps(envs, episodes * config.frames_per_episode, rng))
  del tf
  return {
      'envs_per_actor': k,
      'frames': frames,
      'episodes_in_queue': queued,
      'actor_frames_per_s': frames / wall,
      'actor_cpu_ms_per_frame': 1e3 * cpu / frames,
      'renderer_cpu_ms_per_frame': 1e3 * env_cpu / frames,
      'renderer_frames_per_s': frames / env_wall,
      'frames_per_cpu_second': frames / cpu,
  }


def main(argv):
  del argv
  # Lazy for the same reason as in measure: TF_CPP_MIN_LOG_LEVEL is set after the top-level imports.
  import tensorflow as tf
  # As the actor role: one thread each (an actor is sized to one core).
  tf.config.threading.set_intra_op_parallelism_threads(1)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  tf.config.optimizer.set_experimental_options({'remapping': False})
  config = config_lib.from_flags(FLAGS)
  rng = np.random.default_rng(0)
  load = os.getloadavg()[0]
  print(
      f'{config.environment}, {config.network_size} network, episode_length {config.episode_length}, '
      f'{config.channels} channel(s), conditional={config.conditional}; load average {load:.2f}',
      flush=True,
  )
  results = {
      'environment': config.environment,
      'network_size': config.network_size,
      'episode_length': config.episode_length,
      'load_average_start': load,
      'actors': [],
  }
  for k in [int(x) for x in FLAGS.envs]:
    entry = measure(config, k, FLAGS.episodes, rng)
    results['actors'].append(entry)
    print(
        f'  {k:3d} envs/actor: {entry["actor_frames_per_s"]:7.1f} frames/s wall, '
        f'{entry["actor_cpu_ms_per_frame"]:7.2f} CPU-ms/frame ({entry["frames_per_cpu_second"]:6.1f} '
        f'frames per CPU-second); renderer alone {entry["renderer_cpu_ms_per_frame"]:.3f} CPU-ms/frame',
        flush=True,
    )
  # Peak resident memory of this process (one actor + its in-process server): what a core's actor costs in
  # RAM.
  results['max_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  results['load_average_end'] = os.getloadavg()[0]
  print(f'peak resident memory {results["max_rss_mb"]:.0f} MB', flush=True)
  print(json.dumps(results))


if __name__ == '__main__':
  app.run(main)
