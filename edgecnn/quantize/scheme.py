"""How a float Keras model becomes a QAT model (tfmot's default 8-bit scheme).

tfmot quantizes Conv → BN → ReLU as one fused int8 conv (weights per output channel). A BN that
follows a ReLU (the seed's ``seed_order`` blocks) is not in tfmot's registry: it gets
``StandaloneBNQuantizeConfig`` (output fake-quantized, BN itself untouched). The converter then
lowers that BN to a float MUL + ADD between DEQUANTIZE / QUANTIZE: those float ops are reported
in qat/model.json and every manifest, not hidden.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import tensorflow_model_optimization as tfmot

from edgecnn._tf import keras
from edgecnn.train.bn import inner_layers

Q = tfmot.quantization.keras
L = keras.layers
_CONVS = (L.Conv2D, L.DepthwiseConv2D, L.Dense)


@keras.utils.register_keras_serializable(package="edgecnn")
class StandaloneBNQuantizeConfig(Q.QuantizeConfig):
    """A BatchNormalization not preceded by a linear conv: quantize its output only (8-bit, per tensor)."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [Q.quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

    def get_config(self):
        return {}


def custom_objects() -> dict:
    return {"StandaloneBNQuantizeConfig": StandaloneBNQuantizeConfig,
            "edgecnn>StandaloneBNQuantizeConfig": StandaloneBNQuantizeConfig}


@contextlib.contextmanager
def quantize_scope() -> Iterator[None]:
    """tfmot's scope plus our configs: needed to load or clone a QAT model."""
    with Q.quantize_scope(custom_objects()):
        yield


def _inbound_layers(layer) -> list:
    out = []
    for node in layer._inbound_nodes:
        il = node.inbound_layers
        out.extend(il if isinstance(il, (list, tuple)) else [il])
    return out


def standalone_batchnorms(model) -> list[str]:
    """BN layers tfmot cannot fold: those whose input is not a conv/dense with a linear activation."""
    names = []
    for layer in model.layers:
        if not isinstance(layer, L.BatchNormalization):
            continue
        prev = _inbound_layers(layer)
        foldable = len(prev) == 1 and isinstance(prev[0], _CONVS) and \
            keras.activations.serialize(prev[0].activation) in ("linear", None)
        if not foldable:
            names.append(layer.name)
    return names


ACTIVATION_SCHEMES = ("asymmetric", "symmetric")


def activation_quantizers(qmodel) -> list:
    """Every activation quantizer of a QAT model: the input's, the fused conv outputs', the others'."""
    found = []
    for layer in qmodel.layers:
        q = getattr(layer, "quantizer", None)          # QuantizeLayer (the model input)
        if q is not None and hasattr(q, "symmetric"):
            found.append(q)
        found += [q for q in getattr(layer, "_output_quantizers", []) or [] if hasattr(q, "symmetric")]
        found += [a.quantizer for a in getattr(layer, "_quantize_activations", []) or []
                  if hasattr(getattr(a, "quantizer", None), "symmetric")]
    return found


def set_symmetric_activations(qmodel) -> int:
    """Make every activation range symmetric around 0, the only form TensorRT's INT8 takes.

    tfmot's symmetric mode keeps min = -max·128/127 in the range variables themselves (zero point
    128 in UINT8, 0 in INT8), so a saved model stays symmetric in inference even though tfmot's
    configs rebuild their quantizers as asymmetric on load; training again (resume) must call this
    again. Returns the number of quantizers switched.
    """
    qs = activation_quantizers(qmodel)
    for q in qs:
        q.symmetric = True
    return len(qs)


def quantize_keras_model(model, activations: str = "asymmetric"):
    """The QAT model of a float model (weights kept); returns (qat_model, standalone BN names).

    ``activations="symmetric"`` gives the ranges TensorRT uses (edgecnn.export.trt_qdq).
    """
    if activations not in ACTIVATION_SCHEMES:
        raise ValueError(f"activations must be one of {', '.join(ACTIVATION_SCHEMES)}, not {activations!r}")
    qmodel, standalone = _quantize(model)
    if activations == "symmetric":
        set_symmetric_activations(qmodel)
    return qmodel, standalone


def _quantize(model):
    standalone = standalone_batchnorms(model)
    if not standalone:
        return Q.quantize_model(model), []

    def annotate(layer):
        if layer.name in standalone:
            return Q.quantize_annotate_layer(layer, quantize_config=StandaloneBNQuantizeConfig())
        return Q.quantize_annotate_layer(layer)

    # clone_function returns wrappers around the original layer objects, so the trained weights carry over.
    annotated = keras.models.clone_model(model, clone_function=annotate)
    with quantize_scope():
        return Q.quantize_apply(annotated), standalone


def load_qat_model(path):
    with quantize_scope():
        return keras.models.load_model(path, compile=False)


@contextlib.contextmanager
def _ema_decay(decay_of_step) -> Iterator[None]:
    """Let MovingAverageQuantizer use a chosen EMA decay (tfmot hard-codes 0.999 in __call__)."""
    from tensorflow_model_optimization.python.core.quantization.keras import quant_ops

    cls = Q.quantizers.MovingAverageQuantizer
    original = cls.__call__

    def call(self, inputs, training, weights, **kwargs):
        return quant_ops.MovingAvgQuantize(
            inputs, weights["min_var"], weights["max_var"], ema_decay=decay_of_step(), is_training=training,
            num_bits=self.num_bits, per_channel=self.per_axis, symmetric=self.symmetric,
            narrow_range=self.narrow_range)

    cls.__call__ = call
    try:
        yield
    finally:
        cls.__call__ = original


def calibrate_ranges(qmodel, batches) -> int:
    """Set the activation ranges of a fresh QAT model from data before fine-tuning.

    tfmot starts activation ranges at [-6, 6] and moves them with an EMA of decay 0.999, so a short
    fine-tune from a trained model keeps ranges far from the real ones (coarse or clipped int8
    activations, a visible accuracy drop). Here the EMA decay is 1 - 1/k at batch k: the ranges
    become the mean of the batch ranges. BN runs in inference mode and dropout is off meanwhile,
    so the activations are the ones the exported model will see. Returns the batches used.
    """
    bns = inner_layers(qmodel, L.BatchNormalization)
    drops = inner_layers(qmodel, L.Dropout)
    saved_bn = [b.trainable for b in bns]
    saved_rates = [d.rate for d in drops]
    step = {"k": 0}
    for b in bns:
        b.trainable = False
    for d in drops:
        d.rate = 0.0
    try:
        with _ema_decay(lambda: 1.0 - 1.0 / step["k"]):
            for x in batches:
                step["k"] += 1
                qmodel(x, training=True)
    finally:
        for b, t in zip(bns, saved_bn):
            b.trainable = t
        for d, r in zip(drops, saved_rates):
            d.rate = r
    return step["k"]
