"""Training losses on (label, teacher probability) targets: label smoothing and distillation.

The targets of a batch are ``y[:, 0]`` = the 0/1 label and ``y[:, 1]`` = the teacher's IDC
probability (the label itself when there is no teacher). One loss serves both:

    (1 - alpha) * CE(smoothed one-hot label, p) + alpha * T² * CE(teacher at T, student at T)

where "at T" softens a distribution as softmax(log p / T) (Hinton et al. 2015; the T² keeps the
soft term's gradients on the hard term's scale). The models end in a softmax, so log p stands in
for the logits (they differ by a per-row constant, which softmax ignores).
"""

from __future__ import annotations

from edgecnn._tf import keras, tf

_EPS = 1e-7


def _soften(p, temperature: float):
    return tf.nn.softmax(tf.math.log(tf.clip_by_value(p, _EPS, 1.0)) / temperature, axis=-1)


@keras.saving.register_keras_serializable(package="edgecnn")
class SoftTargetLoss(keras.losses.Loss):
    def __init__(self, label_smoothing: float = 0.0, kd_alpha: float = 0.0, kd_temperature: float = 1.0,
                 name: str = "soft_target_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"--label-smoothing must be in [0, 1); got {label_smoothing}")
        if not 0.0 <= kd_alpha <= 1.0:
            raise ValueError(f"--kd-alpha is the weight of the teacher's term, in [0, 1]; got {kd_alpha}")
        if kd_temperature <= 0:
            raise ValueError(f"--kd-temperature must be > 0; got {kd_temperature}")
        self.label_smoothing, self.kd_alpha, self.kd_temperature = label_smoothing, kd_alpha, kd_temperature

    def call(self, y_true, y_pred):
        y_true = tf.cast(y_true, y_pred.dtype)
        label, teacher = y_true[:, 0], y_true[:, 1]
        hard = tf.stack([1.0 - label, label], axis=-1) * (1.0 - self.label_smoothing) + self.label_smoothing / 2
        log_p = tf.math.log(tf.clip_by_value(y_pred, _EPS, 1.0))
        loss = -tf.reduce_sum(hard * log_p, axis=-1) * (1.0 - self.kd_alpha)
        if self.kd_alpha > 0:
            t = self.kd_temperature
            soft_t = _soften(tf.stack([1.0 - teacher, teacher], axis=-1), t)
            log_s = tf.math.log(tf.clip_by_value(_soften(y_pred, t), _EPS, 1.0))
            loss += -tf.reduce_sum(soft_t * log_s, axis=-1) * (self.kd_alpha * t * t)
        return loss

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing, "kd_alpha": self.kd_alpha,
                "kd_temperature": self.kd_temperature}


@keras.saving.register_keras_serializable(package="edgecnn")
def label_accuracy(y_true, y_pred):
    """Accuracy against the label column of soft targets (Keras' own would compare both columns)."""
    label = tf.cast(y_true[:, 0] > 0.5, tf.int64)
    return tf.cast(tf.equal(tf.argmax(y_pred, axis=-1), label), tf.float32)


def compile_args(label_smoothing: float, kd_alpha: float, kd_temperature: float) -> dict:
    """``model.compile`` loss and metrics; plain sparse cross-entropy when neither is used."""
    if label_smoothing == 0 and kd_alpha == 0:
        return {"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}
    return {"loss": SoftTargetLoss(label_smoothing, kd_alpha, kd_temperature),
            "metrics": [keras.metrics.MeanMetricWrapper(label_accuracy, name="accuracy")]}
