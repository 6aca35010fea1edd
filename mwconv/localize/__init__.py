"""``mwconv compare``: layer-by-layer comparison of an imported model with its source,
the first diverging layer, and a self-contained HTML report of the per-layer errors.

>>> result = compare("model.onnx", "model.keras")          # doctest: +SKIP
>>> result.ok, result.describe_divergence()
(True, 'no divergence: 24 paired tensors agree')
"""

from mwconv.localize.compare import compare
from mwconv.localize.result import SCHEMA, Comparison, Row

__all__ = ["SCHEMA", "Comparison", "Row", "compare"]
