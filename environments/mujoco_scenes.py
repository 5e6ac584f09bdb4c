"""SPIRAL's 3-D scenes: place up to 19 primitives on a floor and render them with MuJoCo (dm_env).

Usage:

  env = MujocoScenes(episode_length=20, image_width=64)
  timestep = env.reset()                      # FIRST, empty floor
  while not timestep.last():                  # episode_length 20 -> 19 actions
    action = {k: rng.integers(s.num_values) for k, s in env.action_spec().items()}
    timestep = env.step(action)
  image = timestep.observation['canvas']      # float32 [64, 64, 3] in [0, 1]
  env.objects                                 # the scene: [SceneObject(type, location, ...), ...]
  big = replay(env.program, image_width=256)  # the same scene at 256 x 256

Actions (one DiscreteArray each, in this order):
  type            4: sphere, box (a cube), cylinder (an upright can), capsule (lying along x)
  location        256: the cell (row, col) = unravel(index, (16, 16)) of a 16 x 16 grid covering
                  the floor square [-1, 1]^2 (metres); row 0 is the far edge (top of the image),
                  col 0 the left edge. The object stands on the floor at the cell's centre.
  size            3: SIZES metres (sphere radius; the other shapes scale with it)
  red/green/blue  4 each: COLOR_VALUES = linspace(0, 1, 4)
  mode            3: 0 = add a new object, 1 = skip (change nothing), 2 = modify the last object
                  added (replace its type, location, size and colour). Modify before any add
                  changes nothing.

action_mask (float32 scalars, the observation's description of the PREVIOUS action, by analogy
with the painter's move/paint): all ones at FIRST and after an add or a modify that changed the
scene; only `mode` is one after a skip or a modify with no object to modify (the other sub-actions
had no effect).

Episodes follow the painter (environments/libmypaint.py): reset() returns FIRST with
episode_step 1; each action adds 1 and LAST arrives when episode_step reaches episode_length (so
20 gives 19 actions); step() after LAST (or before any reset) resets. The reward is always 0.

The scene is a fixed MJCF model: a floor, two fixed lights, a fixed camera looking down at the
floor from the near side at 55 degrees, and one pre-allocated geom slot per possible object
(episode_length - 1). A step edits its slot's type, size, position and colour in the compiled
mjModel arrays and renders; nothing is recompiled. Unused slots sit in a geom group the renderer
does not draw. `scene_xml(objects)` writes the same scene as MJCF with the objects as ordinary
geoms; compiling it renders the same pixels (tests) and is the slower path the benchmark measures.

Rendering is Mesa's software rasteriser behind EGL, so cost follows pixels and triangles: shadows
and reflections are off (MuJoCo's default 4096^2 shadow map made a 64^2 render ~26 ms, not ~0.5),
the lights have no specular part, and the primitives are tessellated coarsely (12 slices, 6 stacks,
one quad per box face: ~0.04 ms per object instead of ~0.2, with no visible facets even at 256^2).
4x multisampling stays on for clean object edges.

Headless rendering uses EGL: MUJOCO_GL is set to 'egl' when unset, before mujoco is imported
(so import this module before anything else imports mujoco). A missing GL stack raises an error
naming the Debian packages to install: ImportError when mujoco cannot load its GL backend at
import, RuntimeError when no offscreen context can be created.
"""

import collections
import os
import sys

# mujoco picks its OpenGL backend when first imported: set EGL (headless, no display) before.
_IMPORTED_BEFORE_SETTING_GL = 'mujoco' in sys.modules and 'MUJOCO_GL' not in os.environ
os.environ.setdefault('MUJOCO_GL', 'egl')
# pylint: disable=g-import-not-at-top,wrong-import-position
from dm_env import specs
import numpy as np

from environments import canvas

_GL_PACKAGES = 'libegl1 libegl-mesa0 libgl1-mesa-dri'


def _gl_error(what, error):
  early = (
      ' mujoco had been imported before environments.mujoco_scenes, with MUJOCO_GL unset, so '
      'it chose its default (GLFW, which needs a display); import this module first or set '
      'MUJOCO_GL=egl.'
      if _IMPORTED_BEFORE_SETTING_GL
      else ''
  )
  return (
      f'{what} (MUJOCO_GL={os.environ.get("MUJOCO_GL")!r}): {type(error).__name__}: {error}.'
      f'{early} '
      f'Headless rendering needs EGL: install the Debian packages {_GL_PACKAGES} (apt-get '
      f'install {_GL_PACKAGES}) and leave MUJOCO_GL unset or set it to egl before mujoco is '
      f'imported.'
  )


