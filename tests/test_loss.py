import itertools

import pytest
import torch

from spatialdc.trainer.loss import affinity_loss, one_hot_targets


def naive_loss(v, y, w):
    """|VV^T - YY^T|_F^2 / (sum w)^2 with the L x L matrices formed explicitly."""
    out = []
    for b in range(v.shape[0]):
        vw, yw = v[b] * w[b, :, None], y[b] * w[b, :, None]
        out.append(((vw @ vw.T - yw @ yw.T) ** 2).sum() / w[b].sum() ** 2)
    return torch.stack(out).mean()


def test_low_rank_equals_naive_on_random_inputs():
    g = torch.Generator().manual_seed(0)
    v = torch.nn.functional.normalize(torch.randn(3, 50, 6, generator=g, dtype=torch.float64), dim=-1)
    y = one_hot_targets(torch.randint(0, 3, (3, 50), generator=g), 3).double()
    w = (torch.rand(3, 50, generator=g) > 0.3).double()
    assert torch.allclose(affinity_loss(v, y, w), naive_loss(v, y, w), rtol=1e-10)


def test_low_rank_equals_naive_for_real_valued_rpd_targets():
    g = torch.Generator().manual_seed(1)
    v = torch.randn(2, 40, 5, generator=g, dtype=torch.float64)
    y = torch.randn(2, 40, 1, generator=g, dtype=torch.float64)
    w = torch.ones(2, 40, dtype=torch.float64)
    assert torch.allclose(affinity_loss(v, y, w), naive_loss(v, y, w), rtol=1e-10)


@pytest.mark.parametrize("perm", list(itertools.permutations(range(3))))
def test_loss_is_zero_for_ideal_embeddings_under_any_label_permutation(perm):
    labels = torch.randint(0, 3, (2, 64), generator=torch.Generator().manual_seed(2))
    v = one_hot_targets(labels, 3)  # ideal: one orthogonal unit vector per source
    permuted = torch.tensor(perm)[labels]
    assert float(affinity_loss(v, one_hot_targets(permuted, 3))) < 1e-12
    assert float(affinity_loss(v, one_hot_targets(torch.zeros_like(labels), 3))) > 0.1


def test_a_source_that_owns_no_bin_keeps_its_column():
    labels = torch.zeros(1, 10, dtype=torch.long)  # source 1 of 2 is absent
    y = one_hot_targets(labels, 2)
    assert y.shape == (1, 10, 2) and float(y[..., 1].sum()) == 0
    assert float(affinity_loss(y, y)) == 0.0


def test_labels_outside_the_source_count_raise():
    with pytest.raises(ValueError, match="num_sources is 2"):
        one_hot_targets(torch.tensor([[0, 2]]), 2)
