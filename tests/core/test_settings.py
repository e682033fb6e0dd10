import pytest

from vigil.settings import SettingsError, get_settings


@pytest.mark.parametrize(
    "var, value, match",
    [
        pytest.param("VIGIL_STAGE_RUNNER", "kubernetes-now", "VIGIL_STAGE_RUNNER", id="runner"),
        pytest.param("VIGIL_GPU_COUNT", "-2", "VIGIL_GPU_COUNT", id="gpu-negative"),
        pytest.param("VIGIL_GPU_COUNT", "two", "VIGIL_GPU_COUNT", id="gpu-nan"),
        pytest.param("VIGIL_GPU_POOL_SLOTS", "0", "VIGIL_GPU_POOL_SLOTS", id="pool"),
        pytest.param("VIGIL_SWEEP_POOL_SLOTS", "0", "VIGIL_SWEEP_POOL_SLOTS", id="sweep-pool"),
        pytest.param("VIGIL_STAGE_USER", "trainer", "VIGIL_STAGE_USER", id="user-name"),
    ],
)
def test_bad_settings_name_the_variable(monkeypatch, var, value, match):
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError, match=match):
        get_settings()


def test_defaults(monkeypatch, tmp_path):
    for v in ("VIGIL_DATABASE_URL", "VIGIL_STAGE_RUNNER", "VIGIL_GPU_COUNT"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("VIGIL_DATA_DIR", str(tmp_path))
    s = get_settings()
    assert s.embedded and s.stage_runner == "local" and s.gpu_count == -1
    assert s.pg_dir == tmp_path / "pg" and s.parquet_dir == tmp_path / "warehouse"
