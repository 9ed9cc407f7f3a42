"""Full-precision training and evaluation (needs TensorFlow)."""
