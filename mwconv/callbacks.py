"""Keras callbacks. ``FrozenGuard`` stops training the moment a frozen weight moves.

>>> from mwconv.callbacks import FrozenGuard                          # doctest: +SKIP
>>> model.fit(x, y, epochs=5, callbacks=[FrozenGuard()])           # checks at each epoch end
>>> model.fit(x, y, callbacks=[FrozenGuard(every_n_steps=50)])     # and every 50 steps

Importing this module imports Keras (``import mwconv`` does not).
"""

import keras

from mwconv.errors import VerificationFailed
from mwconv.layers.statistics import weights_that_stay
from mwconv.manifest import sha256_array, weight_array


class FrozenWeightMoved(VerificationFailed):
    """A weight that training must leave alone changed during ``fit`` (exit 1 in the CLI)."""


class FrozenGuard(keras.callbacks.Callback):
    """Fingerprints (sha256) every weight that training must leave bit-identical when
    training begins: frozen weights, and the moving statistics of frozen
    BatchNormalization layers (not of those that train or opted in with
    ``update_statistics``). Checks them at each epoch end and, with ``every_n_steps``,
    every N training steps; on the first change it stops training and raises
    ``FrozenWeightMoved`` naming the weight and its layer (only digests are kept, so the
    guard costs no memory beside the model).

    Cost: one sha256 pass over the frozen bytes per check (about 1 GB/s on one core;
    ``benchmarks/train_step.py`` measures it beside an epoch).
    """

    def __init__(self, every_n_steps=None):
        super().__init__()
        if every_n_steps is not None and (isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int)
                                          or every_n_steps <= 0):
            raise ValueError(f"FrozenGuard expected `every_n_steps` to be a positive integer or None. "
                             f"Received: every_n_steps={every_n_steps!r}")
        self.every_n_steps = every_n_steps
        self.checks = 0
        self._expected = {}

    def on_train_begin(self, logs=None):
        self._sync()
        self._expected = {v.path: sha256_array(weight_array(v)) for v in weights_that_stay(self.model)}
        self.checks = 0

    def on_train_batch_end(self, batch, logs=None):
        if self.every_n_steps and (batch + 1) % self.every_n_steps == 0:
            self._check(f"step {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        self._check(f"epoch {epoch + 1}")

    def _sync(self):
        sync = getattr(self.model, "jax_state_sync", None)     # the JAX trainer keeps state apart mid-epoch
        if callable(sync):
            sync()

    def _check(self, when):
        self._sync()
        self.checks += 1
        variables = {v.path: v for v in self.model.weights}
        moved = [p for p, digest in self._expected.items()
                 if p in variables and sha256_array(weight_array(variables[p])) != digest]
        if not moved:
            return
        self.model.stop_training = True
        layer = moved[0].rsplit("/", 1)[0]
        more = f"; {len(moved) - 1} more moved: {', '.join(moved[1:6])}" if len(moved) > 1 else ""
        raise FrozenWeightMoved(f"frozen weight '{moved[0]}' changed during training ({when}): layer '{layer}', or "
                                f"something else outside the optimizer, assigns to it{more}")
