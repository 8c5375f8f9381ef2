"""Shard globs on the command line: the shell expands an unquoted glob (``--shards data/fm2/test-*.h5``) into
several paths, of which click takes the first and refuses the others as "unexpected extra arguments". The commands
of ``dctrain``, ``dceval`` and ``dccount`` (:class:`GlobOptionsCommand`) then add how to quote it."""

from __future__ import annotations

import os
from typing import Sequence

import click

DIGITS = "0123456789"


def glob_of(paths: Sequence[str]) -> str:
    """A glob matching the given paths as the shell expanded them: their common start and end (without the
    numbers that tell shards apart), ``*`` between; e.g. ``data/fm2/test-*.h5``."""
    start = os.path.commonprefix(list(paths)).rstrip(DIGITS)
    end = os.path.commonprefix([p[::-1] for p in paths])[::-1].lstrip(DIGITS)
    end = end[max(0, len(start) + len(end) - min(len(p) for p in paths)):]  # start and end must not overlap
    return f"{start}*{end}"


def unquoted_glob_hint(args: Sequence[str], glob_options: Sequence[str]) -> str | None:
    """What to say when one of ``glob_options`` is followed by several paths (a glob the shell expanded), or None.

    Args:
        args: the command line after the program's name. glob_options: options that take a glob (``"--shards"``).
    """
    hints = []
    for i, arg in enumerate(args):
        name, eq, value = arg.partition("=")
        if name not in glob_options:
            continue
        values, j = ([value], i + 1) if eq else (list(args[i + 1: i + 2]), i + 2)
        while j < len(args) and not args[j].startswith("-"):
            values.append(args[j])
            j += 1
        if len(values) > 1:
            shown = ", ".join(values[:2]) + (", ..." if len(values) > 2 else "")
            hints.append(f"{name} got {len(values)} paths ({shown}): the shell expanded an unquoted glob into "
                         f"them. Quote the glob so that {name} gets it whole: {name} '{glob_of(values)}'")
    return "\n".join(hints) or None


class GlobOptionsCommand(click.Command):
    """A click command whose ``glob_options`` take glob patterns: a usage error caused by a glob the shell
    expanded says to quote it (``@click.command(cls=GlobOptionsCommand, glob_options=("--shards",))``)."""

    def __init__(self, *args, glob_options: Sequence[str] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.glob_options = tuple(glob_options)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        given = list(args)
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            hint = unquoted_glob_hint(given, self.glob_options)
            if hint:
                exc.message = f"{exc.message}\n{hint}"
            raise
