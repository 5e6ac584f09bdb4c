"""The processes of a run and what only they do.

  roles.py       every process entry point (`--role=reverb|actor|learner|evaluator`): signals, exit codes
  actor.py       steps K environments with one batched policy call, writes whole episodes to Reverb
  learner.py     the learner's loop: batches from Reverb, the update, weights back, checkpoints, exports
  evaluator.py   paints held-out targets with each new export
  summaries.py   the learner's TensorBoard scalars and progress line
  supervisor.py  `--role=all`: starts and restarts every role as a subprocess (no TensorFlow)
  placement.py   how many actor processes and environments this host holds (no TensorFlow)
  console.py     the console filter of `--role=all` (no TensorFlow)
  startup.py     the learner's first lines and heartbeat (no TensorFlow)
  listen.py      keeps the Reverb server on `--reverb_bind_address` (+ listen_shim.c, an LD_PRELOAD shim)

This file imports nothing: the supervisor imports this package and must not load TensorFlow.

Usage:
  from spiral_tf.distributed import roles
  exit_code = roles.run(role, config, task)   # 0 done, 2 configuration error, 3 non-finite updates
"""
