"""`rec-es run --nproc 2`: two processes x one thread, gloo on the CPU, the tiny slice without one user (119
validation users, so RecBole's DistributedSampler pads one duplicate), 2 epochs. One real distributed run is shared
by the run-directory, agreement, numbers and refused-resume checks; a second one has rank 1 killed after epoch 0's
checkpoint and is resumed on two processes, then compared with the first; the collective primitives and a dying
rank run without RecBole data; bad input never starts a process."""
from __future__ import annotations

import contextlib
import io
import json
import os
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from rec_es import read_per_user
from rec_es.cli.run import main
from rec_es.policy.errors import ConfigError, RecEsError
from rec_es.rundir.trace import read_trace
from rec_es.training import distributed
from rec_es.training.distributed import LaunchSpec

from conftest import DATASETS, REPO, tiny_recbole_config

RIG = Path(__file__).resolve().parent / "ddp_rig"
DROPPED_USER = "1"
TIMING = ("elapsed_seconds", "train_seconds", "eval_seconds", "test_seconds")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def odd_slice(root: Path) -> Path:
    """datasets/ml-100k-tiny without user 1: 119 users, an odd number for 2 ranks."""
    src = DATASETS / "ml-100k-tiny" / "ml-100k-tiny.inter"
    lines = src.read_text().splitlines(keepends=True)
    out = root / "ml-100k-odd"
    out.mkdir(parents=True)
    (out / "ml-100k-odd.inter").write_text(lines[0] + "".join(l for l in lines[1:] if l.split("\t")[0] != DROPPED_USER))
    return root


def records_without_timing(run_dir: Path) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in read_trace(run_dir).records]


def odd_config(root: Path, **overrides: Any) -> dict[str, Any]:
    return tiny_recbole_config(data_path=str(odd_slice(root)), dataset="ml-100k-odd", epochs=2, **overrides)


