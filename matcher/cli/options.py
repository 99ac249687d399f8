"""Options shared by the commands, defined once so a flag means the same thing everywhere.

`--config/-C` names a TOML file or preset, `--set key=value` overrides any knob of it (on every command
that loads a config), `--top/-k` is the number of recommendations per request (`MatcherConfig.top`),
and `--json` prints machine-readable output, errors included.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from matcher.config import PRESETS, MatcherConfig, load_config, parse_overrides

ConfigOpt = Annotated[
    str | None,
    typer.Option("--config", "-C", help=f"TOML config file or preset ({', '.join(PRESETS)})."),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config knob, e.g. --set joint=false --set rrf_k=30 (repeatable)."),
]
TopOpt = Annotated[
    int | None,
    typer.Option("--top", "-k", min=1, help="Recommendations per request (the config's `top`)."),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON (errors too).")]


def cli_config(config: str | None, overrides: list[str] | None = None, **knobs: Any) -> MatcherConfig:
    """The config a command runs under: the file or preset, then `--set` pairs, then the command's own
    options (`None` leaves a knob as it is). Raises InputError naming the file or flag."""
    return load_config(config, **{**parse_overrides(overrides), **knobs})
