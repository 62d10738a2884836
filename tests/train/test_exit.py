"""The settle at exit under gloo (train/distributed.py): it reads gloo's worker threads from /proc, waits while
one is running, and goes on once they sleep. A thread named as gloo names its workers stands in for one: gloo's
own are idle between collectives, and nothing here can hold one running on demand."""

import ctypes
import hashlib
import sys
import threading
import time

import pytest
import torch
import torch.distributed as dist

from visual_rft.train import distributed
from visual_rft.train.distributed import busy_gloo_threads

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/task")
PR_SET_NAME = 15


class RunloopStandIn(threading.Thread):
    """A thread named `pt_gloo_runloop` that computes (outside the GIL, as gloo's do) until `stop` is set, then
    sleeps until `done` is."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop, self.done, self.named = threading.Event(), threading.Event(), threading.Event()

    def run(self):
        ctypes.CDLL(None).prctl(PR_SET_NAME, b"pt_gloo_runloop")
        self.named.set()
        data = bytes(1 << 24)
        while not self.stop.is_set():
            hashlib.sha256(data).digest()  # the GIL released inside, on this thread alone
        self.done.wait()


@pytest.fixture
def gloo_world():
    """A gloo process group of one, as join_world makes for fsdp2 in one process."""
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    t = torch.ones(3)  # [3]
    dist.all_reduce(t)
    yield
    dist.destroy_process_group()


def test_gloo_workers_read_as_asleep_between_collectives(gloo_world):
    deadline = time.monotonic() + 2.0  # a worker may still be freeing the all-reduce's work for a moment
    while busy_gloo_threads() != 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert busy_gloo_threads() == 0


def test_a_running_worker_is_busy_and_the_settle_waits_for_it(gloo_world, monkeypatch):
    monkeypatch.setattr(distributed, "GLOO_SETTLE_S", 1.0)
    worker = RunloopStandIn()
    worker.start()
    worker.named.wait()
    try:
        assert max(busy_gloo_threads() for _ in range(20)) == 1
        start = time.monotonic()
        distributed._settle()  # the worker never sleeps: the settle waits its longest
        assert time.monotonic() - start >= 1.0
        worker.stop.set()  # now it sleeps: the settle takes its five looks and goes on
        time.sleep(0.1)
        start = time.monotonic()
        distributed._settle()
        took = time.monotonic() - start
        assert busy_gloo_threads() == 0 and 0.2 <= took < 0.6
    finally:
        worker.stop.set()
        worker.done.set()
