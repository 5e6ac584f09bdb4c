"""Throughput of the MuJoCo scenes environment at 64² (one process) and of rebuilding from XML.

Usage:
  .venv/bin/python benchmarks/scenes_throughput.py [--steps 2000] [--repeats 5]

Measured (medians over --repeats; actions drawn before the clock starts):
  steps_per_s      uniformly random actions (a third are skips, which do not render); the step
                   after LAST is the reset dm_env asks for and counts as a step
  add_steps_per_s  every action adds an object (every step renders)
  render_ms        SceneRenderer.render() alone (update_scene + render + read-back) at 64², a
                   scene of 5 objects (the dataset's largest)
  render_in_add_step_ms  time inside render() per add step, same runs (scenes of 0-19 objects)
  render_256_ms    the same at 256² (program replay)
  reset_ms         reset() after a full episode (hide the slots, render the empty floor)
  xml_rebuild_step_ms  the alternative to editing slots in place: per add step, write the scene's
                   MJCF, compile it, make mjData, mj_forward, a new Renderer (GL context), render
  xml_compile_ms   of which compiling the MJCF alone
  xml_rebuild_shared_gl_step_ms  the cheapest rebuild: one GL context kept for the whole run,
                   per add step compile, mjData, forward, a new MjrContext (uploads the model's
                   meshes), render; checked to give the environment's pixels
The last printed line is one JSON object.
"""

import argparse
import json
import statistics
import time

import numpy as np

from environments import mujoco_scenes  # pylint: disable=g-bad-import-order  # selects EGL first
from environments.mujoco_scenes import MujocoScenes
from environments.mujoco_scenes import SceneObject

mujoco = mujoco_scenes.mujoco


def _actions(env, rng, n, mode=None):
  spec = env.action_spec()
  columns = {k: rng.integers(s.num_values, size=n).tolist() for k, s in spec.items()}
  if mode is not None:
    columns['mode'] = [mode] * n
  return [{k: columns[k][i] for k in spec} for i in range(n)]


def _steps_per_second(env, rng, steps, repeats, mode):
  rates = []
  for _ in range(repeats):
    actions = _actions(env, rng, steps, mode)
    env.reset()
    start = time.perf_counter()
    for action in actions:
      env.step(action)
    rates.append(steps / (time.perf_counter() - start))
  return statistics.median(rates)


def _add_steps(env, rng, steps, repeats):
  """(steps/s, ms per step inside SceneRenderer.render) when every action adds an object."""
  renderer = env.renderer
  inner, spent = renderer.render, [0.0]

  def timed_render():
    start = time.perf_counter()
    image = inner()
    spent[0] += time.perf_counter() - start
    return image

  renderer.render = timed_render  # instance attribute shadows the method for this measurement
  rates, render_ms = [], []
  try:
    for _ in range(repeats):
      actions = _actions(env, rng, steps, mujoco_scenes.ADD)
      env.reset()
      spent[0] = 0.0
      start = time.perf_counter()
      for action in actions:
        env.step(action)
      rates.append(steps / (time.perf_counter() - start))
      render_ms.append(1e3 * spent[0] / steps)
  finally:
    del renderer.render
  return statistics.median(rates), statistics.median(render_ms)


def _random_objects(rng, n):
  return [
      SceneObject(*(int(rng.integers(mujoco_scenes.NUM_VALUES[k])) for k in SceneObject._fields))
      for _ in range(n)
  ]


def _render_ms(rng, width, repeats, renders=500):
  renderer = mujoco_scenes.SceneRenderer(5, width)
  for slot, obj in enumerate(_random_objects(rng, 5)):
    renderer.set_slot(slot, obj)
  renderer.render()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(renders):
      renderer.render()
    times.append(1e3 * (time.perf_counter() - start) / renders)
  renderer.close()
  return statistics.median(times)


def _reset_ms(env, rng, repeats):
  times = []
  for _ in range(repeats):
    timestep = env.reset()
    for action in _actions(env, rng, 19, mujoco_scenes.ADD):
      timestep = env.step(action)
    assert timestep.last()
    start = time.perf_counter()
    env.reset()
    times.append(1e3 * (time.perf_counter() - start))
  return statistics.median(times)


def _xml_rebuild_ms(rng, episodes, width=64):
  """Per add step: MJCF -> compile -> mjData -> forward -> new Renderer -> render."""
  step_times, compile_times = [], []
  for _ in range(episodes):
    objects = []
    for obj in _random_objects(rng, 19):
      objects.append(obj)
      start = time.perf_counter()
      model = mujoco.MjModel.from_xml_string(mujoco_scenes.scene_xml(objects, width))
      compile_times.append(time.perf_counter() - start)
      data = mujoco.MjData(model)
      mujoco.mj_forward(model, data)
      renderer = mujoco.Renderer(model, width, width)
      renderer.update_scene(data, camera='view')
      renderer.render()
      renderer.close()
      step_times.append(time.perf_counter() - start)
  return 1e3 * statistics.median(step_times), 1e3 * statistics.median(compile_times)