try:
  import mujoco  # loads the OpenGL backend that MUJOCO_GL names
except Exception as e:  # pylint: disable=broad-except  # PyOpenGL fails with many types
  raise ImportError(_gl_error('mujoco failed to load its OpenGL backend', e)) from e

ACTION_KEYS = ('type', 'location', 'size', 'red', 'green', 'blue', 'mode')
TYPE_NAMES = ('sphere', 'box', 'cylinder', 'capsule')
GRID_WIDTH = 16
FLOOR_HALF_WIDTH = 1.0  # the grid covers [-1, 1]^2 metres
SIZES = (0.08, 0.12, 0.17)  # metres: sphere radius; a grid cell is 0.125 wide
COLOR_VALUES = np.linspace(0.0, 1.0, 4)
ADD, SKIP, MODIFY = 0, 1, 2
MODE_NAMES = ('add', 'skip', 'modify')
NUM_VALUES = {
    'type': len(TYPE_NAMES),
    'location': GRID_WIDTH * GRID_WIDTH,
    'size': len(SIZES),
    'red': len(COLOR_VALUES),
    'green': len(COLOR_VALUES),
    'blue': len(COLOR_VALUES),
    'mode': len(MODE_NAMES),
}

# Camera: 4.5 m from the floor's centre on the near side (negative y), 55 degrees above the
# floor; with a 30 degree field of view the whole grid, and the tallest object on its far row,
# fill the frame with a pixel or two to spare (the grid spans ~52-60 of 64 pixels).
CAMERA_POS = (0.0, -2.581, 3.686)
CAMERA_TARGET = (0.0, 0.0, 0.0)
CAMERA_FOVY = 30.0
FLOOR_RGB = (0.62, 0.6, 0.55)
_HIDDEN_GROUP = 3  # geom group of unused slots; the renderer's scene option turns it off
_GEOM_TYPES = (
    mujoco.mjtGeom.mjGEOM_SPHERE,
    mujoco.mjtGeom.mjGEOM_BOX,
    mujoco.mjtGeom.mjGEOM_CYLINDER,
    mujoco.mjtGeom.mjGEOM_CAPSULE,
)


class SceneObject(collections.namedtuple('SceneObject', 'type location size red green blue')):
  """One object as action indices: type, location (grid cell), size and colour bins."""


def cell_center(location):
  """Floor coordinates (x, y) in metres of grid cell `location` (row-major, row 0 far)."""
  row, col = divmod(int(location), GRID_WIDTH)
  cell = 2.0 * FLOOR_HALF_WIDTH / GRID_WIDTH
  return (-FLOOR_HALF_WIDTH + (col + 0.5) * cell, FLOOR_HALF_WIDTH - (row + 0.5) * cell)


def geom_size(type_index, size_index):
  """Returns (mujoco size triple, height of the centre above the floor) for a primitive."""
  s = SIZES[size_index]
  name = TYPE_NAMES[type_index]
  if name == 'sphere':
    return (s, 0.0, 0.0), s
  if name == 'box':  # a cube a little smaller than the sphere's bounding box
    h = 0.85 * s
    return (h, h, h), h
  if name == 'cylinder':  # an upright can, taller than wide
    return (0.75 * s, 1.1 * s, 0.0), 1.1 * s
  radius, half_length = 0.55 * s, s  # capsule: lying along x, long and low
  return (radius, half_length, 0.0), radius


def geom_quat(type_index):
  """Orientation (w, x, y, z): the capsule lies on the floor along x; the rest stand upright."""
  if TYPE_NAMES[type_index] == 'capsule':
    return (np.sqrt(0.5), 0.0, np.sqrt(0.5), 0.0)  # 90 degrees about y: local z -> world x
  return (1.0, 0.0, 0.0, 0.0)


def object_rgba(obj):
  return (COLOR_VALUES[obj.red], COLOR_VALUES[obj.green], COLOR_VALUES[obj.blue], 1.0)


def _camera_xyaxes():
  """MJCF xyaxes of a camera at CAMERA_POS looking at CAMERA_TARGET with a horizontal x axis."""
  forward = np.subtract(CAMERA_TARGET, CAMERA_POS)
  forward /= np.linalg.norm(forward)
  x_axis = np.cross(forward, (0.0, 0.0, 1.0))
  x_axis /= np.linalg.norm(x_axis)
  y_axis = np.cross(x_axis, forward)
  return np.concatenate([x_axis, y_axis])


def _fmt(values):
  return ' '.join(f'{float(v):.9g}' for v in values)


