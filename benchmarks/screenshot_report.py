"""Screenshot an HTML separation report (``dceval --examples N``, ``dcsep REC --report``) in headless Chromium, to
look at a page the way a person's browser shows it, opened from the file system with no server and no network.

    python benchmarks/screenshot_report.py runs/x/sdr.report/report.html docs/report.png
    python benchmarks/screenshot_report.py stems/talk.report/report.html talk.png --height 1400

Needs Chromium (Debian: ``apt-get install -y chromium``, /usr/bin/chromium). It runs with a new, temporary profile,
no sandbox (as root), no GPU and no background networking; the PNG is the top ``--width`` x ``--height`` CSS pixels
of the page. Chromium takes the picture when the page has loaded, which does not wait for the audio players to read
their files: a player may then show "0:00" instead of "0:00 / 0:02" (a race of --screenshot, not of the page;
--virtual-time-budget made it worse). Take another if it matters.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def screenshot(page: Path, out: Path, width: int = 1400, height: int = 2400, chromium: str = "chromium",
               timeout_s: float = 120.0) -> Path:
    """Render ``page`` (a local HTML file) in headless Chromium and write a ``width`` x ``height`` PNG to ``out``.

    Raises:
        FileNotFoundError: no such page, or no Chromium. RuntimeError: Chromium failed or wrote no PNG.
    """
    page = page.resolve()
    if not page.is_file():
        raise FileNotFoundError(f"{page} not found; write one with dceval --examples N or dcsep REC --report")
    exe = shutil.which(chromium)
    if exe is None:
        raise FileNotFoundError(f"{chromium!r} not found; install it (Debian: apt-get install -y chromium)")
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--hide-scrollbars",
               f"--user-data-dir={profile}", f"--screenshot={out}",
               f"--window-size={width},{height}", page.as_uri()]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if run.returncode != 0 or not out.is_file():
        raise RuntimeError(f"chromium exited with {run.returncode} and wrote no {out}:\n{run.stderr[-2000:]}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("page", type=Path, help="the report.html to open")
    parser.add_argument("out", type=Path, help="PNG to write")
    parser.add_argument("--width", type=int, default=1400, help="window width, CSS pixels")
    parser.add_argument("--height", type=int, default=2400, help="window height, CSS pixels")
    parser.add_argument("--chromium", default="chromium", help="Chromium executable (name or path)")
    args = parser.parse_args(argv)
    try:
        path = screenshot(args.page, args.out, args.width, args.height, args.chromium)
    except (FileNotFoundError, RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