# --- the collective primitives and a dying rank, in two real gloo processes ------------------------------------
def test_collectives_agree_on_rank_0_and_a_dying_rank_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows come back in sampler order without the padded duplicate; the loss is the mean over ranks; a non-finite
    loss on one rank is seen by both; rank 1's different stop is overruled by rank 0's on both ranks; one LR. Then
    rank 1 is SIGKILLed while rank 0 waits in a collective: the launch ends, naming rank 1."""
    from ddp_targets import primitives_then_die

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    spec = LaunchSpec(nproc=2, ip="127.0.0.1", port=free_port())
    with pytest.raises(RecEsError, match=r"^rank 1 was killed by signal SIGKILL; the other ranks were stopped"):
        distributed.launch(spec, primitives_then_die, (str(tmp_path),))
    seen = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert seen[0] == seen[1]
    assert seen[0]["rows"] == [0, 1, 2, 3, 4]
    assert seen[0]["loss"] == [1.5, None]
    assert seen[0]["parts"] == [[1.0, 2.5], "nan"]
    assert seen[0]["decided"] == [False, True]
    assert seen[0]["disagreements"] == [[0, [1]]]
    assert seen[0]["lr"] == 0.1


def test_a_rank_dying_at_teardown_after_all_finished_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """Rank 1 finishes first and aborts as it exits: rank 0 still finishes its work (the last barrier held rank 1
    until then), and the launch returns with a warning naming rank 1 instead of failing."""
    from ddp_targets import done_then_abort_at_exit

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    spec = LaunchSpec(nproc=2, ip="127.0.0.1", port=free_port())
    distributed.launch(spec, done_then_abort_at_exit, (str(tmp_path),))
    assert (tmp_path / "rank0.done").read_text() == "done"
    assert "rank 1 was killed by signal SIGABRT while its process group was torn down" in caplog.text


# --- a: the shim leaves RecBole's GPU path alone ----------------------------------------------------------------
def test_gpu_asked_keeps_recboles_own_init_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """With CUDA available, use_gpu and a gpu_id, RecBole's own NCCL/CUDA code runs; without, gloo on the CPU."""
    calls = []
    monkeypatch.setattr(distributed, "_recbole_init_device", lambda self: calls.append("recbole"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cfg = type("C", (), {"final_config_dict": {"local_rank": 0, "gpu_id": "0,1", "use_gpu": True}})()
    distributed._init_device(cfg)
    assert calls == ["recbole"]
    assert not distributed.gpu_asked({"use_gpu": False, "gpu_id": "0"})
    assert not distributed.gpu_asked({"use_gpu": True, "gpu_id": ""})


# --- b, c, d: one real distributed run -------------------------------------------------------------------------
def run_cli(cwd: Path, args: list[str], **env: str) -> tuple[int, str]:
    """``rec-es run ARGS`` in ``cwd`` with ``env`` added (the spawned ranks get this worktree and the rig through
    PYTHONPATH, one thread each); returns the exit status and what it wrote to stderr."""
    env = {"PYTHONPATH": f"{REPO}{os.pathsep}{RIG}", "OMP_NUM_THREADS": "1", **env}
    saved = {k: os.environ.get(k) for k in env}
    here = os.getcwd()
    err = io.StringIO()
    os.environ.update(env)
    os.chdir(cwd)
    try:
        with contextlib.redirect_stderr(err):
            rc = main([*args, "--no-progress", "--quiet"])
    finally:
        os.chdir(here)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return rc, err.getvalue()


def two_ranks() -> list[str]:
    return ["--nproc", "2", "--ip", "127.0.0.1", "--port", str(free_port())]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`rec-es run --nproc 2` with rank 1's controller rigged to stop at epoch 0 (tests/integration/ddp_rig), each
    rank's own view written by the rig."""
    root = tmp_path_factory.mktemp("ddp")
    rig_out = root / "rig"
    rig_out.mkdir()
    cfg_file = root / "tiny.yaml"
    cfg_file.write_text(yaml.safe_dump(odd_config(root / "data", checkpoint_dir=str(root / "ckpt"))))
    rc, _ = run_cli(root, ["--config", str(cfg_file), *two_ranks(), "--output-dir", str(root / "run")],
                    REC_ES_DDP_RIG=str(rig_out))
    ranks = [json.loads((rig_out / f"rank{r}.json").read_text()) for r in (0, 1)]
    return {"rc": rc, "run": root / "run", "ranks": ranks, "config": cfg_file, "root": root}


def test_rank_0_alone_writes_a_complete_run_directory(ddp_run: dict[str, Any]) -> None:
    """Exit 0; the run directory holds rank 0's files only; the trace is complete and records the world size."""
    run = ddp_run["run"]
    assert ddp_run["rc"] == 0
    assert sorted(p.name for p in run.iterdir()) == ["best.pth", "config.yaml", "last.pth", "per_user", "summary.json",
                                                    "trace.jsonl"]
    trace = read_trace(run)
    assert trace.header["world_size"] == 2
    assert [r["epoch"] for r in trace.records] == [0, 1]
    assert trace.footer is not None and trace.footer["epochs_trained"] == 2
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best_epoch"] == trace.footer["best_epoch"]
    assert all(str(REPO) in r["rec_es_file"] for r in ddp_run["ranks"])  # the spawned ranks ran this worktree


def test_ranks_agree_when_one_rank_decides_otherwise(ddp_run: dict[str, Any]) -> None:
    """Rank 1's own controller said stop at epoch 0; both ranks trained the same epochs and kept the same best."""
    r0, r1 = ddp_run["ranks"]
    assert r1["own_stop"][0] is True and r0["own_stop"][0] is False
    assert r0["disagreements"] == r1["disagreements"] == [[0, [1]]]
    for key in ("epochs_trained", "stop_epoch", "best_epoch"):
        assert r0[key] == r1[key], key
    assert r0["epochs_trained"] == 2


def test_the_trace_loss_is_the_mean_over_ranks(ddp_run: dict[str, Any]) -> None:
    """Each rank's own epoch loss differs; the trace holds their mean."""
    r0, r1 = ddp_run["ranks"]
    records = read_trace(ddp_run["run"]).records
    for epoch, record in enumerate(records):
        a, b = r0["local_losses"][epoch], r1["local_losses"][epoch]
        assert a != b
        assert record["train_loss"] == pytest.approx((a + b) / 2, rel=1e-12)


def test_one_row_per_user_and_the_mean_of_one_process(ddp_run: dict[str, Any], in_tmp: Path) -> None:
    """The sidecar has the 119 validation users once each (the padded duplicate dropped), in the order one process
    evaluates them, with the same per-user values; its mean and the trace's ndcg@10 equal a one-process evaluation
    of best.pth."""
    from rec_es.training.trainer import EarlyStoppingTrainer
    from rec_es.training.compat import recbole_config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, init_seed

    run = ddp_run["run"]
    keys = yaml.safe_load(ddp_run["config"].read_text())
    keys["checkpoint_dir"] = str(in_tmp / "ckpt")
    config = recbole_config(get_model(keys["model"]), keys["dataset"], keys)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    _, valid_data, _ = data_preparation(config, dataset)
    model = get_model(keys["model"])(config, valid_data._dataset)
    trainer = EarlyStoppingTrainer(config, model, {"monitor": "ndcg@10", "patience": 3})
    single = trainer.evaluate(valid_data, load_best_model=True, model_file=str(run / "best.pth"))
    users = trainer.per_user_recorder.capture.take()

    best = read_trace(run).footer["best_epoch"]
    sidecar = read_per_user(run, "valid")
    assert len(sidecar.user_ids) == len(set(sidecar.user_ids.tolist())) == 119
    assert int(DROPPED_USER) not in set(dataset.id2token("user_id", sidecar.user_ids).astype(int).tolist())
    np.testing.assert_array_equal(sidecar.user_ids, users.user_ids)
    values = sidecar.at(best)["ndcg@10"]
    np.testing.assert_allclose(values, users.values["ndcg@10"], atol=1e-6)
    record = next(r for r in read_trace(run).records if r["epoch"] == best)
    assert record["valid"]["ndcg@10"] == single["ndcg@10"]
    assert round(float(np.mean(values)), 4) == single["ndcg@10"]


@pytest.mark.parametrize("nproc, fix", [(1, "resume it with --nproc 2"), (3, "resume it with --nproc 2")])
def test_resuming_with_another_world_size_is_refused(nproc: int, fix: str, ddp_run: dict[str, Any]) -> None:
    """In one process or in three, the run's world size is named with the fix; exit 2 and nothing in the run
    directory changes (no process is started)."""
    run = ddp_run["run"]
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    args = ["--resume", str(run), "--set", "epochs=4"]
    if nproc > 1:
        args += ["--nproc", str(nproc), "--ip", "127.0.0.1", "--port", str(free_port())]
    rc, err = run_cli(ddp_run["root"], args)
    assert rc == 2
    assert (f"was trained by 2 processes (world size 2) and would be resumed by {nproc}; every process restores its "
            f"own random state and data order, so a resume keeps the world size: {fix}") in err
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == before


def test_last_pth_holds_every_ranks_random_state(ddp_run: dict[str, Any]) -> None:
    """last.pth loads weights-only and holds one random state per rank (rank 0's is also its top-level 'rng'); the
    ranks' states differ (RecBole seeds each rank's model with seed + rank)."""
    data = torch.load(ddp_run["run"] / "last.pth", weights_only=True)
    assert data["world_size"] == 2 and len(data["rank_states"]) == 2
    r0, r1 = data["rank_states"]
    assert torch.equal(r0["rng"]["torch"], data["rng"]["torch"])
    assert not torch.equal(r0["rng"]["torch"], r1["rng"]["torch"])
    assert r0["sampler"] == r1["sampler"] == {"seed": 0, "epoch": 1}


# --- a rank killed after a checkpoint; the run resumed on two processes -------------------------------------------
@pytest.fixture(scope="module")
def killed_and_resumed(ddp_run: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """ddp_run's config again, with rank 1 SIGKILLed at the start of epoch 1 (after a barrier, so rank 0 has saved
    last.pth of epoch 0); then `--resume RUN --nproc 2`, each rank's view written by the rig."""
    root = tmp_path_factory.mktemp("ddp-killed")
    run, rig_out = root / "run", root / "rig"
    rig_out.mkdir()
    cfg = str(ddp_run["config"])
    killed_rc, killed_err = run_cli(root, ["--config", cfg, *two_ranks(), "--output-dir", str(run)],
                                    REC_ES_DDP_KILL="1:1")
    at_kill = read_trace(run)
    resumed_rc, resumed_err = run_cli(root, ["--resume", str(run), *two_ranks()], REC_ES_DDP_RIG=str(rig_out))
    ranks = [json.loads((rig_out / f"rank{r}.json").read_text()) for r in (0, 1)]
    return {"run": run, "killed": (killed_rc, killed_err), "at_kill": at_kill, "resumed": (resumed_rc, resumed_err),
            "ranks": ranks}


def test_a_killed_rank_leaves_a_resumable_run_directory(killed_and_resumed: dict[str, Any]) -> None:
    """The launcher names the killed rank and says how to continue; the directory keeps epoch 0 and last.pth, and
    `--resume` on two processes finishes it."""
    run = killed_and_resumed["run"]
    rc, err = killed_and_resumed["killed"]
    assert rc == 1
    assert ("rank 1 was killed by signal SIGKILL; the other ranks were stopped; "
            f"{run} keeps 1 evaluation (epochs 0-0) and last.pth: once the cause is fixed, continue it with "
            f"rec-es run --resume {run}") in err
    assert [r["epoch"] for r in killed_and_resumed["at_kill"].records] == [0]
    assert killed_and_resumed["at_kill"].footer is None
    rc, err = killed_and_resumed["resumed"]
    assert rc == 0, err
    assert read_trace(run).footer is not None


def test_the_resumed_run_repeats_the_uninterrupted_one(ddp_run: dict[str, Any],
                                                       killed_and_resumed: dict[str, Any]) -> None:
    """The killed-and-resumed run's trace (timing aside), summary and best weights equal the uninterrupted run's;
    each rank starts epoch 1 with the random state it had in the uninterrupted run and computes the same loss."""
    full, run = ddp_run["run"], killed_and_resumed["run"]
    assert records_without_timing(run) == records_without_timing(full)
    assert read_trace(run).header["world_size"] == 2 and "resumed_with_changes" not in read_trace(run).header
    a, b = (json.loads((d / "summary.json").read_text()) for d in (full, run))
    for key in ("best_epoch", "stop_epoch", "stop_reason", "best_valid_result", "test_result", "epochs_trained"):
        assert a[key] == b[key], key
    best_full, best_run = (torch.load(d / "best.pth", weights_only=True)["state_dict"] for d in (full, run))
    assert all(torch.equal(best_full[k], best_run[k]) for k in best_full)
    for straight, resumed in zip(ddp_run["ranks"], killed_and_resumed["ranks"]):
        assert resumed["rng_at_epoch"] == {"1": straight["rng_at_epoch"]["1"]}
        assert resumed["local_losses"] == straight["local_losses"][1:]
    assert killed_and_resumed["ranks"][0]["rng_at_epoch"] != killed_and_resumed["ranks"][1]["rng_at_epoch"]


# --- e: bad input, before any process starts --------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["--nproc", "0"], "--nproc must be an integer >= 1 (got 0)"),
    (["--nproc", "2", "--world-size", "1"], "--world-size 1 is smaller than --nproc 2"),
    (["--nproc", "2", "--group-offset", "1"], "--group-offset 1 with --nproc 2 names ranks 1..2, outside a world of 2"),
    (["--nproc", "1", "--world-size", "2", "--resume", "runs/x"],
     "--resume of a run on several machines (--world-size 2, --nproc 1) is not supported"),
    (["--nproc", "2", "--from-recbole", "x.pth"], "--from-recbole with --nproc is not supported yet"),
])
def test_bad_launch_arguments_exit_2(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Refused before any file is read or process started, with the argument named."""
    assert main(["--config", "missing.yaml", *args]) == 2
    assert message in capsys.readouterr().err


def test_a_port_in_use_exits_2(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A port another process listens on is refused before the ranks start."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["--config", "missing.yaml", "--nproc", "2", "--ip", "127.0.0.1", "--port", str(port)]) == 2
    assert f"--port {port} on 127.0.0.1 cannot be used for the rendezvous" in capsys.readouterr().err


@pytest.mark.parametrize("overrides, message", [
    ({"nproc": 2}, "nproc: is RecBole's distributed setting, which rec_es sets itself"),
    ({"eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "uni100"}},
     "--nproc needs full-ranking evaluation"),
])
def test_config_that_cannot_be_gathered_exits_2(overrides: dict[str, Any], message: str, in_tmp: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Keys rec_es sets itself, metrics and evaluation modes it does not gather are refused; nothing is written."""
    cfg = in_tmp / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_recbole_config(**overrides)))
    assert main(["--config", str(cfg), "--nproc", "2", "--ip", "127.0.0.1", "--port", str(free_port()),
                 "--output-dir", str(in_tmp / "run")]) == 2
    assert message in capsys.readouterr().err
    assert not (in_tmp / "run").exists()