def _object_geom_xml(name, obj, group=0):
  size, z = geom_size(obj.type, obj.size)
  x, y = cell_center(obj.location)
  return (
      f'<geom name="{name}" type="{TYPE_NAMES[obj.type]}" size="{_fmt(size)}" '
      f'pos="{_fmt((x, y, z))}" quat="{_fmt(geom_quat(obj.type))}" '
      f'rgba="{_fmt(object_rgba(obj))}" group="{group}"/>'
  )


def scene_xml(objects=(), image_width=64, num_slots=0):
  """MJCF of the scene with `objects` as geoms plus `num_slots` hidden, editable geom slots.

  The statistic (extent, centre) is fixed so that the clipping planes, and therefore the pixels,
  do not depend on which objects the model holds.
  """
  geoms = [_object_geom_xml(f'object_{i}', SceneObject(*obj)) for i, obj in enumerate(objects)]
  hidden = SceneObject(0, 0, 0, 0, 0, 0)
  geoms += [_object_geom_xml(f'slot_{i}', hidden, group=_HIDDEN_GROUP) for i in range(num_slots)]
  geoms_text = '\n'.join('    ' + g for g in geoms)
  offscreen = max(int(image_width), 64)
  return f"""<mujoco model="spiral_scenes">
  <statistic extent="3" center="0 0 0.2"/>
  <visual>
    <global offwidth="{offscreen}" offheight="{offscreen}"/>
    <quality shadowsize="0" offsamples="4" numslices="12" numstacks="6" numquads="1"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.25 0.25 0.25" specular="0 0 0"/>
    <rgba haze="0 0 0 1"/>
  </visual>
  <default><geom contype="0" conaffinity="0"/></default>
  <worldbody>
    <light name="key" directional="true" pos="1 -1 3" dir="-0.3 0.4 -1" diffuse="0.55 0.55 0.55"
           specular="0 0 0" castshadow="false"/>
    <light name="fill" directional="true" pos="-1 -1 3" dir="0.4 0.3 -1" diffuse="0.2 0.2 0.2"
           specular="0 0 0" castshadow="false"/>
    <geom name="floor" type="plane" size="6 6 0.1" rgba="{_fmt(FLOOR_RGB + (1.0,))}"/>
    <camera name="view" pos="{_fmt(CAMERA_POS)}" xyaxes="{_fmt(_camera_xyaxes())}"
            fovy="{CAMERA_FOVY}"/>
{geoms_text}
  </worldbody>
</mujoco>
"""


def _make_renderer(model, image_width):
  try:
    return mujoco.Renderer(model, image_width, image_width)
  except Exception as e:  # pylint: disable=broad-except  # GL failures surface as many types
    raise RuntimeError(_gl_error('MuJoCo could not create an offscreen OpenGL context', e)) from e


class SceneRenderer:
  """The compiled scene with editable object slots and an offscreen renderer.

  Usage:
    renderer = SceneRenderer(num_slots=5, image_width=64)
    renderer.set_slot(0, SceneObject(type=0, location=17, size=1, red=3, green=0, blue=0))
    image = renderer.render()   # uint8 [64, 64, 3]
    renderer.clear()            # hide every slot
  """

  def __init__(self, num_slots, image_width=64):
    if not isinstance(image_width, (int, np.integer)) or image_width < 1:
      raise ValueError(f'image_width must be a positive integer, got {image_width!r}')
    self.num_slots = int(num_slots)
    self.image_width = int(image_width)
    self.model = mujoco.MjModel.from_xml_string(scene_xml((), image_width, self.num_slots))
    self.data = mujoco.MjData(self.model)
    first = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, 'slot_0')
    self._slot_ids = list(range(first, first + self.num_slots))
    self._rotations = []
    for type_index in range(len(TYPE_NAMES)):
      rotation = np.zeros(9)
      mujoco.mju_quat2Mat(rotation, np.array(geom_quat(type_index)))
      self._rotations.append(rotation)
    self._option = mujoco.MjvOption()
    self._option.geomgroup[_HIDDEN_GROUP] = 0
    self._renderer = _make_renderer(self.model, self.image_width)
    mujoco.mj_forward(self.model, self.data)  # world poses of geoms, camera and lights

  def set_slot(self, slot, obj):
    """Shows `obj` (a SceneObject of valid indices) in slot `slot`."""
    g = self._slot_ids[slot]
    model, data = self.model, self.data
    size, z = geom_size(obj.type, obj.size)
    x, y = cell_center(obj.location)
    model.geom_type[g] = _GEOM_TYPES[obj.type]
    model.geom_size[g] = size
    # A static world geom's world pose is its model pose; writing both saves a
    # forward-kinematics call per step.
    model.geom_pos[g] = data.geom_xpos[g] = (x, y, z)
    model.geom_quat[g] = geom_quat(obj.type)
    data.geom_xmat[g] = self._rotations[obj.type]
    model.geom_rbound[g] = _bounding_radius(obj.type, size)
    model.geom_rgba[g] = object_rgba(obj)
    model.geom_group[g] = 0

  def hide_slot(self, slot):
    self.model.geom_group[self._slot_ids[slot]] = _HIDDEN_GROUP

  def clear(self):
    self.model.geom_group[self._slot_ids] = _HIDDEN_GROUP

  def render(self):
    """Returns the current scene as uint8 [W, W, 3]."""
    self._renderer.update_scene(self.data, camera='view', scene_option=self._option)
    return self._renderer.render()

  def close(self):
    if self._renderer is not None:
      self._renderer.close()
      self._renderer = None

  def __enter__(self):
    return self

  def __exit__(self, *unused_exc_info):
    self.close()


