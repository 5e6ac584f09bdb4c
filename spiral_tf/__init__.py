"""spiral_tf: SPIRAL agents (Ganin et al., ICML 2018) in TensorFlow 2 / Keras."""
