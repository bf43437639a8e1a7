"""Per-class accuracy of conditional samples (``dgflow.metrics.per_class_accuracy`` and the reading of a
run's samples file in ``benchmarks/conditional.py``) against hand counts."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from dgflow import io
from dgflow.metrics import per_class_accuracy

ROOT = Path(__file__).resolve().parents[1]


def one_hot_logits(predicted: list[int], classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(predicted), classes).float() * 5 - 1


def test_per_class_accuracy_matches_hand_count():
    requested = torch.tensor([0, 0, 1, 1, 1, 2, 2, 2, 2])
    predicted = [0, 1, 1, 1, 0, 2, 0, 0, 0]
    # class 0: 1 of 2, class 1: 2 of 3, class 2: 1 of 4; overall 4 of 9
    res = per_class_accuracy(one_hot_logits(predicted, 3), requested)
    assert res["per_class"] == pytest.approx([1 / 2, 2 / 3, 1 / 4], abs=1e-15)
    assert res["accuracy"] == pytest.approx(4 / 9, abs=1e-15)
    assert res["min"] == pytest.approx(1 / 4, abs=1e-15) and res["worst_class"] == 2


def test_per_class_accuracy_rejects_bad_labels():
    logits = one_hot_logits([0, 1, 2], 3)
    with pytest.raises(ValueError, match="never requested"):
        per_class_accuracy(logits, torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match=r"lie in 0\.\.2"):
        per_class_accuracy(logits, torch.tensor([0, 1, 3]))
    with pytest.raises(ValueError, match="whole-number"):
        per_class_accuracy(logits, torch.tensor([0.0, 1.0, 2.0]))


def test_benchmark_reads_samples_file_with_a_fixed_classifier(tmp_path):
    """A 'classifier' that is a fixed function (the class is the column of the brightest pixel in row 0)
    on a samples file laid out as a conditional run writes it (uint8 NHWC ``x``, ``labels``)."""
    spec = importlib.util.spec_from_file_location("conditional_benchmark", ROOT / "benchmarks" / "conditional.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    labels = np.arange(20) % 4  # as a run asks: sample i has class i % 4
    drawn = labels.copy()
    drawn[[1, 5, 6, 10]] = [0, 2, 3, 0]  # wrong for samples of class 1, 1, 2, 2 -> class 1: 3/5, class 2: 3/5
    x = np.zeros((20, 8, 8, 1), dtype=np.uint8)
    x[np.arange(20), 0, drawn, 0] = 255
    io.write_npz(tmp_path / "step_0000.npz", {"x": x, "labels": labels})

    def classifier(images: torch.Tensor) -> torch.Tensor:
        assert images.shape[1:] == (1, 8, 8) and images.min() >= -1 and images.max() <= 1
        return images[:, 0, 0, :4]

    res = bench.samples_accuracy(classifier, tmp_path / "step_0000.npz", 4, batch_size=7)
    assert res["per_class"] == pytest.approx([1, 3 / 5, 3 / 5, 1], abs=1e-15)
    assert res["accuracy"] == pytest.approx(16 / 20, abs=1e-15)
    assert res["worst_class"] == 1 and res["min"] == pytest.approx(3 / 5, abs=1e-15)
