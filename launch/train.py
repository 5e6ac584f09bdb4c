r"""Trains a SPIRAL agent: renderer actors → Reverb → learner (policy, critic, discriminator).

One machine (the default, `--role=all`): starts a Reverb server, the learner and `--num_actors` actors as
supervised subprocesses, restarts dead actors, and stops cleanly on Ctrl-C / SIGTERM after a final
checkpoint. Stops at `--max_frames`, `--max_learner_steps` or `--max_minutes`; runs resume from `--root_dir`.

  python launch/train.py --flagfile=configs/strokes.cfg
  python launch/train.py --flagfile=configs/celeba.cfg --data_dir=/data --root_dir=runs/celeba

A cluster runs one role per host, all with the same flags and one `--reverb_address`; the server listens
on loopback unless `--reverb_bind_address` says otherwise (see README, Operations):

  hostA$ python launch/train.py --flagfile=F --role=reverb --reverb_port=8000 --reverb_bind_address=10.0.0.1
  hostB$ python launch/train.py --flagfile=F --role=learner --reverb_address=10.0.0.1:8000
  hostC$ python launch/train.py --flagfile=F --role=actor --task=0 --reverb_address=10.0.0.1:8000
"""
import os
import sys

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# TensorFlow's C++ info and warning lines (grappler, oneDNN, CUDA probing) drown the progress lines.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from spiral_tf import config as config_lib  # pylint: disable=g-import-not-at-top

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
  if role == 'all':
    from spiral_tf import supervisor  # pylint: disable=g-import-not-at-top
    return supervisor.Supervisor(os.path.abspath(__file__), sys.argv[1:], config).run()
  if role in ('learner', 'actor') and not config.reverb_address:  # The evaluator reads exports only.
    print(f'train.py: --role={role} needs --reverb_address=host:port', file=sys.stderr)
    return 2
  # TensorFlow is imported only from here on, in the process of one role.
  from spiral_tf import roles  # pylint: disable=g-import-not-at-top
  return roles.run(role, config, task=FLAGS.task)


if __name__ == '__main__':
  app.run(main)
