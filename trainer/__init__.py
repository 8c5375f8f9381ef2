"""Deep-clustering training (Hershey et al. 2016) with DS, BPD or RPD targets (Tzinis et al. 2019)."""
