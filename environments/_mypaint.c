/* environments._mypaint: a libmypaint canvas and brush that paint one SPIRAL stroke per call.
 *
 * Usage (environments/libmypaint.py is the only intended caller):
 *
 *   painter = _mypaint.Painter(width=256, brush_json=text, white=True, channels=3, out_width=64)
 *   painter.stroke(x_s, y_s, x_c, y_c, x_e, y_e, p_s, p_e, log_radius, r, g, b, new_stroke)
 *   canvas = numpy.empty((64, 64, 3), numpy.float32); painter.read_into(canvas)
 *   painter.clear()
 *
 * Why C: a SPIRAL paint step is 50 stroke_to calls plus a canvas read-back; doing the Bezier
 * sampling, the calls and the fixed-point conversion here keeps Python to one call per step.
 *
 * Speed tricks:
 *  - Our own tiled surface (a MyPaintTiledSurface subclass) records which 64x64 tiles libmypaint
 *    writes. The float canvas is cached and only tiles written since the last read are converted;
 *    clear() only refills tiles written since the last clear.
 *  - stroke() releases the GIL while libmypaint works, so an actor's other threads (policy
 *    inference, other environments) run meanwhile. One Painter serves one thread at a time: a call
 *    while a stroke is running raises RuntimeError.
 *  - Tile requests are single-threaded (threadsafe_tile_requests = FALSE): environments run one
 *    per process and OpenMP threads would only fight the other processes for cores.
 *
 * Determinism: libmypaint 1.6 seeds each brush's RNG (used for dab jitter) with the constant 1000
 * in mypaint_brush_new and has no public way to reseed it. clear() therefore replaces a used brush
 * by a fresh copy of a template brush (parsed from the JSON once; copying its settings is ~5x
 * cheaper than re-parsing), so every episode starts from the same RNG state and its canvas is a
 * deterministic function of its strokes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mypaint-brush.h>
#include <mypaint-tiled-surface.h>

#define TILE MYPAINT_TILE_SIZE
#define TILE_VALUES (TILE * TILE * 4)
#define FIX15_ONE (1 << 15)
#define STROKE_SEGMENTS 50
#define STROKE_DTIME 0.1

/* ---- the tiled surface ------------------------------------------------------------------------ */

typedef struct {
  MyPaintTiledSurface parent; /* first: libmypaint casts MyPaintSurface* to this */
  int tiles_per_side;
  uint16_t *tiles;      /* tiles_per_side^2 tiles of premultiplied fix15 RGBA, tile-major */
  uint16_t *scratch;    /* handed out for tiles outside the canvas; its contents are discarded */
  uint8_t *touched;     /* tile written since the last clear */
  uint8_t *stale;       /* tile written since the float canvas was last refreshed */
} Surface;

static void tile_request_start(MyPaintTiledSurface *tiled, MyPaintTileRequest *request) {
  Surface *s = (Surface *)tiled;
  const int n = s->tiles_per_side;
  if (request->tx < 0 || request->ty < 0 || request->tx >= n || request->ty >= n) {
    /* Dabs near the border reach past the canvas; give them a blank tile to scribble on. */
    memset(s->scratch, 0, TILE_VALUES * sizeof(uint16_t));
    request->buffer = s->scratch;
    return;
  }
  const int index = request->ty * n + request->tx;
  request->buffer = s->tiles + (size_t)index * TILE_VALUES;
  if (!request->readonly) {
    s->touched[index] = 1;
    s->stale[index] = 1;
  }
}

static void tile_request_end(MyPaintTiledSurface *tiled, MyPaintTileRequest *request) {
  (void)tiled;
  (void)request;
}

/* ---- the Python type -------------------------------------------------------------------------- */

