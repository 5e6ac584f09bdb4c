"""One learner update and its parts: rewards, their normalisation, V-trace, the losses, the strategy.

  learner_step.py   the compiled update of policy, critic and D from a batch of episodes
  rewards.py        per-step rewards from D's scores, canvases and targets
  normalisation.py  running statistics that give the policy rewards of unit scale
  vtrace.py         V-trace targets and advantages (IMPALA)
  losses.py         the actor-critic losses over one stored episode
  nonfinite.py      undoes an update whose metrics or weights came out NaN/Inf
  strategy.py       the tf.distribute strategy of `--strategy`

No process logic here: the learner process around the update is spiral_tf/distributed/learner.py.

Usage:
  from spiral_tf.learning import learner_step
"""
