"""torchrun / DistributedDataParallel on CPU (gloo): 2 processes give the one-process training steps."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.multiprocessing as mp

from bench.core.errors import BenchError
from bench.data.images import ImageStore
from bench.training import distributed
from bench.training.train import TrainingStep, optimization_step
from methods import build_method
from methods.backbones import build_backbone

ROOT = Path(__file__).resolve().parent.parent
OPTIONS = {"simpropnet": {}, "canet": {"history_probability": 0.0}}  # no randomness inside the loss


class FlatDataset:
    """Random images whose labels have no ignored pixels: every episode's loss weighs the same."""

    ignore_label = 255

    def read_sample(self, image_id):
        rng = np.random.default_rng(int(image_id))
        label = np.zeros((20, 24), dtype=np.uint8)
        y, x = rng.integers(0, 10, size=2)
        label[y:y + 10, x:x + 12] = int(image_id) % 3 + 1
        return rng.integers(0, 255, size=(20, 24, 3), dtype=np.uint8), label

    def binary_mask(self, label, class_id):
        return (label == class_id).astype(np.uint8)


def episodes(steps=3, batch=4):
    rng = np.random.default_rng(0)
    rows = []
    for step in range(steps):
        for _ in range(batch):
            class_id = int(rng.integers(1, 4))
            ids = [str(i) for i in rng.choice(np.arange(class_id - 1, 60, 3), size=2, replace=False)]
            rows.append((step, class_id, ids[0], ids[1], bool(rng.random() < 0.5), False, False))
    return pd.DataFrame(rows, columns=["step", "class_id", "query", "supports", "flip_query", "flip_support", "gray"])


def train_steps(name, info):
    """A few harness optimisation steps on the global batches of `episodes()`; losses and final weights."""
    torch.manual_seed(0)
    method = build_method(name, backbone="synthnet", width=8, aspp_rates=[1, 2, 3], dropout=0.0, init_std=None,
                          **OPTIONS[name])
    optimizer = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.05, momentum=0.9,
                                weight_decay=5e-4)
    step = distributed.wrap(TrainingStep(method), info, "cpu")
    method.train()
    store = ImageStore(FlatDataset(), 32)
    losses = [optimization_step(step, optimizer, store, rows, [1, 2, 3], "cpu", info)
              for _, rows in episodes().groupby("step")]
    return losses, method.trainable_state()


def _rank(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    with distributed.session("cpu") as (info, _):
        results = {name: train_steps(name, info) for name in OPTIONS}
    if info.is_main:
        torch.save(results, out)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_take_the_one_process_steps(tmp_path):
    out = tmp_path / "ddp.pt"
    mp.spawn(_rank, args=(2, free_port(), str(out)), nprocs=2, join=True)
    ddp = torch.load(out, weights_only=False)
    torch.set_num_threads(1)
    for name in OPTIONS:
        losses, state = train_steps(name, distributed.Dist())
        np.testing.assert_allclose(ddp[name][0], losses, rtol=1e-5, err_msg=name)
        assert ddp[name][1].keys() == state.keys()
        for key in state:
            torch.testing.assert_close(ddp[name][1][key], state[key], rtol=1e-5, atol=1e-6, msg=f"{name} {key}")
        assert losses[-1] < losses[0]


def test_global_batch_must_split_evenly():
    info = distributed.Dist(rank=1, world_size=3)
    with pytest.raises(BenchError, match="not a multiple of the 3 processes"):
        distributed.check_batch(4, info)
    rows = episodes(steps=1, batch=6)
    assert list(distributed.shard(rows, info).index) == [2, 3]


def test_torchrun_trains_one_cell_on_two_processes(tmp_path):
    """The whole command under torchrun: rank 0 alone prints and writes, the loss curve follows one process'.

    Dropout masks and the pixel-pooled loss (ignored pixels differ between slices) make the curves close,
    not equal, on real data; the test above checks the step itself exactly.
    """
    torch.manual_seed(0)
    torch.save(build_backbone("synthnet").state_dict(), tmp_path / "synthnet.pt")
    env = {**os.environ, "FSS_BENCH_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    common = ["train", "--methods", "simpropnet", "--dataset", "synthetic-tiny", "--profile", "tiny", "--splits", "1",
              "--backbone-weights", str(tmp_path / "synthnet.pt"), "--quiet"]
    subprocess.run([sys.executable, "-m", "bench", *common, "--checkpoints", str(tmp_path / "one")],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", str(free_port()), "-m", "bench",
                          *common, "--checkpoints", str(tmp_path / "two")],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    assert ddp.stdout.count("simpropnet split 1:") == 1
    one, two = (pd.read_csv(next((tmp_path / d).rglob("train_steps.csv"))) for d in ("one", "two"))
    assert len(one) == len(two) == 8
    np.testing.assert_allclose(two.loss, one.loss, rtol=0.1)
    assert next((tmp_path / "two").rglob("best.pt")).is_file()
