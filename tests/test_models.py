"""Both networks against the seed's tables: layer output shapes and parameter counts."""

import pytest

from edgecnn.models import create_model, list_models, model_info

# (layer name, output shape without batch, params) — the seed's Basic CNN table at 50×50.
BASIC_CNN_TABLE = [
    ("block1_conv1", (50, 50, 32), 896), ("block1_2_conv", (48, 48, 32), 9248), ("block1_2_bn", (48, 48, 32), 128),
    ("block1_pool", (24, 24, 32), 0),
    ("block2_conv1", (24, 24, 64), 18496), ("block2_2_conv", (22, 22, 64), 36928), ("block2_2_bn", (22, 22, 64), 256),
    ("block2_pool", (11, 11, 64), 0),
    ("block3_conv1", (11, 11, 64), 36928), ("block3_2_conv", (9, 9, 64), 36928), ("block3_2_bn", (9, 9, 64), 256),
    ("block3_pool", (4, 4, 64), 0),
    ("flatten", (1024,), 0), ("fc1", (512,), 524800), ("probs", (2,), 1026),
]

# VGG13 at the seed's 224×224: (layer, shape, params).
VGG13_TABLE = [
    ("block1_conv1", (224, 224, 64), 1792), ("block1_2_conv", (224, 224, 64), 36928), ("block1_pool", (112, 112, 64), 0),
    ("block2_conv1", (112, 112, 128), 73856), ("block2_2_conv", (112, 112, 128), 147584), ("block2_pool", (56, 56, 128), 0),
    ("block3_conv1", (56, 56, 256), 295168), ("block3_2_conv", (56, 56, 256), 590080), ("block3_pool", (28, 28, 256), 0),
    ("block4_conv1", (28, 28, 512), 1180160), ("block4_2_conv", (28, 28, 512), 2359808), ("block4_pool", (14, 14, 512), 0),
    ("block5_conv1", (14, 14, 512), 2359808), ("block5_2_conv", (14, 14, 512), 2359808), ("block5_pool", (7, 7, 512), 0),
    ("flatten", (25088,), 0), ("fc1", (4096,), 102764544), ("fc2", (4096,), 16781312), ("fc3", (1000,), 4097000),
    ("probs", (2,), 2002),
]

SEED_CFG = {"basic_cnn": {"input_size": 50}, "vgg13": {"input_size": 224}}
SEED_MODELS = sorted(SEED_CFG)
TABLES = {"basic_cnn": BASIC_CNN_TABLE, "vgg13": VGG13_TABLE}


@pytest.mark.parametrize("name", SEED_MODELS)
@pytest.mark.parametrize("seed_order", [False, True])
def test_seed_table(name, seed_order):
    m = create_model(name, seed_order=seed_order, **SEED_CFG[name])
    assert m.count_params() == model_info(name).seed_params
    for layer, shape, params in TABLES[name]:
        lyr = m.get_layer(layer)
        assert tuple(lyr.output_shape[1:]) == shape, layer
        assert lyr.count_params() == params, layer


@pytest.mark.parametrize("name", SEED_MODELS)
def test_qat_order_conv_bn_relu(name):
    """The default order is Conv(no activation) → BN → ReLU; seed_order is Conv(relu) → BN."""
    m = create_model(name, **SEED_CFG[name])
    conv = m.get_layer("block1_2_conv")
    assert conv.get_config()["activation"] == "linear"
    assert m.get_layer("block1_2_relu") is not None
    s = create_model(name, seed_order=True, **SEED_CFG[name])
    assert s.get_layer("block1_2_conv").get_config()["activation"] == "relu"
    assert not any(l.name.endswith("_relu") for l in s.layers)


# VGG13 at the patches' native 50 px (the CPU default): same convolutions, 5 poolings 50→25→12→6→3→1,
# so the dense head starts from 512 features instead of 25,088.
VGG13_50_TABLE = [
    ("block1_2_conv", (50, 50, 64), 36928), ("block1_pool", (25, 25, 64), 0),
    ("block2_pool", (12, 12, 128), 0), ("block3_pool", (6, 6, 256), 0), ("block4_pool", (3, 3, 512), 0),
    ("block5_2_conv", (3, 3, 512), 2359808), ("block5_2_bn", (3, 3, 512), 2048), ("block5_pool", (1, 1, 512), 0),
    ("flatten", (512,), 0), ("fc1", (4096,), 2101248), ("fc2", (4096,), 16781312), ("fc3", (1000,), 4097000),
    ("probs", (2,), 2002),
]


def test_vgg13_native_50px():
    m = create_model("vgg13", input_size=50)
    assert m.count_params() == 32_392_442
    for layer, shape, params in VGG13_50_TABLE:
        lyr = m.get_layer(layer)
        assert tuple(lyr.output_shape[1:]) == shape, layer
        assert lyr.count_params() == params, layer


def test_vgg13_cpu_default_is_native_size():
    from edgecnn._tf import tf
    from edgecnn.models.vgg13 import default_input_size

    assert default_input_size() == (224 if tf.config.list_physical_devices("GPU") else 50)


def test_vgg13_small_input_and_errors():
    m = create_model("vgg13", input_size=64)
    assert m.input_shape == (None, 64, 64, 3)
    assert m.get_layer("flatten").output_shape == (None, 2 * 2 * 512)
    with pytest.raises(ValueError, match="at least 32"):
        create_model("vgg13", input_size=16)
    with pytest.raises(ValueError, match="unknown model"):
        create_model("resnet")
    with pytest.raises(ValueError, match="unknown option"):
        create_model("basic_cnn", width=3)


# Multiply-adds per 50 px tile and parameters of every registered model, counted by hand from the
# layer shapes (basic_cnn: 2,160,000 + 21,233,664 + 10,616,832 + 17,842,176 + 4,460,544 + 2,985,984
# + 524,288 + 1,024; mobile_student_100: stem 405,000, then depthwise + pointwise per block, dense 384).
COMPUTE_50PX = {
    "basic_cnn": (59_824_512, 665_890),
    "vgg13": (554_963_664, 32_392_442),
    "mobile_student_100": (6_652_176, 79_826),
    "mobile_student_125": (10_404_224, 122_626),
}


@pytest.mark.parametrize("name", list_models())
def test_compute_per_registered_model(name):
    from edgecnn.models.macs import count_macs

    m = create_model(name, input_size=50)
    assert (count_macs(m), m.count_params()) == COMPUTE_50PX[name]


def test_students_fit_a_fifth_of_the_basic_cnn_and_quantize_to_pure_int8():
    import numpy as np

    from edgecnn.export.tflite import convert_keras, inspect_ops
    from edgecnn.quantize.scheme import quantize_keras_model

    for name in ("mobile_student_100", "mobile_student_125"):
        assert COMPUTE_50PX[name][0] * 5 <= COMPUTE_50PX["basic_cnn"][0]
    q, standalone = quantize_keras_model(create_model("mobile_student_100"))
    assert standalone == []
    ops = inspect_ops(convert_keras(q, "int8-qat"))
    assert ops["integer_only"], ops["float_ops"]
    assert {"DEPTHWISE_CONV_2D", "CONV_2D", "FULLY_CONNECTED"} <= set(ops["ops"])
    with pytest.raises(ValueError, match="seed layer order"):
        create_model("mobile_student_100", seed_order=True)
    assert np.isfinite(q.predict(np.zeros((1, 50, 50, 3), np.float32), verbose=0)).all()
