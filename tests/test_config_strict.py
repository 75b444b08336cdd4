"""A mistyped environment variable or a bad value stops hotdesk at start with one line
and exit status 2, instead of being ignored or failing on first use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hotdesk.settings import ConfigError, env_names, load_config


@pytest.mark.parametrize(("name", "suggestion"), [
    ("HOTDESK_PROVISIONING_ALLOW_NETWORK", "HOTDESK_PROVISIONING_ALLOW_NETWORKS"),
    ("HOTDESK_AMI_SECERT", "HOTDESK_AMI_SECRET"),
    ("HOTDESK_CONFG", "HOTDESK_CONFIG"),
    ("HOTDESK_PROMPTS_ASTERISK_LOGIN_KO", "HOTDESK_PROMPTS_ASTERISK_LOGIN_OK"),
])
def test_unknown_variable_is_refused_naming_the_closest_option(name, suggestion):
    with pytest.raises(ConfigError) as err:
        load_config(None, environ={name: "x"})
    assert str(err.value) == f"unknown environment variable {name}; did you mean {suggestion}?"


def test_every_real_option_and_the_harness_variables_are_accepted():
    assert "HOTDESK_AMI_SECRET" in env_names()
    load_config(None, environ={"HOTDESK_AMI_SECRET": "s", "HOTDESK_TEST_DATABASE_URL": "x",
                               "HOTDESK_BENCH_READY_DIR": "/", "HOTDESK_VENV": "/v",
                               "OTHER_THING": "ignored"})


@pytest.mark.parametrize(("env", "message"), [
    ({"HOTDESK_PROVISIONING_ALLOW_NETWORKS": "10.0.0.0/33"},
     "[provisioning] allow_networks: '10.0.0.0/33' is not a network"),
    ({"HOTDESK_METRICS_ALLOW_NETWORKS": "10.0.0.0/8, bogus"},
     "[metrics] allow_networks: 'bogus' is not a network"),
    ({"HOTDESK_PROVISIONING_BASE_URL": "prov.example.com/prov"},
     "[provisioning] base_url = 'prov.example.com/prov' is not an http:// or https:// URL"),
    ({"HOTDESK_RPS_SNOM_URL": "https://api.example:99999/"}, "[rps] snom_url"),
    ({"HOTDESK_AMI_PORT": "70000"}, "[ami] port = 70000 is not a port (1 to 65535)"),
    ({"HOTDESK_WEB_LISTEN": "127.0.0.1:80800"}, "[web] listen = '127.0.0.1:80800'"),
    ({"HOTDESK_PROVISIONING_TIMEZONE": "Europe/Berln"},
     "[provisioning] timezone = 'Europe/Berln' is not a known time zone"),
    ({"HOTDESK_PNP_MULTICAST_GROUP": "10.0.0.1"}, "[pnp] multicast_group = '10.0.0.1' is not"),
    ({"HOTDESK_LOG_LEVEL": "LOUD"}, "[log] level = 'LOUD'"),
    ({"HOTDESK_AGI_DB_THREADS": "0"}, "[agi] db_threads = 0 must be more than 0"),
    ({"HOTDESK_DATABASE_URL": "mysql://u:p@db/hotdesk"},
     "[database] url: unsupported database 'mysql'"),
    ({"HOTDESK_DATABASE_URL": "postgresql://u:p@db"}, "the PostgreSQL URL names no database"),
])
def test_bad_values_are_refused_at_load(env, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, environ=env)
    assert message in str(err.value)


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HOTDESK_")}
    script = Path(sys.executable).parent / "hotdesk"
    return subprocess.run([str(script), *args], env={**clean, **env}, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("env", [
    {"HOTDESK_AMI_SECERT": "x"},
    {"HOTDESK_DATABASE_URL": "mysql://u:p@db/hotdesk"},
    {"HOTDESK_PROVISIONING_ALLOW_NETWORKS": "10.0.0.0/33"},
])
def test_the_command_exits_2_with_one_line(env, tmp_path):
    for command in (["status"], ["web"]):
        proc = run(*command, env=env)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("hotdesk: configuration error: ")
        assert "Traceback" not in proc.stderr