typedef struct {
  PyObject_HEAD
  Surface surface;
  int surface_ready;
  MyPaintBrush *brush;
  MyPaintBrush *template; /* parsed from the JSON; never paints, only copied */
  int brush_used;       /* the brush has painted since it was created (its RNG has advanced) */
  int width;            /* rendered canvas width, pixels */
  int out_width;        /* read-back width; width = scale * out_width */
  int scale;
  int channels;         /* 1 (red channel only), 3 (RGB) or 4 (RGBA) */
  int white;            /* background: opaque white, else transparent */
  float *canvas;        /* cached read-back, out_width^2 * channels */
  double libmypaint_seconds; /* time spent inside libmypaint's stroke_to and end_atomic */
  int busy;             /* a stroke runs without the GIL; other calls must wait for it */
  long long strokes;
} Painter;

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int check_idle(Painter *self) {
  if (self->busy) {
    PyErr_SetString(PyExc_RuntimeError, "Painter is in use by another thread (a stroke is running)");
    return -1;
  }
  return 0;
}

static void fill_tile(uint16_t *tile, int white) {
  if (!white) {
    memset(tile, 0, TILE_VALUES * sizeof(uint16_t));
    return;
  }
  for (int i = 0; i < TILE_VALUES; i++) tile[i] = FIX15_ONE;
}

/* A new brush with the template's settings (base values and input mappings) and a fresh RNG. */
static MyPaintBrush *copy_brush(MyPaintBrush *template) {
  MyPaintBrush *brush = mypaint_brush_new();
  if (!brush) return NULL;
  for (int setting = 0; setting < MYPAINT_BRUSH_SETTINGS_COUNT; setting++) {
    mypaint_brush_set_base_value(brush, setting, mypaint_brush_get_base_value(template, setting));
    for (int input = 0; input < MYPAINT_BRUSH_INPUTS_COUNT; input++) {
      const int n = mypaint_brush_get_mapping_n(template, setting, input);
      if (n == 0) continue; /* a new brush starts with no mapping points */
      mypaint_brush_set_mapping_n(brush, setting, input, n);
      for (int i = 0; i < n; i++) {
        float x, y;
        mypaint_brush_get_mapping_point(template, setting, input, i, &x, &y);
        mypaint_brush_set_mapping_point(brush, setting, input, i, x, y);
      }
    }
  }
  return brush;
}

