"""Helpers shared by Tagbase's management commands (``tagbase <command>``)."""

from __future__ import annotations

import getpass

from tagbase.accounts.actors import Actor


def cli_actor() -> Actor:
    """Who a command typed at a shell acts as: no Tagbase user (the operator has shell access,
    which is above every role), labelled ``cli:<OS account>`` so operations stay attributable."""
    try:
        name = getpass.getuser()
    except (OSError, KeyError):  # no passwd entry / no LOGNAME, e.g. some containers
        name = "unknown"
    return Actor.system(f"cli:{name}")
