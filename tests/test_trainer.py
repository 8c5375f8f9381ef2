import csv

import numpy as np
import pytest
import torch

from spatialdc.trainer.checkpoint import load_checkpoint, model_from_checkpoint
from spatialdc.trainer.config import TrainConfig
from spatialdc.trainer.data import DeepClusteringDataset, input_stats, vtlp_source_bins, warp_frequencies
from spatialdc.trainer.loop import train
from spatialdc.pipeline.shards import ShardSet, expand_shards


def tiny_config(dataset, **kw):
    base = dict(shards=str(dataset / "train-*.h5"), valid=str(dataset / "valid-*.h5"), target="bpd", layers=1,
                hidden=16, embedding_dim=4, batch_size=4, epochs=1, chunk_frames=40, num_workers=0)
    return TrainConfig(**dict(base, **kw))


@pytest.mark.parametrize("target", ["ds", "bpd", "rpd"])
def test_dataset_items_have_documented_shapes(small_dataset, target):
    shards = ShardSet(expand_shards(str(small_dataset / "train-*.h5")))
    item = DeepClusteringDataset(shards, target, input_stats(shards), chunk_frames=40)[0]
    assert item["x"].shape == item["w"].shape == (40, 257)
    assert item["y"].shape == ((40, 257, 1) if target == "rpd" else (40, 257))
    assert item["n"] == 2 and 0 < float(item["w"].mean()) < 1


def test_training_writes_a_self_describing_run_and_resumes(small_dataset, tmp_path):
    config = tiny_config(small_dataset)
    first = train(config, tmp_path, progress=False)
    assert first["epochs"] == 1 and first["steps"] == 2
    for name in ("best.pt", "last.pt", "log.csv", "loss.png", "config.json"):
        assert (tmp_path / name).is_file(), name
    state = load_checkpoint(tmp_path / "best.pt")
    model, cfg = model_from_checkpoint(state), TrainConfig.from_dict(state["config"])
    assert cfg == config and {"model", "stats", "step", "best_val", "versions"} <= set(state)
    # best.pt holds what inference needs; last.pt also what a resume needs
    assert not {"optimizer", "scheduler", "rng"} & set(state)
    assert {"model", "optimizer", "rng", "stats"} <= set(load_checkpoint(tmp_path / "last.pt"))
    # a new run directory starts over
    second = train(tiny_config(small_dataset, epochs=2), tmp_path / "x", progress=False)
    assert second["steps"] == 4
    with pytest.raises(ValueError, match=r"another config: --lr 0.001 -> 0.01"):  # what a step does may not change
        train(tiny_config(small_dataset, lr=1e-2), tmp_path, progress=False)


def test_resume_with_a_larger_budget_continues_at_the_saved_step(small_dataset, tmp_path):
    train(tiny_config(small_dataset, epochs=1), tmp_path, progress=False)
    out = train(tiny_config(small_dataset, epochs=2, max_minutes=60), tmp_path, progress=False)  # one more epoch
    assert out["steps"] == 4 and [h["epoch"] for h in out["history"]] == [1, 2]
    with open(tmp_path / "log.csv") as fh:
        assert [r["epoch"] for r in csv.DictReader(fh)] == ["1", "2"]
    assert load_checkpoint(tmp_path / "last.pt")["config"]["epochs"] == 2


def test_init_from_starts_with_the_weights_and_stats_of_another_run(small_dataset, tmp_path):
    train(tiny_config(small_dataset, epochs=2, lr=1e-2), tmp_path / "a", progress=False)
    source = load_checkpoint(tmp_path / "a" / "best.pt")
    # lr 1e-12: Adam moves no weight by more than ~1e-12, so the run ends where it started
    out = train(tiny_config(small_dataset, lr=1e-12, chunk_frames=0, init_from=str(tmp_path / "a" / "best.pt")),
                tmp_path / "b", progress=False)
    assert out["steps"] == 2  # fresh step count and optimizer
    tuned = load_checkpoint(tmp_path / "b" / "last.pt")
    for k, v in source["model"].items():
        assert torch.allclose(tuned["model"][k], v, atol=1e-9), k
    assert np.array_equal(tuned["stats"]["mean"], source["stats"]["mean"])
    assert tuned["history"][0]["valid_loss"] == pytest.approx(source["best_val"], abs=1e-6)
    with pytest.raises(ValueError, match="hidden"):
        train(tiny_config(small_dataset, hidden=8, init_from=str(tmp_path / "a" / "best.pt")), tmp_path / "c",
              progress=False)


def test_vtlp_warp_keeps_the_ends_and_moves_a_formant_by_alpha():
    assert np.allclose(vtlp_source_bins(257, 1.0), np.arange(257))
    for alpha in (0.9, 1.1):
        src = vtlp_source_bins(257, alpha)
        assert src[0] == 0 and src[-1] == pytest.approx(256) and np.all(np.diff(src) > 0)
    magnitude = np.full((257, 3), 0.1, np.float32)
    magnitude[60] = 5.0  # a spectral peak at bin 60, under the 0.6 x Nyquist knee
    label = (np.arange(257)[:, None] >= 60).repeat(3, axis=1).astype(np.uint8)  # source 1 owns bins >= 60
    weights = np.ones((257, 3), bool)
    for alpha, peak in ((1.1, 66), (0.9, 54)):
        mag_w, label_w, w_w = warp_frequencies(magnitude, label, weights, alpha)
        assert int(mag_w[:, 0].argmax()) == peak and mag_w.dtype == np.float32
        nearest = np.rint(vtlp_source_bins(257, alpha)).astype(int)
        assert np.array_equal(label_w[:, 0], (nearest >= 60).astype(np.uint8))  # labels travel with the spectrum
        assert label_w.dtype == np.uint8 and w_w.all()