static void Painter_dealloc(Painter *self) {
  if (self->brush) mypaint_brush_unref(self->brush);
  if (self->template) mypaint_brush_unref(self->template);
  if (self->surface_ready) mypaint_tiled_surface_destroy(&self->surface.parent);
  free(self->surface.tiles);
  free(self->surface.scratch);
  free(self->surface.touched);
  free(self->surface.stale);
  free(self->canvas);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Refreshes the float canvas for every output pixel whose source block lies in a stale tile. */
static void refresh_canvas(Painter *self) {
  Surface *s = &self->surface;
  const int n = s->tiles_per_side, k = self->scale, ow = self->out_width, c = self->channels;
  const float inv_area = 1.0f / (float)(k * k);
  for (int ty = 0; ty < n; ty++) {
    for (int tx = 0; tx < n; tx++) {
      const int index = ty * n + tx;
      if (!s->stale[index]) continue;
      s->stale[index] = 0;
      if (k == 1) { /* fast path: one surface pixel per output pixel, rows straight from the tile */
        const int rows = (ty + 1) * TILE <= ow ? TILE : ow - ty * TILE;
        const int cols = (tx + 1) * TILE <= ow ? TILE : ow - tx * TILE;
        const uint16_t *tile = s->tiles + (size_t)index * TILE_VALUES;
        for (int y = 0; y < rows; y++) {
          const uint16_t *p = tile + (size_t)y * TILE * 4;
          float *out = self->canvas + ((size_t)(ty * TILE + y) * ow + (size_t)tx * TILE) * c;
          for (int x = 0; x < cols; x++, p += 4, out += c) {
            const float inv_alpha = p[3] ? 1.0f / (float)p[3] : 0.0f;
            for (int ch = 0; ch < (c == 4 ? 3 : c); ch++) {
              const float v = (float)p[ch] * inv_alpha;
              out[ch] = v > 1.0f ? 1.0f : v;
            }
            if (c == 4) out[3] = (float)p[3] * (1.0f / FIX15_ONE);
          }
        }
        continue;
      }
      /* Output pixels whose k x k source block intersects this tile (blocks may straddle tiles). */
      int oy0 = ty * TILE / k, oy1 = ((ty + 1) * TILE - 1) / k;
      int ox0 = tx * TILE / k, ox1 = ((tx + 1) * TILE - 1) / k;
      if (oy1 >= ow) oy1 = ow - 1;
      if (ox1 >= ow) ox1 = ow - 1;
      for (int oy = oy0; oy <= oy1; oy++) {
        for (int ox = ox0; ox <= ox1; ox++) {
          uint32_t sum[4] = {0, 0, 0, 0};
          for (int y = oy * k; y < (oy + 1) * k; y++) {
            const uint16_t *row = s->tiles + (size_t)((y / TILE) * n) * TILE_VALUES
                                  + (size_t)(y % TILE) * TILE * 4;
            for (int x = ox * k; x < (ox + 1) * k; x++) {
              const uint16_t *p = row + (size_t)(x / TILE) * TILE_VALUES + (x % TILE) * 4;
              sum[0] += p[0];
              sum[1] += p[1];
              sum[2] += p[2];
              sum[3] += p[3];
            }
          }
          float *out = self->canvas + ((size_t)oy * ow + ox) * c;
          /* Un-premultiply: colour = sum(premultiplied colour) / sum(alpha) over the block. */
          const float inv_alpha = sum[3] ? 1.0f / (float)sum[3] : 0.0f;
          for (int ch = 0; ch < (c == 4 ? 3 : c); ch++) {
            float v = (float)sum[ch] * inv_alpha;
            out[ch] = v > 1.0f ? 1.0f : v;
          }
          if (c == 4) {
            float a = (float)sum[3] * inv_area * (1.0f / FIX15_ONE);
            out[3] = a > 1.0f ? 1.0f : a;
          }
        }
      }
    }
  }
}

static int Painter_init(Painter *self, PyObject *args, PyObject *kwargs) {
  static char *keywords[] = {"width", "brush_json", "white", "channels", "out_width", NULL};
  int width, white = 1, channels = 3, out_width = -1;
  const char *json;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "is|pii", keywords, &width, &json, &white,
                                   &channels, &out_width)) {
    return -1;
  }
  if (self->template || self->canvas) {
    PyErr_SetString(PyExc_RuntimeError, "Painter is already initialised");
    return -1;
  }
  if (out_width < 0) out_width = width;
  if (width < 1 || width > 16384) {
    PyErr_Format(PyExc_ValueError, "width must be in [1, 16384], got %d", width);
    return -1;
  }
  if (out_width < 1 || width % out_width != 0) {
    PyErr_Format(PyExc_ValueError, "out_width must divide width=%d, got %d", width, out_width);
    return -1;
  }
  if (channels != 1 && channels != 3 && channels != 4) {
    PyErr_Format(PyExc_ValueError, "channels must be 1, 3 or 4, got %d", channels);
    return -1;
  }
  self->width = width;
  self->out_width = out_width;
  self->scale = width / out_width;
  self->channels = channels;
  self->white = white;

  self->template = mypaint_brush_new();
  if (!self->template) {
    PyErr_NoMemory();
    return -1;
  }
  if (!mypaint_brush_from_string(self->template, json)) {
    PyErr_SetString(PyExc_ValueError,
                    "libmypaint could not parse the brush JSON (mypaint_brush_from_string failed)");
    return -1;
  }
  self->brush = copy_brush(self->template);
  if (!self->brush) {
    PyErr_NoMemory();
    return -1;
  }

  Surface *s = &self->surface;
  const int n = (width + TILE - 1) / TILE;
  s->tiles_per_side = n;
  s->tiles = malloc((size_t)n * n * TILE_VALUES * sizeof(uint16_t));
  s->scratch = malloc(TILE_VALUES * sizeof(uint16_t));
  s->touched = calloc((size_t)n * n, 1);
  s->stale = calloc((size_t)n * n, 1);
  self->canvas = malloc((size_t)out_width * out_width * channels * sizeof(float));
  if (!s->tiles || !s->scratch || !s->touched || !s->stale || !self->canvas) {
    PyErr_NoMemory();
    return -1;
  }
  for (int i = 0; i < n * n; i++) {
    fill_tile(s->tiles + (size_t)i * TILE_VALUES, white);
    s->stale[i] = 1;
  }
  mypaint_tiled_surface_init(&s->parent, tile_request_start, tile_request_end);
  s->parent.threadsafe_tile_requests = FALSE;
  self->surface_ready = 1;
  refresh_canvas(self);
  return 0;
}

