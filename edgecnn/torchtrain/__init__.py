"""Train on a GPU box that has PyTorch and no TensorFlow; bring the weights back to Keras.

The pipeline: ``edgecnn data pack`` (here) writes the split's train and val patches and the
teachers' soft targets into one .npz; ``python -m edgecnn.torchtrain --pack FILE --out DIR`` (on
the GPU box) trains the same network with the same recipe and writes ``DIR/weights.npz`` in
Keras' layout; ``edgecnn train --init-from DIR --epochs 0`` (here) loads them into the Keras
model, checks that Keras reproduces PyTorch's probabilities, and makes an ordinary run folder
that ``edgecnn quantize`` and ``edgecnn export`` take.

Nothing in this package imports TensorFlow, and the GPU box never sees the test patients.
"""