def test_dataset_warps_training_chunks_reproducibly(small_dataset):
    shards = ShardSet(expand_shards(str(small_dataset / "train-*.h5")))
    stats = input_stats(shards)
    plain = DeepClusteringDataset(shards, "bpd", stats, chunk_frames=40)[1]
    warped_set = DeepClusteringDataset(shards, "bpd", stats, chunk_frames=40, freq_warp=0.1)
    first, again = warped_set[1], warped_set[1]
    assert torch.equal(first["x"], again["x"]) and torch.equal(first["y"], again["y"])
    assert first["x"].shape == plain["x"].shape and not torch.equal(first["x"], plain["x"])
    warped_set.set_epoch(1)
    assert not torch.equal(warped_set[1]["x"], first["x"])  # a new warp (and chunk) each epoch


def test_training_reduces_the_loss_on_a_tiny_set(small_dataset, tmp_path):
    out = train(tiny_config(small_dataset, epochs=6, lr=1e-2, target="ds"), tmp_path, progress=False)
    losses = [h["train_loss"] for h in out["history"]]
    assert losses[-1] < losses[0]


def test_bad_config_values_are_refused():
    with pytest.raises(ValueError, match="target"):
        TrainConfig(shards="a", valid="b", target="xyz")
    with pytest.raises(ValueError, match="dropout"):
        TrainConfig(shards="a", valid="b", dropout=1.5)
    with pytest.raises(ValueError, match="freq_warp"):
        TrainConfig(shards="a", valid="b", freq_warp=0.7)


def test_time_budget_cuts_the_run_short_and_still_saves(small_dataset, tmp_path):
    out = train(tiny_config(small_dataset, epochs=5, max_minutes=1e-6), tmp_path, progress=False)
    assert out["epochs"] == 1 and out["steps"] == 1  # one step, then the budget ends the epoch
    assert (tmp_path / "best.pt").is_file() and (tmp_path / "last.pt").is_file()


def test_config_from_dict_names_unknown_keys():
    config = TrainConfig("a", "b", hidden=8)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match=r"\['spam'\]"):
        TrainConfig.from_dict(dict(config.to_dict(), spam=1))


def test_inference_rebuilds_the_network_from_model_args_alone(small_dataset, tmp_path):
    """Checkpoints carry model_args; inference builds the network from them without the training config, and a
    checkpoint written before model_args (the shipped fm2-bpd) is read through the one conversion."""
    from spatialdc.trainer.checkpoint import model_args

    train(tiny_config(small_dataset), tmp_path, progress=False)
    for name in ("best.pt", "last.pt"):
        state = load_checkpoint(tmp_path / name)
        assert state["model_args"] == {"num_freqs": 257, "hidden": 16, "layers": 1, "embedding_dim": 4,
                                       "dropout": 0.3}
        state["config"] = {"spam": "a config of another version"}  # not read by inference
        assert model_from_checkpoint(state).model_args == state["model_args"]
    legacy = load_checkpoint(tmp_path / "best.pt")
    args = legacy.pop("model_args")
    assert model_args(legacy) == args
    model = model_from_checkpoint(legacy)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in legacy["model"].items())


def test_persistent_workers_give_the_batches_and_random_draws_of_no_workers(small_dataset):
    """The training loader keeps its workers across epochs; the epoch travels with each index (a persistent worker's
    copy of the dataset never sees set_epoch), so 0 and 2 workers give the same batches, epoch after epoch, and
    leave torch's global RNG (dropout) in the same state."""
    from spatialdc.trainer.loop import make_loaders

    config = tiny_config(small_dataset, freq_warp=0.1)  # chunk and warp are drawn per (seed, epoch, index)
    train_set = ShardSet(expand_shards(config.shards))
    valid_set = ShardSet(expand_shards(config.valid))
    stats = input_stats(train_set)
    seen = {}
    for workers in (0, 2):
        torch.manual_seed(0)
        loader, valid = make_loaders(TrainConfig(**dict(config.to_dict(), num_workers=workers)), train_set,
                                     valid_set, stats)
        assert loader.persistent_workers == (workers > 0)
        batches = []
        for epoch in range(2):
            loader.sampler.set_epoch(epoch)
            batches.append(list(loader))
            batches.append(list(valid))
        seen[workers] = batches, torch.get_rng_state()
    (zero, rng0), (two, rng2) = seen[0], seen[2]
    assert not torch.equal(zero[0][0]["x"], zero[2][0]["x"])  # epoch 2 draws other chunks and warps
    for a, b in zip(zero, two):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert all(torch.equal(x[k], y[k]) for k in ("x", "y", "w", "n"))
    assert torch.equal(rng0, rng2)
