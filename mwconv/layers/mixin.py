"""The shared mechanism that turns a stock Keras layer into a mixed one.

``MixedWeightsMixin`` takes the names of the weights to freeze as config and
creates those weights non-trainable *at creation time*, so the flag reaches the
backend variable (a TensorFlow SavedModel records it) and survives save and
reload. The layer's weights file stays interchangeable with the stock layer:
weights are saved in the order the stock layer would use (its trainable
weights, then its non-trainable ones, each in creation order), followed by any
extra weights this mixin adds.

``KernelVariantsMixin`` adds three ways to freeze part of one weight (the
kernel of Dense/Conv, the table of Embedding). In each, the stock-named weight
holds the pretrained values and is frozen; a trainable companion holds what
training may change:

* ``frozen_mask``: element-level freezing. ``<w>_frozen_mask`` (bool, True =
  frozen) picks each element from ``<w>`` or from the trainable ``<w>_trainable``.
* ``adapter_rank=r``: low-rank adapter ``<w>_adapter_a @ <w>_adapter_b``
  (scaled by ``adapter_alpha / r``) added to the frozen ``<w>``; kept separate on
  save, never merged.
* ``frozen_rows=N`` (Embedding): rows ``< N`` come from ``<w>``, the other rows
  from the trainable ``<w>_trainable_rows``.
"""

import numpy as np

from mwconv import _compat
import keras
from keras import ops

from mwconv.layers.statistics import has_statistics, settle_sublayers

_EXTRA = "extra"


def _names(value, argument, layer_cls):
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    try:
        names = list(value)
    except TypeError:
        names = None
    if names is None or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{layer_cls} expected `{argument}` to be a list of weight names. "
                         f"Received: {argument}={value!r}")
    return names


def nested_weights(layer):
    """``{name: variable}`` for the weights ``layer``'s sub-layers own, each named by the
    sub-layer names down to it (``forward_lstm/lstm_cell/kernel``), not by Keras's path,
    which depends on how the layer was built."""
    found = {}

    def walk(sub, prefix):
        for v in _compat.own_variables(sub):
            found.setdefault(f"{prefix}{v.name}", v)
        for child in _compat.flatten_layers(sub, include_self=False, recursive=False):
            walk(child, f"{prefix}{child.name}/")

    for child in _compat.flatten_layers(layer, include_self=False, recursive=False):
        walk(child, f"{child.name}/")
    return found


def set_variable_trainable(variable, trainable):
    """Set a weight's trainable flag: Keras's, and the backend variable's. TensorFlow's is
    what a SavedModel records and what ``tf.GradientTape`` watches (a variable created
    non-trainable gets no gradient in ``fit`` until it is set); Keras's setter leaves it.
    Torch's ``requires_grad`` follows Keras's setter by itself. Checked on Keras 3.12 and
    3.15 with TensorFlow 2.21."""
    variable.trainable = bool(trainable)
    _compat.set_backend_trainable_flag(variable, trainable)


def freeze_variable(variable):
    """Make a sub-layer's weight non-trainable as its owner builds, before anything reads the flag."""
    set_variable_trainable(variable, False)