def _bounding_radius(type_index, size):
  name = TYPE_NAMES[type_index]
  if name == 'sphere':
    return size[0]
  if name == 'box':
    return float(np.linalg.norm(size))
  if name == 'cylinder':
    return float(np.hypot(size[0], size[1]))
  return size[0] + size[1]


def action_spec():
  """The action spec of MujocoScenes (the same for every setting)."""
  return collections.OrderedDict(
      (k, specs.DiscreteArray(NUM_VALUES[k], dtype=np.int32, name=k)) for k in ACTION_KEYS
  )


def specs_of(episode_length=20, image_width=64, seed=None):
  """(action spec, observation spec) of `MujocoScenes(**settings)`, without building one (no MuJoCo GL)."""
  del episode_length, seed  # The specs do not depend on them.
  width = int(image_width)
  return action_spec(), canvas.observation_spec((width, width, 3), ACTION_KEYS)


class MujocoScenes(canvas.CanvasEnvironment):
  """Objects on a floor rendered by MuJoCo, SPIRAL's 3-D action space; episodes as CanvasEnvironment."""

  def __init__(self, episode_length=20, image_width=64, seed=None):
    if not isinstance(image_width, (int, np.integer)) or image_width < 1:
      raise ValueError(f'image_width must be a positive integer, got {image_width!r}')
    self._image_width = int(image_width)
    self._seed = seed  # Accepted for uniformity; rendering is deterministic.
    super().__init__(episode_length, action_spec(), (self._image_width, self._image_width, 3))
    self._renderer = SceneRenderer(self._episode_length - 1, self._image_width)
    self._no_effect_mask = self._mask_of(('mode',))
    self.objects = []

  # --- canvas.CanvasEnvironment --------------------------------------------------------------

  def _start_episode(self):
    self._renderer.clear()
    self.objects = []
    self._frame = self._renderer.render()

  def _act(self, action):
    mode = action['mode']
    changed = mode == ADD or (mode == MODIFY and self.objects)
    if changed:
      obj = SceneObject(
          action['type'], action['location'], action['size'], action['red'], action['green'], action['blue']
      )
      if mode == ADD:
        self.objects.append(obj)
      else:
        self.objects[-1] = obj
      self._renderer.set_slot(len(self.objects) - 1, obj)
      self._frame = self._renderer.render()  # a skip leaves the picture as it was: no render
    return self._full_mask if changed else self._no_effect_mask

  def _canvas(self):
    return np.multiply(self._frame, np.float32(1.0 / 255.0), dtype=np.float32)

  # --- dm_env.Environment ---------------------------------------------------------------------

  def close(self):
    self._renderer.close()

  # --- extras ---------------------------------------------------------------------------------

  @property
  def image_width(self):
    return self._image_width

  @property
  def renderer(self):
    """The SceneRenderer (its mjModel, mjData and camera), e.g. to project points in tests."""
    return self._renderer


def replay(program, image_width=256, episode_length=20):
  """Executes `program` (a list of action dicts, e.g. `env.program`) in a fresh scene.

  Returns:
    float32 [image_width, image_width, 3] canvas: the same scene at another resolution.
  """
  env = MujocoScenes(episode_length=max(int(episode_length), len(program) + 1), image_width=image_width)
  try:
    timestep = env.reset()
    for action in program:
      timestep = env.step(action)
    return timestep.observation['canvas']
  finally:
    env.close()
