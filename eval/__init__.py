"""Evaluation: embeddings -> K-means -> binary masks -> inverse STFT -> BSS Eval, beside oracle masks.

- separate.py: the separation core every tool calls (load_model, embed, separate_mixture)
- evaluate.py: score test shards (dceval's library); report.py: CSV and tables; plots.py: figures;
  html_report.py + html_page.py: the pages to listen to
- count.py: speaker-count estimators (count head, eigenvalue rule)
- recording.py: a user's audio files (read whole or in blocks, check, level, write stems as they come);
  chunks.py: a recording separated chunk by chunk in constant memory; separator.py: the Separator API
- ship.py: ship a trained model into spatialdc.models (``python -m spatialdc.eval.ship``)
- dceval.py, dcsep.py, dccount.py: the command-line tools, thin click wrappers
"""

# pyproject.toml maps the folder eval/ to spatialdc.eval; nothing installs a bare "eval"
if __name__ != "spatialdc.eval":
    raise ImportError(f"import spatialdc.eval, not {__name__}: the project's packages live in the spatialdc "
                      f"namespace (pip install -e . installs it)")


def __getattr__(name: str):
    """``from spatialdc.eval import Separator`` without importing torch for every user of this package."""
    if name == "Separator":
        from .separator import Separator

        return Separator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
