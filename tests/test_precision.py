"""--precision: the reference fp32 step is the step of earlier versions bit for bit; auto takes bf16 only where the
CPU has it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from spatialdc.pipeline.shards import ShardSet, expand_shards
from spatialdc.trainer import precision
from spatialdc.trainer.checkpoint import load_checkpoint
from spatialdc.trainer.data import DeepClusteringDataset, input_stats
from spatialdc.trainer.distributed import GlobalBatchSampler
from spatialdc.trainer.loop import train, validate
from spatialdc.trainer.loss import affinity_loss, one_hot_targets
from spatialdc.trainer.model import build_model
from tests.test_trainer import tiny_config


def test_fp32_reproduces_the_step_of_earlier_versions_bit_for_bit(small_dataset, tmp_path):
    config = tiny_config(small_dataset, epochs=2, precision="fp32", layers=2, dropout=0.3)
    train(config, tmp_path, progress=False)
    # Replay of the loop as it was before --precision: autograd through F.normalize and the low-rank loss
    torch.manual_seed(config.seed)
    train_set = ShardSet(expand_shards(config.shards))
    stats = input_stats(train_set)
    model = build_model(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    data = DeepClusteringDataset(train_set, "bpd", stats, config.chunk_frames, config.silence_db, config.seed,
                                 cache_bytes=int(config.cache_gb * 1e9))
    valid = DeepClusteringDataset(ShardSet(expand_shards(config.valid)), "bpd", stats, 0, config.silence_db,
                                  config.seed)
    valid_loader = DataLoader(valid, batch_size=config.batch_size, sampler=list(range(len(valid))))
    sampler = GlobalBatchSampler(len(data), config.batch_size, 0, 1, config.seed, drop_last=True)
    for epoch in range(config.epochs):
        data.set_epoch(epoch)
        sampler.set_epoch(epoch)
        # as in the loop: every DataLoader iterator draws a seed from the global RNG, and tqdm.auto's constructor
        # makes one more iterator than the loop uses
        for batch in tqdm(DataLoader(data, batch_size=config.batch_size, sampler=sampler), disable=True):
            x = batch["x"]
            b, t, f = x.shape
            h, _ = model.blstm(x)
            v = F.normalize(model.dense(model.dropout(h)).view(b, t, f, -1), dim=-1)
            y = one_hot_targets(batch["y"].reshape(b, -1), 2)
            loss = affinity_loss(v.reshape(b, -1, v.shape[-1]), y, batch["w"].reshape(b, -1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
            optimizer.step()
        validate(model, valid_loader, "bpd")  # iterating a DataLoader draws its seed from the global RNG
    saved = load_checkpoint(tmp_path / "last.pt")
    assert saved["precision"] == "fp32"
    for name, weight in model.state_dict().items():
        assert torch.equal(saved["model"][name], weight), name


def test_auto_takes_bf16_only_where_the_cpu_has_it(monkeypatch, small_dataset, tmp_path):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert not precision.native_bf16()
    assert precision.resolve("auto") == precision.StepMode(fused=True, dense_bf16=False)
    assert precision.resolve("fp32") == precision.REFERENCE
    assert precision.resolve("bf16").dense_bf16  # forced: emulated, with a warning
    train(tiny_config(small_dataset, precision="auto"), tmp_path, progress=False)
    assert load_checkpoint(tmp_path / "last.pt")["precision"] == "fp32+fused-loss"
    # a CPU with the instructions (simulated; oneDNN must also report bf16 support)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    assert precision.resolve("auto") == precision.StepMode(fused=True, dense_bf16=True)
    assert precision.resolve("auto").name == "bf16-dense+fused-loss"


def test_dense_autocast_puts_only_the_dense_layer_in_bf16_and_leaves_no_hook():
    """The caller's precision: dense_autocast gives the arithmetic of a torch.autocast block around the dense layer
    alone (values and gradients bit for bit), the BLSTM in float32 (CPU autocast around the whole forward would
    run the LSTM in bf16), and removes its hooks."""
    from spatialdc.trainer.model import DeepClusteringNet

    torch.manual_seed(0)
    model = DeepClusteringNet(257, 16, 2, 4, 0.3)
    x = torch.randn(2, 30, 257)
    torch.manual_seed(1)
    h, _ = model.blstm(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        dense = model.dense(model.dropout(h))
    assert h.dtype == torch.float32 and dense.dtype == torch.bfloat16
    expected = F.normalize(dense.float().view(2, 30, 257, 4), dim=-1)
    expected.sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    torch.manual_seed(1)
    with precision.dense_autocast(model, True):
        v = model(x)
    v.sum().backward()
    assert torch.equal(v, expected)
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads))
    assert not model.dense._forward_pre_hooks and not model.dense._forward_hooks
    assert model(x).dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
