"""The networks: the agent (policy and critic, `agent.py`) and the discriminator D (`discriminator.py`).

They depend on the run's settings (spiral_tf/config.py) and the environment's specs only; the learning
package trains them, every process builds them through spiral_tf/components.py.

Usage:
  from spiral_tf.networks import agent as agent_lib
  agent = agent_lib.Agent(action_spec, observation_spec, size='tiny')
"""
