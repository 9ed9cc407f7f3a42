import numpy as np
import pytest

from edgecnn.metrics import agreement, best_threshold, binary_metrics, roc_auc


def test_binary_metrics_hand_computed():
    y = np.array([0, 0, 0, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.6, 0.3, 0.7, 0.4])
    m = binary_metrics(y, p, 0.5)
    assert m["confusion_matrix"] == [[3, 1], [1, 1]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["balanced_accuracy"] == pytest.approx((0.75 + 0.5) / 2)
    assert m["f1"] == pytest.approx(0.5)
    # AUC by pair counting: positives 0.7 beats all 4 negatives, 0.4 beats 0.1, 0.2, 0.3 → 7/8.
    assert m["roc_auc"] == pytest.approx(7 / 8)


def test_auc_ties_and_degenerate():
    assert roc_auc(np.array([0, 1]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    assert np.isnan(roc_auc(np.array([1, 1]), np.array([0.2, 0.3])))


def test_best_threshold_maximises_bac():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    p = np.clip(0.35 * y + rng.random(500) * 0.65, 0, 1)
    thr, bac = best_threshold(y, p)
    assert binary_metrics(y, p, thr)["balanced_accuracy"] == pytest.approx(bac)
    grid = [binary_metrics(y, p, t)["balanced_accuracy"] for t in np.linspace(0, 1, 201)]
    assert bac >= max(grid) - 1e-12


def test_agreement():
    a = agreement(np.array([0.1, 0.9, 0.6]), np.array([0.2, 0.8, 0.4]))
    assert a["agreement"] == pytest.approx(2 / 3)
    assert a["max_abs_dp"] == pytest.approx(0.2)
    with pytest.raises(ValueError):
        agreement(np.zeros(2), np.zeros(3))


def test_patient_bootstrap_interval():
    from edgecnn.metrics import patient_bootstrap_bac

    rng = np.random.default_rng(0)
    patients = np.repeat([f"p{i}" for i in range(30)], 100)
    y = (rng.random(patients.size) < 0.4).astype(int)
    # Half the patients are read perfectly, half are read at chance: the score depends on
    # which patients are drawn, so the interval must be wide (patch-level iid would be ±0.01).
    good = np.isin(patients, [f"p{i}" for i in range(15)])
    p = np.where(good, y, rng.random(patients.size))
    point = binary_metrics(y, p, 0.5)["balanced_accuracy"]
    lo, hi = patient_bootstrap_bac(y, p, patients, 0.5)["balanced_accuracy_ci95"]
    assert lo < point < hi and hi - lo > 0.08
    # Identical patients: nothing varies between them, the interval is narrow.
    p_same = np.clip(y * 0.6 + rng.random(patients.size) * 0.5, 0, 1)
    lo2, hi2 = patient_bootstrap_bac(y, p_same, patients, 0.55)["balanced_accuracy_ci95"]
    assert hi2 - lo2 < (hi - lo) / 2
    assert patient_bootstrap_bac(y[:100], p[:100], patients[:100], 0.5)["balanced_accuracy_ci95"] is None


def test_per_patient_rows_add_up():
    from edgecnn.metrics import patient_report

    patients = np.array(["a"] * 6 + ["b"] * 2)
    y = np.array([1, 1, 0, 0, 0, 0, 1, 0])
    p = np.array([.9, .2, .8, .1, .1, .1, .7, .6])
    r = patient_report(y, p, patients, 0.5)
    a, b = r["per_patient"]
    assert (a["patient"], a["tp"], a["fn"], a["fp"], a["tn"]) == ("a", 1, 1, 1, 3) and a["accuracy"] == pytest.approx(4 / 6)
    assert (b["tp"], b["fp"], b["n_idc"]) == (1, 1, 1)
    assert r["largest_patient"] == {"patient": "a", "share": 0.75} and r["n_patients"] == 2
    cm = binary_metrics(y, p, 0.5)["confusion_matrix"]
    assert [[sum(x["tn"] for x in (a, b)), sum(x["fp"] for x in (a, b))],
            [sum(x["fn"] for x in (a, b)), sum(x["tp"] for x in (a, b))]] == cm
