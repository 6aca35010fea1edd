"""The Keras twin of torchvision's resnet18, layer names spelt after the PyTorch modules with
`_` for `.` (`layer2_0_downsample_1` is `layer2.0.downsample.1`), so that its state dict
matches by name with one rule (examples/resnet18.rules). PyTorch pads a stride-2 convolution
by `padding` on every side, where Keras's "same" pads more at the end: explicit
ZeroPadding2D layers keep PyTorch's numbers.

    mwconv import resnet18.safetensors --model examples/resnet18_keras.py:build \
        --layout torch --map examples/resnet18.rules
"""

import keras

L = keras.layers


def _block(x, cout, stride, name):
    y = L.ZeroPadding2D(1, name=f"{name}_pad1")(x)
    y = L.Conv2D(cout, 3, stride, use_bias=False, name=f"{name}_conv1")(y)
    y = L.ReLU(name=f"{name}_relu1")(L.BatchNormalization(epsilon=1e-5, name=f"{name}_bn1")(y))
    y = L.ZeroPadding2D(1, name=f"{name}_pad2")(y)
    y = L.Conv2D(cout, 3, 1, use_bias=False, name=f"{name}_conv2")(y)
    y = L.BatchNormalization(epsilon=1e-5, name=f"{name}_bn2")(y)
    if stride != 1 or x.shape[-1] != cout:
        x = L.Conv2D(cout, 1, stride, use_bias=False, name=f"{name}_downsample_0")(x)
        x = L.BatchNormalization(epsilon=1e-5, name=f"{name}_downsample_1")(x)
    return L.ReLU(name=f"{name}_out")(L.Add(name=f"{name}_add")([y, x]))


def build(width=64, size=224, classes=1000):
    image = keras.Input((size, size, 3), name="image")
    x = L.ZeroPadding2D(3, name="pad")(image)
    x = L.Conv2D(width, 7, 2, use_bias=False, name="conv1")(x)
    x = L.ReLU(name="relu")(L.BatchNormalization(epsilon=1e-5, name="bn1")(x))
    x = L.MaxPooling2D(3, 2, name="maxpool")(L.ZeroPadding2D(1, name="maxpool_pad")(x))  # after ReLU: 0 pads like -inf
    for n in range(1, 5):
        cout = width * 2 ** (n - 1)
        x = _block(x, cout, 1 if n == 1 else 2, f"layer{n}_0")
        x = _block(x, cout, 1, f"layer{n}_1")
    x = L.GlobalAveragePooling2D(name="avgpool")(x)
    return keras.Model(image, L.Dense(classes, name="fc")(x), name="resnet18")


def narrow():
    """At 1/8 of the widths and 32x32 inputs, 10 classes (tests/data/torch_resnet18.safetensors)."""
    return build(width=8, size=32, classes=10)
