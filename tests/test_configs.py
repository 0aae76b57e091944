"""conf/: every job of every named grid composes and converts; bad overrides stop a sweep before it starts.

No training here: configs are composed with Hydra's compose API (and with the launcher's
own load_sweep_config via experiments.validate), converted with to_train_config (which
validates values), and `python -m experiments.sweep` is run on bad overrides to check
that it exits 2, lists the valid choices and creates nothing.
"""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from omegaconf import OmegaConf

from experiments import sweep, validate
from experiments.adapter import to_train_config
from experiments.schema import register_configs

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
GRIDS = {"smoke": 2, "default": 4, "convnext_vs_baseline": 24, "convnext_own_recipe": 12, "compute_matched": 12}
# What must be the same for both backbones inside one grid (everything but the backbone itself).
NOT_SHARED = {"model", "model_kwargs", "axes", "run_name", "out_dir", "optimizer", "hyp", "seed", "schedule",
              "init_weights", "init_scope"}

register_configs()


@pytest.fixture(autouse=True)
def _study_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The real study reads weights/data paths from the environment; give it stand-in files
    (validation checks that they exist; nothing here reads them) and a cached trunk."""
    stand_ins = tmp_path_factory.mktemp("study_files")
    for var, name in (("YOLOV5S_WEIGHTS", "yolov5s.pt"), ("COCO_YAML", "coco.yaml")):
        (stand_ins / name).write_text("stand-in")
        monkeypatch.setenv(var, str(stand_ins / name))
    monkeypatch.delenv("CONVNEXT_WEIGHTS", raising=False)
    monkeypatch.delenv("SLURM_PARTITION", raising=False)
    # the study's default trunk is a hub tag: taken as cached (validation only looks it up)
    from yolo_core.models import timm_backbone

    monkeypatch.setattr(timm_backbone, "_in_local_cache", lambda *a: True)


@pytest.fixture
def hydra_app() -> Iterator[Any]:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), job_name="train", version_base="1.3"):
        yield GlobalHydra.instance().hydra
    GlobalHydra.instance().clear()


def grid_axes(grid: str) -> dict[str, list[str]]:
    """hydra.sweeper.params of conf/experiment/<grid>.yaml, read as plain YAML (independent of the code)."""
    params = OmegaConf.load(CONF / "experiment" / f"{grid}.yaml").hydra.sweeper.params
    return {k: str(v).split(",") for k, v in params.items()}


def job_overrides(grid: str) -> list[list[str]]:
    axes = grid_axes(grid)
    return [[f"experiment={grid}", *(f"{k}={v}" for k, v in zip(axes, combo))]
            for combo in itertools.product(*axes.values())]


@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_every_job_of_every_grid_composes_and_converts(grid: str, hydra_app: Any) -> None:
    # 1. the public compose API, one job at a time, on the cartesian product of the YAML's axes
    jobs = job_overrides(grid)
    assert len(jobs) == GRIDS[grid]
    configs = []
    for ov in jobs:
        cfg = compose("config", overrides=ov)
        tc = to_train_config(cfg, out_dir="unused")
        configs.append(tc)
        axes = dict(o.split("=", 1) for o in ov[1:])
        assert tc.run_axes()["backbone"] == axes["model/backbone"]
        if "schedule" in axes:
            assert tc.schedule == axes["schedule"]
        if "train.seed" in axes:
            assert tc.seed == int(axes["train.seed"])
    # 2. the sweep plan (BasicSweeper's expansion + the launcher's load_sweep_config) gives the same jobs
    primary = hydra_app.compose_config("config", [f"experiment={grid}", "hydra.sweep.dir=/tmp/unused"],
                                       run_mode=RunMode.MULTIRUN, with_log_configuration=False)
    checks = validate.plan_sweep(primary, hydra_app.config_loader)
    assert [c.error for c in checks] == [None] * len(jobs)
    assert sorted(sorted(c.overrides) for c in checks) == sorted(sorted(j) for j in jobs)
    assert len({c.run_dir for c in checks}) == len(jobs)          # one directory per job
    # 3. within the grid, training settings differ only along the axes: the same optimizer and hyp
    #    for both backbones (the study's identical training conditions)
    skip = NOT_SHARED - {"optimizer", "hyp"}
    for a, b in itertools.combinations(configs, 2):
        da, db = a.to_dict(), b.to_dict()
        assert {k: v for k, v in da.items() if k not in skip} == {k: v for k, v in db.items() if k not in skip}


def test_study_grid_trains_both_backbones_under_identical_conditions() -> None:
    """The verdict's pairs: YOLOv5's SGD recipe for both backbones, the ImageNet trunk by default;
    ConvNeXt's own AdamW recipe only in its companion grid."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), job_name="train", version_base="1.3"):
        seen = set()
        for ov in job_overrides("convnext_vs_baseline"):
            tc = to_train_config(compose("config", overrides=ov), out_dir="unused")
            assert (tc.data, tc.epochs, tc.imgsz, tc.batch_size) == (os.environ["COCO_YAML"], 50, 640, 16)
            assert tc.optimizer == "sgd" and tc.hyp == to_train_config(compose("config", overrides=[
                "experiment=convnext_vs_baseline"]), out_dir="u").hyp
            assert (tc.hyp["lr0"], tc.hyp["momentum"], tc.hyp["weight_decay"], tc.hyp["warmup_bias_lr"]) == \
                (0.01, 0.937, 0.0005, 0.1)
            if tc.run_axes()["backbone"] == "cspdarknet_s":
                assert tc.model == "yolov5s"
            else:
                assert tc.model == "convnext_tiny"
                assert tc.model_kwargs == {"neck": "yolov5s", "pretrained": "convnext_tiny.in12k_ft_in1k",
                                           "drop_path_rate": 0.4}
            if tc.run_axes()["neck_init"] == "yolov5s":
                assert tc.init_weights == os.environ["YOLOV5S_WEIGHTS"]
            seen.add((tc.run_axes()["backbone"], tc.init_weights, tc.schedule, tc.seed))
        assert len(seen) == 24
        for ov in job_overrides("convnext_own_recipe"):
            tc = to_train_config(compose("config", overrides=ov), out_dir="unused")
            assert tc.model == "convnext_tiny" and tc.optimizer == "adamw"
            assert (tc.hyp["lr0"], tc.hyp["weight_decay"], tc.hyp["warmup_bias_lr"]) == (0.0002, 0.05, 0.0)
            assert tc.run_axes()["optimizer"] == "adamw" and tc.run_axes()["lr0"] == 0.0002
        sizes = {to_train_config(compose("config", overrides=ov), out_dir="u").model
                 for ov in job_overrides("compute_matched")}
        assert sizes == {"yolov5m", "yolov5l"}
        # a random trunk only on request
        tc = to_train_config(compose("config", overrides=["experiment=convnext_vs_baseline",
                                                          "model/backbone=convnext_tiny", "paths.convnext_weights=null"]),
                             out_dir="unused")
        assert tc.model_kwargs["pretrained"] is None
    GlobalHydra.instance().clear()


