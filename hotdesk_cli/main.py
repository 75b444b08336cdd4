"""``hotdesk`` entry point: global options, then one sub-command module per area.

Each module in COMMAND_MODULES has ``register(subparsers)``; its handlers take the parsed
arguments and return an exit status.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Mapping, Sequence

from hotdesk.redact import config_secrets
from hotdesk.runtime import SchemaOutOfDate, setup_logging
from hotdesk.settings import ConfigError, load_config

COMMAND_MODULES = [
    "hotdesk_cli.core_commands",
    "hotdesk_cli.push_commands",
    "hotdesk_cli.emergency_commands",
    "hotdesk_cli.worker_commands",
    "hotdesk_cli.admin_commands",
    "hotdesk_cli.web_commands",
    "hotdesk_cli.provision_commands",
    "hotdesk_cli.demo_commands",
    "hotdesk_cli.run_commands",
    "hotdesk_cli.pnp_commands",
    "hotdesk_cli.rps_commands",
    "hotdesk_cli.agi_commands",
    "hotdesk_cli.esl_commands",
    "hotdesk_cli.simulate_commands",
    "hotdesk_cli.prov_commands",
    "hotdesk_cli.dialplan_commands",
    "hotdesk_cli.switch_commands",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hotdesk", description="Hot desking for Asterisk and FreeSWITCH.")
    parser.add_argument("--config", "-c", metavar="FILE",
                        help="INI config file (default: $HOTDESK_CONFIG, else ./hotdesk.ini "
                             "when there is one, else built-in defaults)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


LOCAL_CONFIG = "hotdesk.ini"


def find_config(given: str | None, environ: Mapping[str, str]) -> str | None:
    """--config, else $HOTDESK_CONFIG (set but empty = built-in defaults), else the
    current directory's hotdesk.ini (what ``scripts/demo`` writes), else defaults."""
    if given:
        return given
    if "HOTDESK_CONFIG" in environ:
        return environ["HOTDESK_CONFIG"] or None
    return LOCAL_CONFIG if os.path.isfile(LOCAL_CONFIG) else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.config = find_config(args.config, os.environ)
        args.cfg = load_config(args.config)
        setup_logging(args.cfg.log.level, secrets=config_secrets(args.cfg))
        status = int(args.handler(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not as a traceback at exit
        return status
    except BrokenPipeError:
        return _reader_went_away()
    except ConfigError as exc:
        print(f"hotdesk: configuration error: {exc}", file=sys.stderr)
        return 2
    except SchemaOutOfDate as exc:
        print(f"hotdesk: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _reader_went_away() -> int:
    """``hotdesk … | head -1``: the reader closed the pipe. Stop quietly; point stdout at
    /dev/null so the interpreter's final flush does not print a traceback either."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 1


if __name__ == "__main__":
    sys.exit(main())