static PyObject *Painter_clear(Painter *self, PyObject *unused) {
  (void)unused;
  if (check_idle(self) < 0) return NULL;
  Surface *s = &self->surface;
  const int n = s->tiles_per_side;
  for (int i = 0; i < n * n; i++) {
    if (!s->touched[i]) continue;
    fill_tile(s->tiles + (size_t)i * TILE_VALUES, self->white);
    s->touched[i] = 0;
    s->stale[i] = 1;
  }
  /* The next stroke gets a fresh brush, whose RNG starts from libmypaint's fixed seed. */
  if (self->brush_used) {
    MyPaintBrush *brush = copy_brush(self->template);
    if (!brush) return PyErr_NoMemory();
    mypaint_brush_unref(self->brush);
    self->brush = brush;
    self->brush_used = 0;
  }
  Py_RETURN_NONE;
}

static void rgb_to_hsv(float r, float g, float b, float *h, float *s, float *v) {
  r = r < 0.0f ? 0.0f : (r > 1.0f ? 1.0f : r);
  g = g < 0.0f ? 0.0f : (g > 1.0f ? 1.0f : g);
  b = b < 0.0f ? 0.0f : (b > 1.0f ? 1.0f : b);
  const float max = fmaxf(r, fmaxf(g, b)), min = fminf(r, fminf(g, b));
  const float delta = max - min;
  *v = max;
  if (delta <= 0.0001f) {  /* grey: hue and saturation are undefined, use 0 like DeepMind's env */
    *h = 0.0f;
    *s = 0.0f;
    return;
  }
  *s = delta / max;
  float hue;
  if (r == max) {
    hue = (g - b) / delta;
    if (hue < 0.0f) hue += 6.0f;
  } else if (g == max) {
    hue = 2.0f + (b - r) / delta;
  } else {
    hue = 4.0f + (r - g) / delta;
  }
  *h = hue / 6.0f;
}

