"""Deep-clustering training (Hershey et al. 2016) with DS, BPD or RPD targets (Tzinis et al. 2019).

- config.py: the frozen TrainConfig; model.py: the BLSTM; precision.py: the step's arithmetic (dense_autocast)
- data.py, dynamic.py: training examples from shards, or drawn on the fly; loss.py: the affinity loss
- loop.py: train, read top to bottom; budget.py: time budgets; run_log.py: log.csv and loss.png
- checkpoint.py: self-describing checkpoints (model_args, training and inference states)
- device.py: --device (auto, cpu, cuda), the loader settings per device; schedule.py: lr scaling and warm-up
- distributed.py: several processes (DDP); cli.py: dctrain; glob_hint.py: the hint to quote a shard glob
- run_folder.py: --out checked, and held by one run (a lock file)
"""

# pyproject.toml maps the folder trainer/ to spatialdc.trainer; nothing installs a bare "trainer"
if __name__ != "spatialdc.trainer":
    raise ImportError(f"import spatialdc.trainer, not {__name__}: the project's packages live in the spatialdc "
                      f"namespace (pip install -e . installs it)")
