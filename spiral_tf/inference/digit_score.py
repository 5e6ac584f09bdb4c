"""Scores generated digits with a small MNIST classifier trained here (no download, no pretrained weights).

Unconditional MNIST agents are judged like GANs by a classifier's view of their samples:
  mean_confidence         mean over samples of the classifier's largest softmax probability (real test
                          digits: ≈ 0.99; scribbles: low);
  classes_with_2_percent  how many of the 10 classes hold at least 2 % of the samples (a collapsed agent
                          paints one or two classes; real digits: 10);
  class_fractions         the fraction of samples assigned to each class.

The classifier sees what the agent paints: 64×64 grey canvases in [0, 1], dark ink on white paper (real
digits as spiral_tf/data/mnist.py gives them, divided by 255); it averages them down to 32×32 first.

Usage:
  classifier = train_classifier(data_dir)                 # ≈ 1 min on 2 cores; ≥ 98 % test accuracy
  score(classifier.model, canvases)                        # canvases float [N, 64, 64, 1] in [0, 1]
"""

import collections

import numpy as np
import tensorflow as tf

from spiral_tf.data import mnist

Classifier = collections.namedtuple('Classifier', ['model', 'test_accuracy'])
NUM_CLASSES = 10
MIN_CLASS_FRACTION = 0.02


def make_model() -> tf.keras.Model:
  return tf.keras.Sequential(
      [
          tf.keras.layers.InputLayer(input_shape=(64, 64, 1)),
          tf.keras.layers.Rescaling(-1.0, offset=1.0),  # Ink 1 on paper 0: empty paper costs no activation.
          tf.keras.layers.AveragePooling2D(2),
          tf.keras.layers.Conv2D(32, 3, activation='relu'),
          tf.keras.layers.MaxPooling2D(2),
          tf.keras.layers.Conv2D(64, 3, activation='relu'),
          tf.keras.layers.MaxPooling2D(2),
          tf.keras.layers.Flatten(),
          tf.keras.layers.Dense(128, activation='relu'),
          tf.keras.layers.Dense(NUM_CLASSES),
      ],
      name='digit_classifier',
  )


def train_classifier(
    data_dir=None, epochs: int = 2, train_limit=None, test_limit=None, seed: int = 0
) -> Classifier:
  """Trains `make_model()` on MNIST train; returns it with its accuracy on MNIST test."""
  tf.keras.utils.set_random_seed(seed)
  as_canvas = lambda images: images.astype(np.float32) / 255.0
  x_train = as_canvas(mnist.load(data_dir, 'train', limit=train_limit))
  y_train = mnist.load_labels(data_dir, 'train')[: len(x_train)]
  x_test = as_canvas(mnist.load(data_dir, 'test', limit=test_limit))
  y_test = mnist.load_labels(data_dir, 'test')[: len(x_test)]
  model = make_model()
  model.compile(
      optimizer=tf.keras.optimizers.Adam(1e-3),
      loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      metrics=['accuracy'],
  )
  model.fit(x_train, y_train, batch_size=64, epochs=epochs, verbose=0, shuffle=True)
  _, accuracy = model.evaluate(x_test, y_test, batch_size=500, verbose=0)
  return Classifier(model, float(accuracy))


def score(model, canvases) -> dict:
  """The figures of the module docstring for float [N, 64, 64, 1] canvases in [0, 1]."""
  canvases = np.asarray(canvases, np.float32)
  if canvases.ndim != 4 or canvases.shape[1:] != (64, 64, 1):
    raise ValueError(f'canvases must be float [N, 64, 64, 1] in [0, 1], got {list(canvases.shape)}')
  probabilities = tf.nn.softmax(model.predict(canvases, batch_size=500, verbose=0)).numpy()
  classes = probabilities.argmax(-1)
  fractions = np.bincount(classes, minlength=NUM_CLASSES) / len(classes)
  return {
      'num_samples': int(len(canvases)),
      'mean_confidence': float(probabilities.max(-1).mean()),
      'classes_with_2_percent': int(np.sum(fractions >= MIN_CLASS_FRACTION)),
      'class_fractions': [float(f) for f in fractions],
  }
