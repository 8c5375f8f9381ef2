"""Evaluation: embeddings -> K-means -> binary masks -> inverse STFT -> BSS Eval, beside oracle masks."""
