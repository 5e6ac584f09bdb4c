"""Experience between actors and the learner: the episode record and the Reverb tables that hold it.

  trajectory.py  one whole episode as actors write it and the learner reads it
  tables.py      the Reverb tables (queue, fakes, policy_variables, d_variables) built from the specs

Usage:
  from spiral_tf.replay import tables as replay
  from spiral_tf.replay import trajectory
"""
