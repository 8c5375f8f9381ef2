"""``python -m trainer`` (and ``torchrun ... -m trainer``) is ``dctrain``."""

from .cli import main

main()