static PyObject *Painter_stroke(Painter *self, PyObject *args) {
  double xs, ys, xc, yc, xe, ye, ps, pe, log_radius, red, green, blue;
  int new_stroke;
  if (!PyArg_ParseTuple(args, "ddddddddddddp", &xs, &ys, &xc, &yc, &xe, &ye, &ps, &pe,
                        &log_radius, &red, &green, &blue, &new_stroke)) {
    return NULL;
  }
  if (check_idle(self) < 0) return NULL;
  MyPaintBrush *brush = self->brush;
  MyPaintSurface *surface = (MyPaintSurface *)&self->surface;
  float h, s, v;
  rgb_to_hsv((float)red, (float)green, (float)blue, &h, &s, &v);

  self->busy = 1;
  Py_BEGIN_ALLOW_THREADS
  const double start = now_seconds();
  mypaint_brush_set_base_value(brush, MYPAINT_BRUSH_SETTING_RADIUS_LOGARITHMIC, (float)log_radius);
  mypaint_brush_set_base_value(brush, MYPAINT_BRUSH_SETTING_COLOR_H, h);
  mypaint_brush_set_base_value(brush, MYPAINT_BRUSH_SETTING_COLOR_S, s);
  mypaint_brush_set_base_value(brush, MYPAINT_BRUSH_SETTING_COLOR_V, v);
  mypaint_surface_begin_atomic(surface);
  if (new_stroke) {
    /* The pen was lifted (a move, or the episode start): what DeepMind's env does on a move,
       deferred to here so that a move itself costs nothing. The reset makes libmypaint jump to
       the start point without drawing; the second call puts the pen down at the new pressure. */
    mypaint_brush_reset(brush);
    mypaint_brush_new_stroke(brush);
    mypaint_brush_stroke_to(brush, surface, (float)xs, (float)ys, 0.0f, 0.0f, 0.0f, STROKE_DTIME);
    mypaint_brush_stroke_to(brush, surface, (float)xs, (float)ys, (float)ps, 0.0f, 0.0f,
                            STROKE_DTIME);
  }
  for (int i = 1; i <= STROKE_SEGMENTS; i++) {
    const double t = (double)i / STROKE_SEGMENTS, u = 1.0 - t;
    const double x = u * u * xs + 2.0 * u * t * xc + t * t * xe;
    const double y = u * u * ys + 2.0 * u * t * yc + t * t * ye;
    const double p = ps * u + pe * t;
    mypaint_brush_stroke_to(brush, surface, (float)x, (float)y, (float)p, 0.0f, 0.0f,
                            STROKE_DTIME);
  }
  mypaint_surface_end_atomic(surface, NULL);
  self->libmypaint_seconds += now_seconds() - start;
  Py_END_ALLOW_THREADS
  self->busy = 0;
  self->brush_used = 1;
  self->strokes++;
  Py_RETURN_NONE;
}