def _xml_rebuild_shared_gl_ms(rng, episodes, width=64):
  """The cheapest rebuild: one GL context for all; per step compile, new MjrContext, render."""
  gl_context = mujoco.GLContext(width, width)
  gl_context.make_current()
  rect = mujoco.MjrRect(0, 0, width, width)
  option, camera = mujoco.MjvOption(), mujoco.MjvCamera()
  camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
  image = np.empty((width, width, 3), np.uint8)
  step_times = []
  try:
    for _ in range(episodes):
      objects = []
      for obj in _random_objects(rng, 19):
        objects.append(obj)
        start = time.perf_counter()
        model = mujoco.MjModel.from_xml_string(mujoco_scenes.scene_xml(objects, width))
        data = mujoco.MjData(model)
        mujoco.mj_forward(model, data)
        camera.fixedcamid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, 'view')
        scene = mujoco.MjvScene(model, maxgeom=100)
        context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, context)
        mujoco.mjv_updateScene(model, data, option, None, camera, mujoco.mjtCatBit.mjCAT_ALL, scene)
        mujoco.mjr_render(rect, scene, context)
        mujoco.mjr_readPixels(image, None, rect, context)
        context.free()
        step_times.append(time.perf_counter() - start)
    # The same pixels as the environment's path (MuJoCo's buffer is bottom-up).
    with mujoco_scenes.SceneRenderer(len(objects), width) as renderer:
      for slot, obj in enumerate(objects):
        renderer.set_slot(slot, obj)
      assert np.array_equal(np.flipud(image), renderer.render())
  finally:
    gl_context.free()
  return 1e3 * statistics.median(step_times)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--steps', type=int, default=2000)
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument(
      '--rebuild_episodes',
      type=int,
      default=3,
      help='episodes of 19 add steps timed with the XML-rebuild path',
  )
  args = parser.parse_args()
  for name in ('steps', 'repeats', 'rebuild_episodes'):
    if getattr(args, name) < 1:
      parser.error(f'--{name} must be >= 1, got {getattr(args, name)}')

  rng = np.random.default_rng(0)
  env = MujocoScenes(episode_length=20, image_width=64)
  env.reset()
  _steps_per_second(env, rng, 200, 1, None)  # warm-up: GL context, first draws
  random_rate = _steps_per_second(env, rng, args.steps, args.repeats, None)
  add_rate, render_in_step_ms = _add_steps(env, rng, args.steps, args.repeats)
  skip_rate = _steps_per_second(env, rng, args.steps, args.repeats, mujoco_scenes.SKIP)
  reset_ms = _reset_ms(env, rng, max(args.repeats, 20))
  env.close()
  render_ms = _render_ms(rng, 64, args.repeats)
  render_256_ms = _render_ms(rng, 256, args.repeats, renders=100)
  rebuild_ms, compile_ms = _xml_rebuild_ms(rng, args.rebuild_episodes)
  rebuild_shared_ms = _xml_rebuild_shared_gl_ms(rng, args.rebuild_episodes)
  add_step_ms = 1e3 / add_rate

  print(f'random actions        {random_rate:10,.0f} steps/s')
  print(f'add every step        {add_rate:10,.0f} steps/s  ({add_step_ms:.3f} ms/step)')
  print(f'skip every step       {skip_rate:10,.0f} steps/s')
  print(f'render 64²            {render_ms:10.3f} ms  ({1e3 / render_ms:,.0f} renders/s)')
  print(f'render 256²           {render_256_ms:10.3f} ms')
  print(f'reset                 {reset_ms:10.3f} ms')
  print(
      f'render in an add step {render_in_step_ms:10.3f} ms  (scenes of 0-19 objects); the rest, '
      f'{add_step_ms - render_in_step_ms:.3f} ms, is validation, slot edit, float conversion, '
      f'dm_env'
  )
  print(
      f'XML rebuild per step  {rebuild_ms:10.3f} ms  (compile alone {compile_ms:.3f} ms): '
      f'{rebuild_ms / add_step_ms:.1f}x an in-place add step'
  )
  print(
      f'  same, one GL context  {rebuild_shared_ms:10.3f} ms: '
      f'{rebuild_shared_ms / add_step_ms:.1f}x an in-place add step'
  )
  print(
      json.dumps(
          {
              'steps_per_s': round(random_rate, 1),
              'add_steps_per_s': round(add_rate, 1),
              'skip_steps_per_s': round(skip_rate, 1),
              'render_ms': round(render_ms, 4),
              'renders_per_s': round(1e3 / render_ms, 1),
              'render_256_ms': round(render_256_ms, 4),
              'reset_ms': round(reset_ms, 4),
              'add_step_ms': round(add_step_ms, 4),
              'render_in_add_step_ms': round(render_in_step_ms, 4),
              'xml_rebuild_step_ms': round(rebuild_ms, 4),
              'xml_compile_ms': round(compile_ms, 4),
              'xml_rebuild_shared_gl_step_ms': round(rebuild_shared_ms, 4),
          }
      )
  )


if __name__ == '__main__':
  main()