def test_embedded_set_grids_are_small_and_identical_per_backbone(hydra_app: Any) -> None:
    smoke = [to_train_config(compose("config", overrides=ov), out_dir="u") for ov in job_overrides("smoke")]
    assert {(t.epochs, t.imgsz, t.batch_size, t.workers, t.synthetic["n_train"], t.synthetic["n_val"])
            for t in smoke} == {(1, 64, 4, 0, 16, 8)}
    default = [to_train_config(compose("config", overrides=ov), out_dir="u") for ov in job_overrides("default")]
    assert {t.data for t in default} == {"synthetic"} and {t.epochs for t in default} == {9}
    convnext = [t for t in default if t.model == "convnext_tiny"]
    assert convnext and all(t.model_kwargs["drop_path_rate"] == 0.1 for t in convnext)
    # the grid keeps the embedded set's own defaults (conf/data/synthetic.yaml) apart from the epochs
    base = to_train_config(compose("config"), out_dir="u")
    for t in default:
        assert (t.imgsz, t.batch_size, t.optimizer, t.hyp["lr0"], t.synthetic) == \
               (base.imgsz, base.batch_size, base.optimizer, base.hyp["lr0"], base.synthetic)


@pytest.mark.parametrize("cluster,launcher", [("local", "LocalSweepLauncher"), ("slurm", "SlurmSweepLauncher"),
                                              ("sge", "SGELauncher")])
