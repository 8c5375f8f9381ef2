"""Render through an existing Dask cluster (a scheduler and two workers on 127.0.0.1) and compare with a local run."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spatialdc.pipeline import build, shard_index


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dask_cluster(tmp_path):
    dask_cli = Path(sys.executable).parent / "dask"
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([str(dask_cli), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        for _ in range(2):
            procs.append(subprocess.Popen([str(dask_cli), "worker", address, "--nthreads", "1", "--no-dashboard",
                                           "--local-directory", str(tmp_path / "dask")],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from dask.distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_render_on_an_existing_cluster_equals_a_local_render(dask_cluster, small_corpus, small_specs, tmp_path):
    part = {"test": small_specs["test"]}
    remote = build.render_dataset(part, small_corpus, tmp_path / "remote", shard_size=2, workers=0,
                                  scheduler=dask_cluster, progress=False)
    build.render_dataset(part, small_corpus, tmp_path / "local", shard_size=2, workers=0, progress=False)
    assert remote["mixtures"] == 4 and remote["shards"] == 2
    for name in ("test-00000.h5", "test-00001.h5"):
        assert (shard_index.file_sha256(tmp_path / "remote/fm2" / name)
                == shard_index.file_sha256(tmp_path / "local/fm2" / name)), name
