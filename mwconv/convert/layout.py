"""Layout transforms from a source tensor to the Keras weight it fills.

Each transform has a name (it goes into the report and the manifest) and a
function of the array. Which one applies comes from the layout (keras, torch,
onnx) and the kind of the target weight, never from whether shapes happen to
fit: a square PyTorch Linear weight is transposed like any other.
"""

import re

import numpy as np

from mwconv.errors import InputRejected, UsageError


def _conv(a):
    # torch/ONNX (O, I/groups, k...) -> Keras (k..., I/groups, O); also ConvTranspose
    # (I, O/groups, k...) -> Keras Conv*Transpose (k..., O, I)
    return np.transpose(a, tuple(range(2, a.ndim)) + (1, 0))


def _depthwise(a, target_shape):
    # torch grouped conv with groups=in: (in*mult, 1, k...) -> Keras (k..., in, mult)
    k = a.shape[2:]
    channels, mult = target_shape[-2], target_shape[-1]
    a = a.reshape((channels, mult) + tuple(k))
    return np.transpose(a, tuple(range(2, a.ndim)) + (0, 1))


TRANSFORMS = {
    "none": lambda a, shape: a,
    "transpose": lambda a, shape: np.transpose(a),
    "linear": lambda a, shape: np.transpose(a),
    "conv": lambda a, shape: _conv(a),
    "conv_transpose": lambda a, shape: _conv(a),
    "depthwise": _depthwise,
    "reshape": lambda a, shape: np.reshape(a, shape),
    # a torch/ONNX Linear weight (out, in) into an EinsumDense kernel whose axes are the
    # contracted input axes, then the output axes ("abc,cde->abde": (in, heads, head_dim))
    "linear_reshape": lambda a, shape: np.reshape(np.transpose(a), shape),
}

# Keras layer class (stock or mixed, same names) -> weight name -> transform for torch/onnx layouts
FOREIGN = {
    "Dense": {"kernel": "linear"},
    "EinsumDense": {},
    "Conv1D": {"kernel": "conv"}, "Conv2D": {"kernel": "conv"}, "Conv3D": {"kernel": "conv"},
    "Conv1DTranspose": {"kernel": "conv_transpose"}, "Conv2DTranspose": {"kernel": "conv_transpose"},
    "Conv3DTranspose": {"kernel": "conv_transpose"},
    "DepthwiseConv1D": {"kernel": "depthwise"}, "DepthwiseConv2D": {"kernel": "depthwise"},
}

LAYOUTS = ("keras", "torch", "onnx", "auto")


def transform_for(layout, layer_class, weight_name, owner=None):
    """The transform of a torch/onnx tensor into the weight ``weight_name`` of a layer of
    class ``layer_class`` (``owner``: the layer itself, which an EinsumDense's equation needs)."""
    if layout not in LAYOUTS[:3]:
        raise UsageError(f"--layout must be one of {', '.join(LAYOUTS)}. Received: {layout!r}")
    if layout == "keras":
        return "none"
    if layer_class == "EinsumDense" and weight_name == "kernel" and owner is not None:
        return einsum_transform(getattr(owner, "equation", None))
    return FOREIGN.get(layer_class, {}).get(weight_name, "none")


def einsum_transform(equation):
    """``linear_reshape`` when an EinsumDense kernel lists its contracted axes first, then its
    output axes (what a Linear weight transposed and reshaped gives), else ``none``:
    decided from the equation, never from whether shapes fit."""
    try:
        inputs, output = equation.replace(" ", "").split("->")
        data, kernel = inputs.split(",")
    except (AttributeError, ValueError):
        return "none"
    contracted = [c for c in kernel if c in data and c not in output]
    produced = [c for c in kernel if c in output and c not in data]
    if contracted and produced and list(kernel) == contracted + produced:
        return "linear_reshape"
    return "none"


_PART = re.compile(r"part\((\d+)/(\d+)\)")


def apply(name, array, target_shape):
    """Apply transform ``name``, or a chain of them (``linear,reshape``) in order. ``part(i/n)``
    (written by a rule's ``split`` over ``n`` targets) is the ``i``-th of ``n`` equal slices
    along the last axis: GPT-2's fused query/key/value weight, one slice per target."""
    for part in name.split(","):
        sliced = _PART.fullmatch(part)
        if sliced:
            index, count = int(sliced.group(1)), int(sliced.group(2))
            if not array.shape or array.shape[-1] % count:
                raise ValueError(f"the last axis of {tuple(array.shape)} does not split into {count} equal parts")
            step = array.shape[-1] // count
            array = array[..., index * step:(index + 1) * step]
            continue
        if part not in TRANSFORMS:
            raise UsageError(f"unknown transform '{part}'; known: {', '.join(sorted(TRANSFORMS))}")
        array = TRANSFORMS[part](array, tuple(target_shape))
    return array


def check_finite(array, path, tensor):
    """Refuse NaN/Inf, naming the first index in the source's own layout."""
    src = np.asarray(array)
    if src.dtype.kind in "fc":
        bad = ~np.isfinite(src)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise InputRejected(f"holds {int(bad.sum())} NaN/Inf values (first at index {where}); "
                                "pass --allow-nonfinite to import them anyway", path=path, tensor=tensor)


def cast_checked(array, dtype, path, tensor):
    """Cast to the target dtype, refusing values that do not fit."""
    target = np.dtype(dtype)
    src = np.asarray(array)
    if src.dtype == target:
        return src
    if target.kind == "f" and src.dtype.kind in "fiub":
        limit = np.finfo(target).max
        finite = src[np.isfinite(src)] if src.dtype.kind == "f" else src
        if finite.size and np.abs(finite).max() > limit:
            raise InputRejected(f"{src.dtype} values up to {float(np.abs(finite).max()):.6g} overflow {target} "
                                f"(max {float(limit):.6g})", path=path, tensor=tensor)
        return src.astype(target)
    if target.kind in "iu" and src.dtype.kind in "iu":
        info = np.iinfo(target)
        if src.size and (src.min() < info.min or src.max() > info.max):
            raise InputRejected(f"{src.dtype} values do not fit {target}", path=path, tensor=tensor)
        return src.astype(target)
    raise InputRejected(f"cannot cast {src.dtype} to {target} without losing values", path=path, tensor=tensor)