def test_cluster_option_picks_its_launcher(cluster: str, launcher: str, hydra_app: Any) -> None:
    cfg = compose("config", overrides=[f"cluster={cluster}"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_ == f"hydra_plugins.convnext_yolo_launchers.launcher.{launcher}"
    assert cfg.hydra.runtime.choices["hydra/launcher"] in ("submitit_local_sweep", "submitit_slurm_sweep",
                                                           "submitit_sge")
    if cluster == "local":
        assert (cfg.hydra.launcher.max_parallel, cfg.hydra.launcher.cpus_per_task) == (2, 1)
    if cluster == "slurm":
        assert cfg.hydra.launcher.additional_parameters.requeue is True and cfg.hydra.launcher.max_num_timeout > 0
    # launcher settings are typed too
    with pytest.raises(Exception, match="max_parallel|timeout_min"):
        compose("config", overrides=[f"cluster={cluster}", "hydra.launcher.timeout_min=soon"],
                return_hydra_config=True)


BAD = [
    (["model/backbone=cspdarknet_s,resnet_typo"],
     ["Could not find 'model/backbone/resnet_typo'", "Available options in 'model/backbone'", "convnext_tiny",
      "cspdarknet_s"]),
    (["model/backbone=resnet_typo"], ["Could not find 'model/backbone/resnet_typo'", "cspdarknet_s"]),
    (["schedule=linear,step"], ["Could not find 'schedule/step'", "cosine", "linear"]),
    (["cluster=pbs"], ["Available options in 'cluster'", "local", "sge", "slurm"]),
    (["train.epochs=abc"], ["could not be converted to Integer", "train.epochs"]),
    (["train.seed=0,1,x"], ["could not be converted to Integer", "full_key: train.seed"]),
    (["train.epochs=1,abc"], ["could not be converted to Integer", "train.epochs"]),
    (["train.hyp.lr0=0"], ["hyp.lr0=0.0 must be a number in (0, inf)"]),
    (["train.hyp.lr0=0.01,-0.1"], ["hyp.lr0=-0.1 must be a number in (0, inf)"]),
    (["train.hyp.lr0=nan"], ["hyp.lr0=nan must be a number in (0, inf)"]),
    (["train.hyp.lrf=-1"], ["hyp.lrf=-1.0 must be a number in [0, inf)"]),
    (["train.hyp.weight_decay=-1"], ["hyp.weight_decay=-1.0 must be a number in [0, inf)"]),
    (["train.hyp.momentum=5"], ["hyp.momentum=5.0 must be a number in [0, 1)"]),
    (["train.hyp.fliplr=2"], ["hyp.fliplr=2.0 must be a number in [0, 1]"]),
    (["train.hyp.warmup_epochs=-5"], ["hyp.warmup_epochs=-5.0 must be a number in [0, inf)"]),
    (["train.workers=-1"], ["workers=-1 must be a number in [0, inf)"]),
    (["train.patience=-1"], ["patience=-1 must be >= 0"]),
    (["train.epochs=0"], ["epochs=0 must be >= 1"]),
    (["train.imgsz=64,100"], ["imgsz=100 must be a positive multiple of 32"]),
    (["train.epoch=3"], ["Key 'epoch' not in 'TrainConf'"]),
    (["train.data=/nonexistent/data.yaml"], ["data='/nonexistent/data.yaml': no such dataset yaml"]),
    (["model/neck_init=random,yolov5s", "paths.yolov5s_weights=/nonexistent/yolov5s.pt"],
     ["2 of 4 job config(s) are invalid", "init_weights='/nonexistent/yolov5s.pt': no such weights file"]),
    (["++train.model_kwargs.drop_path_rate=0.2"],
     ["1 of 2 job config(s)", "model_kwargs ['drop_path_rate'] are not settings of model 'yolov5s'"]),
    (["train.hyp.lr0=interval(0.001,0.01)"], ["a grid sweeps lists (a,b) and range(...) only"]),
    (["paths.convnext_weights=/nonexistent/convnext.safetensors"],
     ["1 of 2 job config(s)", "pretrained weights file '/nonexistent/convnext.safetensors' not found"]),
]


@pytest.mark.parametrize("bad,expected", BAD, ids=[" ".join(b) for b, _ in BAD])
def test_bad_override_stops_the_sweep_before_anything_runs(bad: list[str], expected: list[str], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    sweep_dir = tmp_path / "sweep"
    rc = sweep.main(["experiment=smoke", f"hydra.sweep.dir={sweep_dir}", *bad])
    err = capsys.readouterr().err
    assert rc == 2, err
    for text in expected:
        assert text in err, f"{text!r} not in:\n{err}"
    assert "nothing was launched" in err
    assert not sweep_dir.exists() and list(tmp_path.iterdir()) == []


def test_a_hub_tag_that_cannot_be_fetched_stops_the_sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from yolo_core.models import timm_backbone

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(timm_backbone, "_in_local_cache", lambda *a: False)  # whatever this machine has cached
    rc = sweep.main(["experiment=smoke", f"hydra.sweep.dir={tmp_path / 's'}", "paths.convnext_weights=in12k_ft_in1k"])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot load pretrained weights 'convnext_tiny.in12k_ft_in1k' from the hub" in err, err
    assert "HF_HUB_OFFLINE is set" in err and not (tmp_path / "s").exists()


def test_one_bad_job_stops_all_and_names_only_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = sweep.main(["experiment=smoke", f"hydra.sweep.dir={tmp_path / 's'}", "train.imgsz=64,96,100"])
    err = capsys.readouterr().err
    assert rc == 2 and "2 of 6 job config(s) are invalid" in err and "train.imgsz=100" in err
    assert "train.imgsz=96 " not in err and not (tmp_path / "s").exists()


def test_plain_hydra_multirun_is_validated_too(tmp_path: Path) -> None:
    """python -m experiments.train -m ... (not through make sweep): the grid sweeper validates it too."""
    sweep_dir = tmp_path / "sweep"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "experiments.train", "-m", "experiment=smoke",
                          f"hydra.sweep.dir={sweep_dir}", "model/backbone=cspdarknet_s,nope"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Could not find 'model/backbone/nope'" in out.stderr and "convnext_tiny" in out.stderr
    assert not sweep_dir.exists()


def test_plan_lists_jobs_and_marks_completed_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep_dir = tmp_path / "sweep"
    assert sweep.main(["--plan", "experiment=default", f"hydra.sweep.dir={sweep_dir}"]) == 0
    out = capsys.readouterr().out
    assert "4 job(s) valid, 0 already completed" in out and not sweep_dir.exists()
    done = sweep_dir / "model" / "backbone=convnext_tiny,train.seed=0"
    done.mkdir(parents=True)
    (done / "summary.json").write_text('{"status": "completed"}')  # no identity: another config, maybe
    assert sweep.main(["--plan", "experiment=default", f"hydra.sweep.dir={sweep_dir}"]) == 2
    err = capsys.readouterr().err
    assert "1 of 4 job config(s) are invalid" in err and "completed under another config" in err
    assert "no run identity recorded" in err and str(done) in err


def test_a_python_api_run_and_a_hydra_run_of_one_config_get_the_same_axes(hydra_app: Any, tmp_path: Path) -> None:
    from yolo_core.train.config import TrainConfig

    weights = tmp_path / "yolov5s.pt"
    weights.write_text("stand-in")
    for ov, api in ((["data=synthetic"], TrainConfig(model="yolov5s", data="synthetic", optimizer="adamw")),
                    ([f"model/neck_init=yolov5s", f"paths.yolov5s_weights={weights}", "model/backbone=convnext_tiny"],
                     TrainConfig(model="convnext_tiny", init_weights=str(weights), optimizer="adamw"))):
        hydra_axes = to_train_config(compose("config", overrides=ov), out_dir="unused").run_axes()
        api_axes = api.run_axes()
        for key in ("backbone", "neck_init", "schedule", "optimizer", "data", "seed"):
            assert hydra_axes[key] == api_axes[key], key


def test_a_dataset_yaml_is_labelled_by_its_file(hydra_app: Any, tmp_path: Path) -> None:
    data = tmp_path / "coco128.yaml"
    data.write_text("stand-in")
    tc = to_train_config(compose("config", overrides=[f"train.data={data}"]), out_dir="unused")
    assert tc.data == str(data) and tc.run_axes()["data"] == "coco128"
    coco = to_train_config(compose("config", overrides=["data=coco", f"paths.coco_yaml={data}"]), out_dir="unused")
    assert coco.data == str(data) and coco.run_axes()["data"] == "coco128"


def test_every_training_setting_is_settable_from_the_command_line(hydra_app: Any) -> None:
    """`train.<field>` for every TrainConfig field, with TrainConfig's own name and default."""
    import dataclasses

    from experiments.schema import SET_BY_ENTRY_POINT
    from yolo_core.train.config import TrainConfig

    own = [f for f in dataclasses.fields(TrainConfig) if f.name not in SET_BY_ENTRY_POINT]
    assert set(SET_BY_ENTRY_POINT) == {"out_dir", "run_name", "axes"}
    assert set(compose("config").train) == {f.name for f in own}
    tc = to_train_config(compose("config", overrides=["train.compile=true", "train.amp_dtype=bfloat16",
                                                      "train.clip_grad=5", "train.iou_thres=0.5"]), out_dir="unused")
    assert (tc.compile, tc.amp_dtype, tc.clip_grad, tc.iou_thres) == (True, "bfloat16", 5.0, 0.5)
    # every group writes the TrainConfig field of the same name; what a plain data=coco run leaves
    # alone keeps TrainConfig's default (hyp: yolo_core/hyp.py), so no default is written twice
    base = to_train_config(compose("config", overrides=["data=coco", "optimizer=sgd"]), out_dir="unused")
    filled = {"data", "cache", "imgsz", "batch_size", "epochs", "workers",   # conf/data/coco.yaml
              "model", "model_kwargs", "init_scope", "init_weights", "optimizer", "schedule"}
    for f in own:
        if f.name not in filled:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            assert getattr(base, f.name) == default, f.name
    tc = to_train_config(compose("config", overrides=["train.backbone_lr_mult=0.1", "train.freeze_backbone_epochs=2",
                                                      "train.hyp.fliplr=0", "train.layer_decay=0.8"]), out_dir="u")
    assert (tc.backbone_lr_mult, tc.freeze_backbone_epochs, tc.hyp["fliplr"], tc.layer_decay) == (0.1, 2, 0.0, 0.8)



def test_a_weights_path_reaches_only_the_jobs_whose_option_uses_it(hydra_app: Any, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "mine.pt"
    weights.write_text("stand-in")
    for ni, want in (("random", None), ("yolov5s", str(weights))):
        tc = to_train_config(compose("config", overrides=[f"model/neck_init={ni}", f"paths.yolov5s_weights={weights}"]),
                             out_dir="u")
        assert tc.init_weights == want and tc.run_axes()["neck_init"] == ("random" if want is None else "mine")
    # without the file, the jobs that need it are refused by name; the others are fine
    monkeypatch.delenv("YOLOV5S_WEIGHTS")
    rc = sweep.main(["experiment=smoke", f"hydra.sweep.dir={tmp_path / 's'}", "model/neck_init=random,yolov5s"])
    err = capsys.readouterr().err
    assert rc == 2 and "2 of 4 job config(s) are invalid" in err and "train.init_weights" in err, err
    assert "this option needs the official yolov5s.pt, from YOLOV5S_WEIGHTS or paths.yolov5s_weights=PATH" in err
    assert not (tmp_path / "s").exists()


def test_convnext_gets_its_lower_drop_path_only_in_the_embedded_set_grids(hydra_app: Any, tmp_path: Path) -> None:
    """conf/model/backbone_in_grid/: a specialization of the backbone for one grid, by Hydra's
    defaults list; a single run, the study and other datasets keep the backbone's own 0.4."""
    data = tmp_path / "real.yaml"
    data.write_text("stand-in")
    rate = {tuple(ov): to_train_config(compose("config", overrides=["model/backbone=convnext_tiny", *ov]), out_dir="u")
            .model_kwargs["drop_path_rate"]
            for ov in ([], ["experiment=default"], ["experiment=smoke"], [f"train.data={data}"],
                       ["experiment=convnext_vs_baseline"])}
    assert rate == {(): 0.4, ("experiment=default",): 0.1, ("experiment=smoke",): 0.1,
                    (f"train.data={data}",): 0.4, ("experiment=convnext_vs_baseline",): 0.4}
    assert to_train_config(compose("config", overrides=["experiment=smoke"]), out_dir="u").model_kwargs == {}


def test_jobs_that_would_share_a_run_directory_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """paths.* and train.device are left out of directory names: two jobs differing only there
    would write one directory."""
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.write_text("stand-in")
    b.write_text("stand-in")
    rc = sweep.main(["experiment=smoke", f"hydra.sweep.dir={tmp_path / 's'}", "model/backbone=cspdarknet_s",
                     "model/neck_init=yolov5s", f"paths.yolov5s_weights={a},{b}"])
    err = capsys.readouterr().err
    assert rc == 2 and "1 of 2 job config(s) are invalid" in err and "the same run directory as job #0" in err, err
    assert not (tmp_path / "s").exists()