@pytest.mark.parametrize("command, argv, why", [
    ("tune", ["--config", "x.yaml", "--space", "s.yaml"],
     "runs every trial in one process (Ray places the trials on its workers)"),
    ("compare", ["--config", "x.yaml", "--policies", "p.yaml"],
     "runs every job in one process (locally or as Ray tasks with --ray)"),
])
def test_nproc_is_run_only(command: str, argv: list[str], why: str, capsys: pytest.CaptureFixture[str]) -> None:
    """tune and compare refuse --nproc in one sentence (rec_es.cli.refuse_nproc), naming the option once, how the
    command spreads its work instead, and where several processes per training are supported."""
    import importlib

    module = importlib.import_module(f"rec_es.cli.{command}")
    assert module.main([*argv, "--nproc", "2"]) == 2
    assert capsys.readouterr().err == (
        f"rec-es {command}: error: --nproc: rec-es {command} {why}; several processes per training (RecBole's "
        "distributed data parallel) are rec-es run --nproc N only (docs/distributed.md)\n")


def test_check_launch_refuses_metrics_it_does_not_gather() -> None:
    """A metric whose data is not top-k rows or item ids (GAUC's mean ranks, AUC's scores) is refused; rec-es check
    already refuses value metrics on a full ranking, so this is the launcher's own guard."""
    keys = {"metrics": ["Recall", "GAUC"], "eval_args": {"mode": "full"}}
    with pytest.raises(ConfigError, match="metrics: GAUC needs rec.meanrank, which rec_es does not gather"):
        distributed.check_launch(LaunchSpec(nproc=2, port=free_port()), keys)


def test_check_launch_refuses_more_processes_than_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """With GPUs asked for, one process per GPU listed in gpu_id and seen by CUDA."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match="--nproc 2 is more processes than GPUs: gpu_id lists 2, CUDA sees 1"):
        distributed.check_launch(LaunchSpec(nproc=2, port=free_port()), {"gpu_id": "0,1", "use_gpu": True})
