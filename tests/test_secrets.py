"""An API key never enters a config (experiments/secret_guard.py): refused with exit 2 before
Hydra writes anything, wherever it is given, and never echoed."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from experiments import sweep
from experiments.loggers import build_logger
from experiments.secret_guard import RefuseSecrets, SecretInConfigError, refuse_secret_overrides

REPO = Path(__file__).resolve().parents[1]
FAKE_KEY = "FAKEKEY0123456789abcdefABCDEF"


def test_a_key_in_the_config_or_the_overrides_is_refused() -> None:
    cfg = OmegaConf.create({"logger": {**OmegaConf.to_container(OmegaConf.load(REPO / "conf/logger/comet.yaml")),
                                       "api_key": FAKE_KEY}})
    with pytest.raises(SecretInConfigError) as e:
        build_logger(cfg)
    assert FAKE_KEY not in str(e.value) and "COMET_API_KEY" in str(e.value)
    for arg in (f"logger.api_key={FAKE_KEY}", f"+logger.api_key={FAKE_KEY}", f"++logger.api_key={FAKE_KEY}"):
        with pytest.raises(SecretInConfigError) as e:
            refuse_secret_overrides(["logger=comet", arg])
        assert FAKE_KEY not in str(e.value) and "environment" in str(e.value)
    refuse_secret_overrides(["logger=comet", "logger.offline=true", "train.epochs=2"])  # fine


@pytest.mark.parametrize("hydra_node", [
    {"job": {"env_set": {"COMET_API_KEY": FAKE_KEY}}},
    {"job": {"env_set": {"HF_TOKEN": FAKE_KEY}}},
    {"callbacks": {"mine": {"_target_": "x.Y", "api_key": FAKE_KEY}}},
    {"launcher": {"setup": ["export OMP_NUM_THREADS=1", f"export COMET_API_KEY={FAKE_KEY}"]}},
    {"overrides": {"task": [f"+logger.api_key={FAKE_KEY}"]}},
])
def test_the_callback_refuses_a_key_in_hydras_node(hydra_node: dict, capsys: pytest.CaptureFixture[str]) -> None:
    config = OmegaConf.create({"seed": 0, "hydra": hydra_node})
    with pytest.raises(SystemExit) as e:
        RefuseSecrets().on_multirun_start(config=config)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "refused" in err and FAKE_KEY not in err and FAKE_KEY not in str(e.value)
    RefuseSecrets().on_run_start(config=OmegaConf.create({"seed": 0, "hydra": {"launcher": {"setup": [
        "export OMP_NUM_THREADS=1"]}, "job": {"env_set": {"OMP_NUM_THREADS": "1"}}}}))  # fine


def test_settings_that_only_look_like_keys_pass() -> None:
    """Whole words of the name count (TOKENIZERS_PARALLELISM is no token); a setup line that reads
    the key from elsewhere writes no key; deleting a key (~) gives none."""
    RefuseSecrets().on_multirun_start(config=OmegaConf.create({"seed": 0, "hydra": {
        "job": {"env_set": {"TOKENIZERS_PARALLELISM": "false"}},
        "launcher": {"setup": ["export TOKENIZERS_PARALLELISM=false", "export COMET_API_KEY=$(cat ~/.comet_key)"]},
        "callbacks": {"no_keys": {"_target_": "experiments.secret_guard.RefuseSecrets"}},
        "overrides": {"task": ["~logger.api_key"]}}}))


def test_the_environments_key_value_is_refused_wherever_it_appears(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMET_API_KEY", FAKE_KEY)
    with pytest.raises(SystemExit) as e:
        RefuseSecrets().on_run_start(config=OmegaConf.create({"logger": {"tags": [f"k-{FAKE_KEY}"]}}))
    assert e.value.code == 2 and "logger.tags[0]" in str(e.value) and FAKE_KEY not in str(e.value)


@pytest.mark.parametrize("override", [f"+hydra.job.env_set.COMET_API_KEY={FAKE_KEY}",
                                      f"hydra.launcher.setup=['export COMET_API_KEY={FAKE_KEY}']"])
def test_a_sweep_with_a_key_writes_nothing(tmp_path: Path, override: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc = sweep.main(["experiment=smoke", f"hydra.sweep.dir={tmp_path / 's'}", override, "--no-report"])
    err = capsys.readouterr().err
    assert rc == 2 and "refused" in err and FAKE_KEY not in err, err
    assert list(tmp_path.iterdir()) == []


def test_a_run_with_a_key_in_env_set_writes_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "experiments.train", f"hydra.run.dir={tmp_path / 'run'}",
                           f"+hydra.job.env_set.COMET_API_KEY={FAKE_KEY}"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "refused" in proc.stderr, proc.stderr[-3000:]
    assert FAKE_KEY not in proc.stdout + proc.stderr and not (tmp_path / "run").exists()
