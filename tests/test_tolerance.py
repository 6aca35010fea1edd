"""Tolerances grounded in the model (``mwconv.verification.floor``): the perturbation moves
floats by exactly the ulps it says and nothing else, the factor stays within [1, 100], an
explicit tolerance wins, and on a real deep network (Keras 3 EfficientNetV2B1, random
weights and statistics) an honest SavedModel export passes by default, fails at the old
fixed tolerance, and a tampered weight still fails."""

import numpy as np
import pytest

from mwconv.verification.compare import tolerance
from mwconv.verification.floor import MAX_FACTOR, ULPS, factor_for, grounded, noise, perturbed, scale_of


def test_perturbed_moves_each_float_by_exactly_its_ulps_and_leaves_ids_alone():
    x = np.array([[1.0, -2.5, 0.0, 3e-30], [1e6, -1e-3, 7.0, 0.5]], np.float32)
    ids = np.array([[1, 2, 3]], np.int64)
    mask = np.array([[True, False]])
    out = perturbed({"x": x, "ids": ids, "mask": mask}, seed=3)
    assert out["ids"] is ids and out["mask"] is mask
    moved = out["x"]
    assert moved.dtype == np.float32 and moved.shape == x.shape
    steps = np.abs(moved.astype(np.float64) - x) / np.abs(np.spacing(x)).astype(np.float64)
    np.testing.assert_allclose(steps, ULPS, rtol=1e-6)                        # every element, exactly 4 ulps
    signs = np.sign(moved.astype(np.float64) - x)
    assert set(signs.ravel()) == {-1.0, 1.0}                                  # up or down, at random
    np.testing.assert_array_equal(perturbed({"x": x}, seed=3)["x"], moved)    # deterministic per seed
    assert not np.array_equal(perturbed({"x": x}, seed=4)["x"], moved)
    half = perturbed({"x": x[:, 1:].astype(np.float16)}, ulps=1)["x"]
    assert half.dtype == np.float16 and np.all(half != x[:, 1:].astype(np.float16))
    special = perturbed({"x": np.array([np.inf, -np.inf, np.nan, 1.0], np.float32)})["x"]
    assert np.isposinf(special[0]) and np.isneginf(special[1]) and np.isnan(special[2]) and special[3] != 1.0


def test_noise_and_scale_ignore_what_is_not_finite_or_not_float():
    a = np.array([1.0, 2.0, np.nan, np.inf], np.float32)
    b = np.array([1.5, 2.0, np.nan, np.inf], np.float32)
    assert noise(a, b) == 0.5
    assert noise(a, b[:2]) == 0.0 and noise(np.arange(3), np.arange(3) + 1) == 0.0
    assert scale_of(a) == 2.0 and scale_of(np.array([], np.float32)) == 0.0 and scale_of(np.arange(5)) == 0.0


def test_the_factor_is_ten_floors_within_one_and_a_hundred():
    assert factor_for(0.0, 1e-5) == 1.0 and factor_for(None, 1e-5) == 1.0
    assert factor_for(1e-7, 1e-5) == 1.0                      # a quiet network keeps the defaults
    assert factor_for(3e-6, 1e-5) == pytest.approx(3.0)       # 10 x the floor
    assert factor_for(1.0, 1e-5) == MAX_FACTOR                # never looser than 100 x the defaults
    for kind in ("exact", "onnx", "source"):
        default_atol, default_rtol = tolerance(kind, np.dtype("float32"))
        atol, rtol, factor = grounded(kind, np.dtype("float32"), 2 * default_atol)
        assert (atol, rtol, factor) == pytest.approx((20 * default_atol, 20 * default_rtol, 20.0))
        assert grounded(kind, np.dtype("float32"), 0.0) == (default_atol, default_rtol, 1.0)
        assert grounded(kind, np.dtype("float32"), 1e9)[2] == MAX_FACTOR


def test_an_explicit_tolerance_wins_over_the_floor():
    assert grounded("exact", np.dtype("float32"), 1.0, atol=1e-7, rtol=0.0) == (1e-7, 0.0, 1.0)
    atol, rtol, factor = grounded("exact", np.dtype("float32"), 1.0, atol=1e-3)
    assert (atol, factor) == (1e-3, 1.0) and rtol == tolerance("exact", np.dtype("float32"))[1]


@pytest.fixture(scope="module")
def efficientnet(tmp_path_factory):
    """Keras 3's EfficientNetV2B1 at 64x64, random weights and BatchNormalization statistics
    (a freshly initialised one has mean 0, variance 1, which hides most of its depth), and
    its SavedModel export, unverified."""
    import keras

    import mwconv
    folder = tmp_path_factory.mktemp("efficientnet")
    model = keras.applications.EfficientNetV2B1(weights=None, input_shape=(64, 64, 3), classifier_activation=None)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.5, layer.moving_mean.shape).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2, layer.moving_variance.shape).astype("float32"))
            layer.beta.assign(rng.normal(0, 0.2, layer.beta.shape).astype("float32"))
    model.save(folder / "eff.keras")
    mwconv.export(model, "saved_model", folder / "serving", verify=False)
    return folder


@pytest.mark.slow
def test_an_honest_deep_export_passes_by_default_and_fails_at_the_fixed_tolerance(efficientnet):
    import mwconv
    grounded_report = mwconv.verify(efficientnet / "serving", efficientnet / "eff.keras", checks=["partition", "outputs"])
    outputs = grounded_report.check("outputs")
    assert grounded_report.ok, outputs.problems
    row = outputs.details["outputs"][0]
    assert row["noise_floor"] > 1e-6 and row["factor"] > 1.0                   # the network is noisy, measured
    assert row["max_abs"] > 1e-6                                                # over the old fixed atol
    assert "tolerance x" in outputs.message and "for the reference's noise floor" in outputs.message
    fixed = mwconv.verify(efficientnet / "serving", efficientnet / "eff.keras", checks=["outputs"], atol=1e-6, rtol=1e-5)
    assert not fixed.ok and fixed.check("outputs").details["outputs"][0]["factor"] == 1.0
    assert "the reference's noise floor" in fixed.check("outputs").problems[0]


@pytest.mark.slow
def test_a_tampered_weight_still_fails_the_grounded_check(efficientnet, tmp_path):
    import keras

    import mwconv
    model = keras.saving.load_model(efficientnet / "eff.keras")
    kernel = model.get_layer("predictions").kernel
    kernel.assign(np.asarray(kernel.value) * 1.01)
    model.save(tmp_path / "tampered.keras")
    report = mwconv.verify(tmp_path / "tampered.keras", efficientnet / "eff.keras", checks=["partition", "outputs"])
    assert report.check("partition").status == "fail" and report.check("outputs").status == "fail"
    assert "'predictions'" in report.check("outputs").problems[0]
