"""Which Ray token-auth mode joins a cluster: what the user says, else what the cluster answers.

A token file on this machine says nothing about the cluster: any earlier `ray start` (or
`ray get-auth-token --generate`) writes ``~/.ray/auth_token``. A driver that turns token auth on because of
that file joins a cluster without auth, but every trial actor it starts is then cancelled before it runs;
one that leaves it off cannot join a token cluster at all. So, before `ray.init`:

1. ``--ray-auth`` (the CLI) or ``$RAY_AUTH_MODE``: the user knows; taken as said.
2. Otherwise ask the cluster: one unauthenticated call to its GCS. A token cluster refuses it
   (`ray.exceptions.AuthenticationError`, measured here in 0.5 s); one without auth answers it.
"""

from __future__ import annotations

import os
from pathlib import Path

AUTH_MODES = ("token", "disabled")
ENV = "RAY_AUTH_MODE"
HOW_TO_SET = f"set {ENV}=token or {ENV}=disabled (or `--ray-auth token|disabled`) to match the cluster"


class ClusterAuthError(ValueError):
    """Joining failed, or would, for Ray token auth; the message says how to fix it (one line)."""


def token_available() -> bool:
    """A token Ray's loader would find: $RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token."""
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or Path(path or Path.home() / ".ray" / "auth_token").is_file()


def _apply(mode: str) -> None:
    """`mode` for this process and its children; Ray caches its config, so refresh it too."""
    os.environ[ENV] = mode
    try:
        from ray._raylet import Config

        Config.initialize("")
    except ImportError:  # another Ray build: the variable alone is read at ray.init
        pass


def gcs_address(address: str) -> str | None:
    """HOST:PORT of the GCS behind `address` ("auto" too); None for a Ray Client ``ray://`` address."""
    if "://" in address:
        return None
    if address == "auto":
        from ray._private.services import canonicalize_bootstrap_address_or_die

        return canonicalize_bootstrap_address_or_die(address)
    return address


def cluster_wants_token(address: str) -> bool:
    """Ask the GCS at `address` (HOST:PORT) without a token: True if it refuses for auth."""
    from ray.exceptions import AuthenticationError

    previous = os.environ.get(ENV)
    _apply("disabled")
    try:
        from ray._raylet import GcsClient

        GcsClient(address=address).internal_kv_keys(b"", namespace=None, timeout=10)
        return False
    except AuthenticationError:
        return True
    finally:
        if previous is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = previous


def choose(address: str, requested: str | None = None) -> str:
    """The auth mode to join `address` with, set for this process (and what Ray starts from it).

    requested: ``--ray-auth``; else ``$RAY_AUTH_MODE``; else the cluster's answer. A token cluster with no
    token here is refused now, in one line, rather than as a C++ error from inside `ray.init`."""
    mode = (requested or os.environ.get(ENV) or "").strip().lower() or None
    if mode is not None and mode not in AUTH_MODES:
        source = "--ray-auth" if requested else ENV
        raise ClusterAuthError(f"{source}={mode!r}: expected one of {', '.join(AUTH_MODES)}")
    if mode is None:
        gcs = gcs_address(address)
        if gcs is None:  # Ray Client: its server holds the auth; nothing to choose here
            return os.environ.get(ENV, "unset")
        mode = "token" if cluster_wants_token(gcs) else "disabled"
        if mode == "token" and not token_available():
            raise ClusterAuthError(
                f"the cluster at {address} uses Ray token auth and no token was found here: copy the cluster's "
                f"token to ~/.ray/auth_token or set RAY_AUTH_TOKEN (`ray get-auth-token` on the head prints it)"
            )
    _apply(mode)
    return mode


def explain(error: BaseException, address: str) -> ClusterAuthError | None:
    """`error` from joining `address` as one line, when it is about auth (else None)."""
    from ray.exceptions import AuthenticationError

    if isinstance(error, AuthenticationError) or "InvalidAuthToken" in str(error):
        mode = os.environ.get(ENV, "unset")
        return ClusterAuthError(f"joining {address} failed for Ray token auth ({ENV}={mode}): {HOW_TO_SET}")
    return None


def trial_hint(reason: str | None) -> str:
    """A hint for a trial that died before it ran, when a token mismatch is the likely cause."""
    if not reason:
        return ""
    if "InvalidAuthToken" in reason or "cancelled before it started running" in reason:
        return f" (if this is Ray token auth: the driver used {ENV}={os.environ.get(ENV, 'unset')}; {HOW_TO_SET})"
    return ""
