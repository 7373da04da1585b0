"""Choosing Ray token auth to join a cluster: the user's word first, then the cluster's answer, never the
mere existence of a token file (the real clusters are in test_search_cluster.py)."""

from __future__ import annotations

import os

import pytest

from tickettune.searcher import cli, cluster_auth
from tickettune.searcher.cluster_auth import ClusterAuthError


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty home and no auth settings. The mode is set in the environment only: Ray's own config (and its
    C++ token loader, which keeps the first token it reads) must not change inside a test process that starts
    local Ray instances later."""
    monkeypatch.setattr(cluster_auth, "_apply", lambda mode: os.environ.__setitem__("RAY_AUTH_MODE", mode))
    monkeypatch.setenv("HOME", str(tmp_path))
    for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.setenv(k, "")  # recorded, so that what `choose` sets is undone after the test
        monkeypatch.delenv(k)
    return tmp_path


def _probe_answers(monkeypatch, wants_token: bool) -> list[str]:
    asked: list[str] = []

    def probe(address: str) -> bool:
        asked.append(address)
        return wants_token

    monkeypatch.setattr(cluster_auth, "cluster_wants_token", probe)
    return asked


def test_a_token_file_does_not_turn_token_auth_on_for_a_cluster_without_it(home, monkeypatch):
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text("t" * 32)
    asked = _probe_answers(monkeypatch, wants_token=False)
    assert cluster_auth.choose("10.0.0.5:6379") == "disabled"
    assert asked == ["10.0.0.5:6379"]
    assert os.environ["RAY_AUTH_MODE"] == "disabled"


def test_a_token_cluster_is_joined_with_the_token(home, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN", "t" * 32)
    _probe_answers(monkeypatch, wants_token=True)
    assert cluster_auth.choose("10.0.0.5:6379") == "token"


def test_a_token_cluster_without_a_token_here_is_one_clear_line(home, monkeypatch):
    _probe_answers(monkeypatch, wants_token=True)
    with pytest.raises(ClusterAuthError, match=r"10\.0\.0\.5:6379 uses Ray token auth and no token was found"):
        cluster_auth.choose("10.0.0.5:6379")


@pytest.mark.parametrize("how", ["flag", "env"])
def test_what_the_user_says_is_taken_without_asking(home, monkeypatch, how):
    asked = _probe_answers(monkeypatch, wants_token=True)
    if how == "env":
        monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert cluster_auth.choose("10.0.0.5:6379", "disabled" if how == "flag" else None) == "disabled"
    assert asked == []


def test_a_bad_mode_names_itself(home, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "tokn")
    with pytest.raises(ClusterAuthError, match=r"RAY_AUTH_MODE='tokn': expected one of token, disabled"):
        cluster_auth.choose("10.0.0.5:6379")


def test_a_ray_client_address_is_not_probed(home, monkeypatch):
    asked = _probe_answers(monkeypatch, wants_token=True)
    cluster_auth.choose("ray://head:10001")
    assert asked == []


def test_the_cli_takes_ray_auth(capsys):
    with pytest.raises(SystemExit):
        cli.main(["search", "spaces/demo.yaml", "--ray-auth", "maybe"])
    assert "invalid choice: 'maybe'" in capsys.readouterr().err
    args = cli.parser().parse_args(["resume", "runs/x", "--ray-auth", "disabled"])
    assert args.ray_auth == "disabled"


def test_an_auth_failure_while_joining_is_explained(monkeypatch):
    from ray.exceptions import AuthenticationError

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    err = cluster_auth.explain(AuthenticationError("RPC error: InvalidAuthToken"), "h:1")
    assert isinstance(err, ClusterAuthError)
    assert "joining h:1 failed for Ray token auth (RAY_AUTH_MODE=disabled)" in str(err)
    assert cluster_auth.explain(RuntimeError("other"), "h:1") is None
