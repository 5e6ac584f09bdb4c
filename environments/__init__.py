"""Renderers as dm_env.Environments: the libmypaint painter and MuJoCo scenes.

They know nothing about agents or discriminators: their reward is always 0.
"""