static PyObject *Painter_read_into(Painter *self, PyObject *target) {
  if (check_idle(self) < 0) return NULL;
  Py_buffer view;
  if (PyObject_GetBuffer(target, &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
    return NULL;
  }
  const Py_ssize_t expected =
      (Py_ssize_t)self->out_width * self->out_width * self->channels * (Py_ssize_t)sizeof(float);
  if (view.len != expected || view.itemsize != sizeof(float) || !view.format ||
      strcmp(view.format, "f") != 0) {
    PyErr_Format(PyExc_ValueError,
                 "read_into needs a C-contiguous float32 buffer of shape (%d, %d, %d), got %zd bytes "
                 "of format '%s'", self->out_width, self->out_width, self->channels, view.len,
                 view.format ? view.format : "B");
    PyBuffer_Release(&view);
    return NULL;
  }
  refresh_canvas(self);
  memcpy(view.buf, self->canvas, (size_t)expected);
  PyBuffer_Release(&view);
  Py_RETURN_NONE;
}

/* The raw surface, for tests and debugging: premultiplied fix15 RGBA, row-major [width, width, 4]. */
static PyObject *Painter_read_raw_into(Painter *self, PyObject *target) {
  if (check_idle(self) < 0) return NULL;
  Py_buffer view;
  if (PyObject_GetBuffer(target, &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
    return NULL;
  }
  const int w = self->width, n = self->surface.tiles_per_side;
  const Py_ssize_t expected = (Py_ssize_t)w * w * 4 * (Py_ssize_t)sizeof(uint16_t);
  if (view.len != expected || !view.format || strcmp(view.format, "H") != 0) {
    PyErr_Format(PyExc_ValueError, "read_raw_into needs a C-contiguous uint16 buffer of shape "
                 "(%d, %d, 4), got %zd bytes of format '%s'", w, w, view.len,
                 view.format ? view.format : "B");
    PyBuffer_Release(&view);
    return NULL;
  }
  uint16_t *out = view.buf;
  for (int y = 0; y < w; y++) {
    for (int tx = 0; tx * TILE < w; tx++) {
      const int count = (w - tx * TILE) < TILE ? (w - tx * TILE) : TILE;
      const uint16_t *src = self->surface.tiles + (size_t)((y / TILE) * n + tx) * TILE_VALUES
                            + (size_t)(y % TILE) * TILE * 4;
      memcpy(out + ((size_t)y * w + (size_t)tx * TILE) * 4, src, (size_t)count * 4 * sizeof(uint16_t));
    }
  }
  PyBuffer_Release(&view);
  Py_RETURN_NONE;
}

static PyObject *Painter_get_libmypaint_seconds(Painter *self, void *closure) {
  (void)closure;
  return PyFloat_FromDouble(self->libmypaint_seconds);
}

static PyObject *Painter_get_strokes(Painter *self, void *closure) {
  (void)closure;
  return PyLong_FromLongLong(self->strokes);
}

static PyObject *Painter_get_touched_tiles(Painter *self, void *closure) {
  (void)closure;
  long count = 0;
  const int n = self->surface.tiles_per_side;
  for (int i = 0; i < n * n; i++) count += self->surface.touched[i];
  return PyLong_FromLong(count);
}

static PyMethodDef Painter_methods[] = {
    {"clear", (PyCFunction)Painter_clear, METH_NOARGS,
     "clear(): refill the canvas with the background and start the next stroke with a fresh brush."},
    {"stroke", (PyCFunction)Painter_stroke, METH_VARARGS,
     "stroke(x_s, y_s, x_c, y_c, x_e, y_e, p_s, p_e, log_radius, red, green, blue, new_stroke):\n"
     "paint the quadratic Bezier start -> (control) -> end as 50 stroke_to calls of dtime 0.1,\n"
     "pressure linear from p_s to p_e, inside one atomic. Coordinates in rendered pixels (x = column).\n"
     "new_stroke: the pen was lifted before this stroke (reset the brush and put it down at start)."},
    {"read_into", (PyCFunction)Painter_read_into, METH_O,
     "read_into(array): write the canvas (float32 [out_width, out_width, channels], un-premultiplied,\n"
     "area-averaged when width > out_width) into a C-contiguous float32 buffer."},
    {"read_raw_into", (PyCFunction)Painter_read_raw_into, METH_O,
     "read_raw_into(array): copy the surface, premultiplied 15-bit fixed point RGBA (1.0 = 1 << 15),\n"
     "into a C-contiguous uint16 buffer of shape [width, width, 4] (for tests)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Painter_getset[] = {
    {"libmypaint_seconds", (getter)Painter_get_libmypaint_seconds, NULL,
     "Total seconds spent inside libmypaint by stroke() (brush dynamics and dab rendering).", NULL},
    {"strokes", (getter)Painter_get_strokes, NULL, "Number of stroke() calls so far.", NULL},
    {"touched_tiles", (getter)Painter_get_touched_tiles, NULL,
     "Number of tiles written since the last clear().", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject PainterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "environments._mypaint.Painter",
    .tp_basicsize = sizeof(Painter),
    .tp_dealloc = (destructor)Painter_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Painter(width, brush_json, white=True, channels=3, out_width=width): a libmypaint\n"
              "canvas of width x width pixels (tiles of 64) with one brush loaded from .myb JSON text.",
    .tp_methods = Painter_methods,
    .tp_getset = Painter_getset,
    .tp_init = (initproc)Painter_init,
    .tp_new = PyType_GenericNew,
};

static struct PyModuleDef mypaint_module = {
    PyModuleDef_HEAD_INIT, "_mypaint",
    "Binding to libmypaint for the SPIRAL painter: one call paints one Bezier stroke.", -1, NULL,
};

PyMODINIT_FUNC PyInit__mypaint(void) {
  if (PyType_Ready(&PainterType) < 0) return NULL;
  PyObject *module = PyModule_Create(&mypaint_module);
  if (!module) return NULL;
  Py_INCREF(&PainterType);
  if (PyModule_AddObject(module, "Painter", (PyObject *)&PainterType) < 0) {
    Py_DECREF(&PainterType);
    Py_DECREF(module);
    return NULL;
  }
  PyModule_AddIntConstant(module, "TILE_SIZE", TILE);
  PyModule_AddIntConstant(module, "STROKE_SEGMENTS", STROKE_SEGMENTS);
  PyModule_AddObject(module, "STROKE_DTIME", PyFloat_FromDouble(STROKE_DTIME));
  return module;
}
