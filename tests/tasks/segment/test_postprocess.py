"""Superpixel voting and the dense CRF against plain loops written from their definitions."""

import math

import numpy as np
import pytest
import torch

from zrenie.errors import ConfigError
from zrenie.tasks.segment.postprocess import dense_crf, superpixel_vote


def test_superpixel_vote_is_the_majority_of_each_slic_segment():
    from skimage.segmentation import slic

    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 20, 24, generator=g)
    labels = torch.randint(0, 3, (20, 24), generator=g)
    out = superpixel_vote(image, labels, 3, n_segments=12)
    segments = slic(image.permute(1, 2, 0).double().numpy(), n_segments=12, compactness=10.0, start_label=0,
                    channel_axis=-1)
    for s in np.unique(segments):
        inside = torch.from_numpy(segments == s)
        votes = [int((labels[inside] == c).sum()) for c in range(3)]
        assert (out[inside] == votes.index(max(votes))).all()


def _naive_crf(image, probs, iterations, w1, w2, ta, tb, tg):
    """The mean-field update written pixel pair by pixel pair."""
    k, h, w = probs.shape
    pix = [(y, x) for y in range(h) for x in range(w)]
    unary = [[-math.log(max(float(probs[c, y, x]), 1e-12)) for c in range(k)] for y, x in pix]
    q = [[math.exp(-u) for u in row] for row in unary]
    q = [[v / sum(row) for v in row] for row in q]
    kern = [[0.0] * len(pix) for _ in pix]
    for i, (yi, xi) in enumerate(pix):
        for j, (yj, xj) in enumerate(pix):
            if i == j:
                continue
            d2 = (yi - yj) ** 2 + (xi - xj) ** 2
            c2 = sum((float(image[c, yi, xi]) - float(image[c, yj, xj])) ** 2 for c in range(image.shape[0]))
            kern[i][j] = w1 * math.exp(-d2 / (2 * ta ** 2) - c2 / (2 * tb ** 2)) + w2 * math.exp(-d2 / (2 * tg ** 2))
    for _ in range(iterations):
        new = []
        for i in range(len(pix)):
            msg = [sum(kern[i][j] * q[j][c] for j in range(len(pix))) for c in range(k)]
            energy = [unary[i][c] + sum(msg) - msg[c] for c in range(k)]
            e = [math.exp(-v) for v in energy]
            new.append([v / sum(e) for v in e])
        q = new
    return torch.tensor(q).T.reshape(k, h, w)


def test_dense_crf_equals_the_update_written_pair_by_pair():
    g = torch.Generator().manual_seed(1)
    image = torch.rand(3, 4, 5, generator=g, dtype=torch.float64)
    probs = torch.softmax(torch.randn(3, 4, 5, generator=g, dtype=torch.float64), 0)
    args = (3, 2.0, 1.0, 2.0, 0.3, 1.5)
    ours = dense_crf(image, probs, *args)
    assert torch.allclose(ours, _naive_crf(image, probs, *args).double(), atol=1e-9)


def test_dense_crf_without_kernels_keeps_the_probabilities_and_refuses_large_images():
    probs = torch.softmax(torch.randn(2, 5, 6, dtype=torch.float64), 0)
    assert torch.allclose(dense_crf(torch.rand(3, 5, 6), probs, 2, 0.0, 0.0), probs, atol=1e-12)
    with pytest.raises(ConfigError, match="over the dense CRF's limit"):
        dense_crf(torch.rand(3, 200, 200), torch.rand(2, 200, 200))


def test_crf_cleans_an_isolated_wrong_pixel():
    image = torch.zeros(3, 9, 9)
    image[:, :, 5:] = 1  # two flat regions
    probs = torch.zeros(2, 9, 9)
    probs[0, :, :5], probs[1, :, 5:] = 0.8, 0.8
    probs[1, :, :5], probs[0, :, 5:] = 0.2, 0.2
    probs[:, 4, 2] = torch.tensor([0.4, 0.6])  # one pixel on the wrong side of the colour edge
    refined = dense_crf(image, probs, 5).argmax(0)
    assert refined[4, 2] == 0 and (refined[:, :5] == 0).all() and (refined[:, 5:] == 1).all()