class MixedWeightsMixin:
    """Freeze stock weights by name; save in the stock layer's order."""

    def __init__(self, *args, frozen=None, update_statistics=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.frozen = _names(frozen, "frozen", self._display_name())
        if not isinstance(update_statistics, bool):
            raise ValueError(f"{self._display_name()} expected `update_statistics` to be True or False. "
                             f"Received: update_statistics={update_statistics!r}")
        self.update_statistics = update_statistics
        self._mixed_order = ()

    @classmethod
    def _display_name(cls):
        return "Mixed" + cls.__name__

    # -- which weights are frozen -------------------------------------------
    def _frozen_names(self):
        """Names frozen at creation (subclasses add implied ones)."""
        return set(self.frozen)

    def add_weight(self, *args, **kwargs):
        name = kwargs.get("name")
        requested = kwargs.get("trainable", True)
        extra = kwargs.pop(_EXTRA, False)
        if name in self._frozen_names():
            kwargs["trainable"] = False
        variable = super().add_weight(*args, **kwargs)
        self._mixed_order = self._mixed_order + ((name, bool(requested), extra),)
        return variable

    def _add_extra_weight(self, **kwargs):
        variable = self.add_weight(**kwargs, **{_EXTRA: True})
        # an attribute, so TensorFlow's SavedModel tracks it like the stock weights
        setattr(self, kwargs["name"], variable)
        return variable

    def _post_build(self):
        # Keras calls this right after build(), whatever build's signature (an RNN's
        # build takes sequences_shape), before the layer's state is locked
        with self._open_name_scope():
            self._build_extras()
        known = [n for n, _, extra in self._mixed_order if not extra]
        nested = self._nested_variables()
        for name in self.frozen:
            if name not in known and name in nested:
                freeze_variable(nested[name])
        known += list(nested)
        if self.update_statistics and not has_statistics(self):
            raise ValueError(f"{self._display_name()} '{self.name}': `update_statistics` applies to layers with "
                             "moving statistics (BatchNormalization, or a layer holding one). Received: "
                             "update_statistics=True. Leave it out for this layer.")
        if nested:
            settle_sublayers(self)
        unknown = [n for n in self.frozen if n not in known]
        if unknown:
            raise ValueError(
                f"{self._display_name()} '{self.name}': `frozen` names weights this layer does not have. "
                f"Received: frozen={self.frozen!r}; unknown: {unknown}. "
                f"This layer's weights are: {known}. Use those names.")
        super()._post_build()

    def _build_extras(self):
        pass

    def _nested_variables(self):
        """{path below this layer: variable} of the weights its sub-layers own."""
        return nested_weights(self)

    # -- save in the stock order ---------------------------------------------
    def stock_trainable_names(self):
        """Names of the weights the stock layer would create trainable (extras such as
        adapters excluded), in creation order."""
        return [n for n, requested, extra in self._mixed_order if requested and not extra]

    def saved_variables(self):
        """The layer's variables in the order the stock layer saves them (its trainable
        weights, then its non-trainable ones, then mwconv's extras), whatever is frozen."""
        by_name = {}
        for v in _compat.own_variables(self):
            by_name.setdefault(v.name, v)
        order = self._mixed_order
        names = [n for n, t, e in order if t and not e] + [n for n, t, e in order if not t and not e]
        names += [n for n, _, e in order if e]
        return [by_name[n] for n in names]

    def save_own_variables(self, store):
        if not self.built:
            return
        for i, v in enumerate(self.saved_variables()):
            store[str(i)] = v

    def load_own_variables(self, store):
        if not self.built:
            return
        variables = self.saved_variables()
        if len(store.keys()) != len(variables):
            raise ValueError(
                f"Layer '{self.name}' expects {len(variables)} weights "
                f"({[v.name for v in variables]}) but the file holds {len(store.keys())}.")
        for i, v in enumerate(variables):
            v.assign(store[str(i)])
        if isinstance(self, keras.layers.Normalization):
            # Keras's Normalization derives the mean and variance it computes with from its
            # variables when built; its own load_own_variables, replaced here, derives them again
            self.finalize_state()

    def get_config(self):
        config = {**super().get_config(), "frozen": list(self.frozen)}
        if self.update_statistics:       # only when set: other layers' configs stay as they were
            config["update_statistics"] = True
        return config


class KernelVariantsMixin(MixedWeightsMixin):
    """Element masks, low-rank adapters and frozen rows on one weight (``_variant_weight``)."""

    _variant_weight = "kernel"
    _supports_rows = False

    def __init__(self, *args, frozen_mask=None, adapter_rank=None, adapter_alpha=None, frozen_rows=None, **kwargs):
        super().__init__(*args, **kwargs)
        cls = self._display_name()
        self._mask_value = None
        if frozen_mask is not None and frozen_mask is not False:
            if frozen_mask is not True:
                self._mask_value = np.asarray(frozen_mask)
                if self._mask_value.dtype != bool:
                    raise ValueError(f"{cls} expected `frozen_mask` to be a boolean array (True = frozen). "
                                     f"Received: dtype {self._mask_value.dtype}. Pass `mask.astype(bool)`.")
        self.frozen_mask = frozen_mask is not None and frozen_mask is not False
        if adapter_rank is not None and (not isinstance(adapter_rank, int) or adapter_rank <= 0):
            raise ValueError(f"{cls} expected `adapter_rank` to be a positive integer. "
                             f"Received: adapter_rank={adapter_rank!r}")
        self.adapter_rank = adapter_rank
        self.adapter_alpha = float(adapter_alpha if adapter_alpha is not None else (adapter_rank or 1))
        if frozen_rows is not None:
            if not self._supports_rows:
                raise ValueError(f"{cls} does not support `frozen_rows`; it is an Embedding option.")
            limit = getattr(self, "input_dim", None)
            if not isinstance(frozen_rows, int) or frozen_rows <= 0 or (limit is not None and frozen_rows >= limit):
                raise ValueError(
                    f"{cls} expected `frozen_rows` to be an integer in [1, input_dim - 1] = [1, {limit - 1}]. "
                    f"Received: frozen_rows={frozen_rows!r}. To freeze the whole table use frozen=['embeddings'].")
        self.frozen_rows = frozen_rows
        chosen = [n for n, on in (("frozen_mask", self.frozen_mask), ("adapter_rank", adapter_rank),
                                  ("frozen_rows", frozen_rows)) if on]
        if len(chosen) > 1:
            raise ValueError(f"{cls} takes one of frozen_mask, adapter_rank, frozen_rows. "
                             f"Received: {', '.join(chosen)}. Choose one.")

    def _has_variant(self):
        return self.frozen_mask or self.adapter_rank or self.frozen_rows

    def _frozen_names(self):
        names = super()._frozen_names()
        if self._has_variant():
            names.add(self._variant_weight)
        return names

    def _base_variable(self):
        return getattr(self, "_" + self._variant_weight)

    def _build_extras(self):
        w = self._variant_weight
        base = self._base_variable()
        shape = tuple(base.shape)
        # always a copy: under the torch backend a slice or cast can share the base's storage,
        # and the optimizer's in-place updates of the companion would then write into the frozen weight
        copy_base = lambda shape, dtype=None: ops.copy(ops.cast(ops.convert_to_tensor(base), dtype))  # noqa: E731
        if self.frozen_mask:
            if self._mask_value is not None and tuple(self._mask_value.shape) != shape:
                raise ValueError(
                    f"{self._display_name()} '{self.name}' expected `frozen_mask` with the {w}'s shape {shape}. "
                    f"Received: shape {tuple(self._mask_value.shape)}. Pass a boolean mask of shape {shape}.")
            mask = self._mask_value
            self._add_extra_weight(
                name=f"{w}_frozen_mask", shape=shape, dtype="bool", trainable=False,
                initializer=(lambda shape, dtype=None: ops.convert_to_tensor(np.array(mask))) if mask is not None else "zeros")
            self._add_extra_weight(name=f"{w}_trainable", shape=shape, initializer=copy_base, trainable=True)
        if self.adapter_rank:
            rows = int(np.prod(shape[:-1]))
            self._add_extra_weight(name=f"{w}_adapter_a", shape=(rows, self.adapter_rank),
                                   initializer="he_uniform", trainable=True)
            self._add_extra_weight(name=f"{w}_adapter_b", shape=(self.adapter_rank, shape[-1]),
                                   initializer="zeros", trainable=True)
        if self.frozen_rows:
            self._add_extra_weight(
                name=f"{w}_trainable_rows", shape=(shape[0] - self.frozen_rows,) + shape[1:], trainable=True,
                initializer=lambda shape, dtype=None: ops.copy(
                    ops.cast(ops.convert_to_tensor(base)[self.frozen_rows:], dtype)))

    def _extra_variable(self, suffix):
        return getattr(self, f"{self._variant_weight}_{suffix}")

    def _extra(self, suffix):
        # as a tensor: JAX (0.10) refuses a Keras variable handed to jnp functions such as where
        return ops.convert_to_tensor(self._extra_variable(suffix))

    def _effective(self, value):
        """The weight the layer computes with, from the frozen base ``value``."""
        if self._has_variant():
            value = ops.convert_to_tensor(value)
        if self.frozen_mask:
            return ops.where(self._extra("frozen_mask"), value, self._extra("trainable"))
        if self.adapter_rank:
            delta = ops.matmul(self._extra("adapter_a"), self._extra("adapter_b"))
            delta = ops.reshape(delta, value.shape) * (self.adapter_alpha / self.adapter_rank)
            return ops.add(value, ops.cast(delta, value.dtype))
        if self.frozen_rows:
            return ops.concatenate([value[: self.frozen_rows], self._extra("trainable_rows")], axis=0)
        return value

    def assign_pretrained(self, value):
        """Set the frozen weight and start the trainable companion from the same values.

        >>> layer = MixedDense(4, adapter_rank=2); layer.build((None, 3))   # doctest: +SKIP
        >>> layer.assign_pretrained(np.ones((3, 4)))
        """
        base = self._base_variable()
        base.assign(value)
        if self.frozen_mask:
            self._extra_variable("trainable").assign(value)
        if self.frozen_rows:
            self._extra_variable("trainable_rows").assign(np.asarray(value)[self.frozen_rows:])

    def get_config(self):
        config = super().get_config()
        config.update({"frozen_mask": True if self.frozen_mask else None,
                       "adapter_rank": self.adapter_rank, "adapter_alpha": self.adapter_alpha})
        if self._supports_rows:
            config["frozen_rows"] = self.frozen_rows
        return config
