"""The onnx package's own backend test data written by PyTorch's exporter
(``pytorch-converted``: nn modules with weights; ``pytorch-operator``: single
operators): every case imports with no --model and matches its reference
output, or is refused in one line that names the node and the reason. The
README's ONNX section lists the refusals."""

import glob
import os

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tests.helpers import run_cli

DATA = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
CASES = sorted(os.path.relpath(p, DATA) for kind in ("pytorch-converted", "pytorch-operator")
               for p in glob.glob(os.path.join(DATA, kind, "test_*")))
REFUSED = {   # case -> what the one-line refusal says (none today: every case imports)
}


def _arrays(folder, prefix):
    return [numpy_helper.to_array(onnx.load_tensor(f))
            for f in sorted(glob.glob(os.path.join(folder, "test_data_set_0", f"{prefix}_*.pb")))]


def test_the_backend_data_is_there():
    assert len(CASES) >= 100, f"expected the onnx package's pytorch backend data under {DATA}"


@pytest.mark.parametrize("case", CASES)
def test_backend_case(case, tmp_path):
    import mwconv
    folder = os.path.join(DATA, case)
    code, _, err = run_cli("import", os.path.join(folder, "model.onnx"), "-o", tmp_path / "m.keras")
    if case in REFUSED:
        assert code == 3 and REFUSED[case] in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "m.keras").exists()
        return
    assert code == 0, err
    model = mwconv.load_model(tmp_path / "m.keras")
    inputs, outputs = _arrays(folder, "input"), _arrays(folder, "output")
    inputs = inputs[:len(model.inputs)]          # old opsets also list initializers as inputs
    got = model(inputs[0] if len(inputs) == 1 else inputs)
    got = [np.asarray(g) for g in (got if isinstance(got, (list, tuple)) else [got])]
    assert len(got) == len(outputs)
    for g, want in zip(got, outputs):
        assert g.shape == want.shape
        finite = np.isfinite(want)                # some cases hold uninitialised doubles or NaN by design
        assert np.array_equal(np.isnan(g), np.isnan(want))
        scale = max(1.0, float(np.abs(want[finite]).max())) if finite.any() else 1.0
        assert np.abs(g[finite] - want[finite]).max(initial=0.0) <= 1e-5 * scale
