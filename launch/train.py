r"""Trains a SPIRAL agent: renderer actors → Reverb → learner (policy, critic, discriminator).

One machine (the default, `--role=all`): starts a Reverb server, the learner and actors as supervised
subprocesses — the run's `--num_actors` × `--envs_per_actor` environments packed into as many actor
processes as this host's cores and memory hold (or `--local_actors`; the plan is printed first) —
restarts dead actors, and stops cleanly on Ctrl-C / SIGTERM after a final checkpoint. The console shows
the plan and the learner's progress; every role's full output is in `root_dir/logs/` (`--verbosity` shows
the learner's unfiltered). Stops at `--max_frames`, `--max_learner_steps` or `--max_minutes`; runs resume
from `--root_dir`.

  python launch/train.py --flagfile=configs/strokes.cfg
  python launch/train.py --flagfile=configs/celeba.cfg --data_dir=/data --root_dir=runs/celeba

A cluster runs one role per host, all with the same flags and one `--reverb_address`; the server listens
on loopback unless `--reverb_bind_address` says otherwise (see README, Operations):

  hostA$ python launch/train.py --flagfile=F --role=reverb --reverb_port=8000 --reverb_bind_address=10.0.0.1
  hostB$ python launch/train.py --flagfile=F --role=learner --reverb_address=10.0.0.1:8000
  hostC$ python launch/train.py --flagfile=F --role=actor --task=0 --reverb_address=10.0.0.1:8000

A population (`--population_size=N`, one machine): N such runs under `root_dir/members/<i>/`, with PBT over
the policy learning rate and entropy cost every `--pbt_interval_steps` (spiral_tf/population/):

  python launch/train.py --flagfile=configs/reproductions/mnist_d.cfg --population_size=4 \
      --pbt_interval_steps=500 --root_dir=runs/mnist_d_population

Across hosts sharing --root_dir (a shared file system): each host runs its members, one host leads (it
decides the PBT rounds and runs the shared D):

  hostA$ python launch/train.py --flagfile=F --population_size=4 --root_dir=/shared/pop \
             --population_members=0,1 --population_lead --reverb_bind_address=10.0.0.1
  hostB$ python launch/train.py --flagfile=F --population_size=4 --root_dir=/shared/pop \
             --population_members=2,3 --reverb_bind_address=10.0.0.2
"""

import dataclasses
import os
import sys

from absl import app
from absl import flags

from spiral_tf import config as config_lib
from spiral_tf.distributed import console
from spiral_tf.distributed import placement  # TensorFlow-free, as is supervisor: --role=all never loads it.
from spiral_tf.distributed import supervisor
from spiral_tf.population import population  # TensorFlow-free too: it starts one --role=all per member.

# TensorFlow's C++ info and warning lines (grappler, oneDNN, CUDA probing) drown the progress lines;
# an explicit --verbosity sets the level instead (below), unless the environment already does.
_TF_CPP_LEVEL_GIVEN = 'TF_CPP_MIN_LOG_LEVEL' in os.environ
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # Before TensorFlow loads (lazily, in main).

config_lib.define_flags()
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  try:
    config = config_lib.from_flags(FLAGS)
  except config_lib.ConfigError as e:
    print(f'train.py: configuration error: {e}', file=sys.stderr)
    return 2
  role = FLAGS.role
  if config.population_size > 1:  # Each member is a --role=all run of its own (spiral_tf/population/).
    if role != 'all':
      print(
          'train.py: --population_size > 1 runs with --role=all (on each host of the population)',
          file=sys.stderr,
      )
      return 2
    return population.Population(os.path.abspath(__file__), sys.argv[1:], config).run()
  verbose = FLAGS['verbosity'].present  # absl's --verbosity (-v): the learner's console unfiltered.
  if verbose and not _TF_CPP_LEVEL_GIVEN:  # Inherited by the roles' processes.
    os.environ['TF_CPP_MIN_LOG_LEVEL'] = console.tf_cpp_min_log_level(FLAGS.verbosity)
  if role == 'all':
    jit, note = placement.learner_jit(
        config.jit_compile, FLAGS['jit_compile'].present, config.strategy, placement.has_accelerator()
    )
    learner_flags = () if jit == config.jit_compile else (f'--jit_compile={str(jit).lower()}',)
    try:  # How many actor processes this host holds, and whether the run fits in its memory.
      plan = placement.plan(
          placement.host_facts(),
          config.num_actors,
          config.envs_per_actor,
          placement.footprint(dataclasses.replace(config, jit_compile=jit)),
          local_actors=config.local_actors,
          evaluator=config.evaluator,
          notes=(note,) if note else (),
          learner_flags=learner_flags,
      )
    except placement.PlacementError as e:
      print(f'train.py: {e}', file=sys.stderr)
      return 2
    return supervisor.Supervisor(
        os.path.abspath(__file__), sys.argv[1:], config, plan=plan, show_all=verbose
    ).run()
  if config.shared_discriminator and config.population_size == 1 and role == 'all' and not config.reverb_port:
    # A population starts its members with the ports its discriminator role trains through.
    print(
        "train.py: --shared_discriminator is a population's (--population_size > 1): a single run has no "
        'discriminator role to train its D',
        file=sys.stderr,
    )
    return 2
  if role in ('learner', 'actor') and not config.reverb_address:  # The evaluator reads exports only.
    print(f'train.py: --role={role} needs --reverb_address=host:port', file=sys.stderr)
    return 2
  # TensorFlow is imported only from here on, in the process of one role.
  from spiral_tf.distributed import roles  # pylint: disable=g-import-not-at-top

  return roles.run(role, config, task=FLAGS.task)


if __name__ == '__main__':
  app.run(main)
