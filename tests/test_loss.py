import itertools

import pytest
import torch

from spatialdc.trainer.loss import affinity_loss, fused_affinity_loss, one_hot_targets
from spatialdc.trainer.precision import dense_autocast


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


def _reference(z, y, w):
    return affinity_loss(torch.nn.functional.normalize(z, dim=-1), y, w)


@pytest.mark.parametrize("targets", ["one-hot", "rpd"])
def test_fused_loss_and_gradient_equal_the_reference_on_random_inputs(targets):
    g = torch.Generator().manual_seed(3)
    z = torch.randn(4, 3000, 20, generator=g)
    y = (one_hot_targets(torch.randint(0, 3, (4, 3000), generator=g), 3) if targets == "one-hot"
         else torch.randn(4, 3000, 1, generator=g))
    w = (torch.rand(4, 3000, generator=g) > 0.3).float() * torch.rand(4, 3000, generator=g)  # any weights in [0, 1]
    z1, z2 = z.clone().requires_grad_(), z.clone().requires_grad_()
    ref, fused = _reference(z1, y, w), fused_affinity_loss(z2, y, w)
    ref.backward()
    fused.backward()
    # float32 sums over 3000 bins: agreement to 1e-5 relative is what rounding allows
    assert torch.allclose(fused, ref, rtol=1e-5)
    assert torch.allclose(z2.grad, z1.grad, rtol=1e-4, atol=1e-5 * float(z1.grad.abs().max()))


def test_fused_loss_equals_the_reference_on_real_mixtures(small_dataset):
    from spatialdc.pipeline.shards import ShardSet, expand_shards
    from spatialdc.trainer.data import DeepClusteringDataset, input_stats
    from spatialdc.trainer.model import DeepClusteringNet

    shards = ShardSet(expand_shards(str(small_dataset / "train-*.h5")))
    data = DeepClusteringDataset(shards, "bpd", input_stats(shards))
    batch = [data[i] for i in range(4)]
    x = torch.stack([b["x"] for b in batch])  # (4, T, F)
    y = one_hot_targets(torch.stack([b["y"] for b in batch]).reshape(4, -1), 2)
    w = torch.stack([b["w"] for b in batch]).reshape(4, -1)
    torch.manual_seed(0)
    model = DeepClusteringNet(257, 32, 1, 20, 0.0)
    z = model(x, normalize=False).reshape(4, -1, 20)
    z1, z2 = z.detach().clone().requires_grad_(), z.detach().clone().requires_grad_()
    ref, fused = _reference(z1, y, w), fused_affinity_loss(z2, y, w)
    ref.backward()
    fused.backward()
    assert torch.allclose(fused, ref, rtol=1e-5)
    assert torch.allclose(z2.grad, z1.grad, rtol=1e-4, atol=1e-5 * float(z1.grad.abs().max()))
    # the bf16 output layer (emulated on CPUs without bf16): the same loss to bf16's ~3 significant digits
    with dense_autocast(model, True):
        bf16 = fused_affinity_loss(model(x, normalize=False).reshape(4, -1, 20), y, w)
    assert torch.allclose(bf16, ref, rtol=2e-2)
