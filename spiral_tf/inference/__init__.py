"""A trained agent outside training: the SavedModel export, the painter that runs it, evaluation.

  export_format.py  what an export is on disk (no TensorFlow): export.py writes it, painter.py reads it
  export.py         writes a run's agent as a SavedModel that plain TensorFlow loads
  painter.py        paints targets with an export in a rebuilt renderer; programs as JSON
  image_io.py       reads and writes images as the training pipeline sees them
  evaluation.py     scores an export against targets (mean squared error per pixel, best of N)
  digit_score.py    a small MNIST classifier that scores unconditional samples (reproduction R2)

Usage:
  from spiral_tf.inference import painter as painter_lib
  painter = painter_lib.Painter.from_saved_model(export_dir)
"""
