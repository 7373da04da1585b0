"""storage.check_shared without Ray: each fake node runs the real `probe` against its own view of the file system
(a node that mounts something else at the storage path sees another folder there). The two-node cluster case,
with a node in a mount namespace of its own, is in test_storage_cluster.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickettune.searcher.storage import CHECK_DIR, Node, StorageNotShared, check_shared, probe

HEAD, WORKER = Node("a" * 56, "10.0.0.1", "head"), Node("b" * 56, "10.0.0.2", "worker-1")


def views(mapping: dict[str, tuple[Path, Path]]):
    """A prober where node id -> (the path the driver uses, what that node finds at it)."""

    def prober(nodes, marker, token, answer_of):
        out = {}
        for n in nodes:
            real, seen = mapping.get(n.node_id, (None, None))
            moved = (lambda p: p) if real is None else (lambda p: str(p).replace(str(real), str(seen), 1))
            out[n.node_id] = probe(moved(marker), token, moved(answer_of(n)))
        return out

    return prober


def test_every_node_sees_the_folder(tmp_path, capsys):
    exp = tmp_path / "runs" / "exp"
    assert check_shared(exp, [HEAD, WORKER], views({})) == [HEAD, WORKER]
    assert not (exp / CHECK_DIR).exists()  # the marker and the answers are cleaned up
    assert "seen by all 2 nodes" in capsys.readouterr().out


def test_a_node_with_its_own_disk_at_that_path_is_named(tmp_path):
    exp = tmp_path / "runs" / "exp"
    other = tmp_path / "worker-disk"  # what the worker has at the same path: its local disk, empty
    other.mkdir()
    with pytest.raises(StorageNotShared) as e:
        check_shared(exp, [HEAD, WORKER], views({WORKER.node_id: (tmp_path / "runs", other)}))
    msg = str(e.value)
    assert "node bbbbbbbbbbbb (10.0.0.2 worker-1)" in msg and "does not exist there" in msg
    assert "aaaa" not in msg and "1 of 2" in msg and str(tmp_path / "runs") in msg
    assert not (exp / CHECK_DIR).exists()


def test_another_file_system_with_a_stale_marker_is_caught_by_the_token(tmp_path):
    exp = tmp_path / "runs" / "exp"
    other = tmp_path / "worker-disk"

    def prober(nodes, marker, token, answer_of):  # the worker's copy holds a marker with another token
        mine = Path(str(marker).replace(str(tmp_path / "runs"), str(other), 1))
        mine.parent.mkdir(parents=True)
        mine.write_text("f" * 32)
        return {HEAD.node_id: probe(marker, token, answer_of(HEAD)), WORKER.node_id: probe(str(mine), token, "-")}

    with pytest.raises(StorageNotShared, match="another search's token"):
        check_shared(exp, [HEAD, WORKER], prober)


def test_writes_that_never_reach_the_driver(tmp_path):
    """The node reads the marker (say, a read-through cache) but what it writes lands elsewhere."""
    exp = tmp_path / "runs" / "exp"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def prober(nodes, marker, token, answer_of):
        out = {HEAD.node_id: probe(marker, token, answer_of(HEAD))}
        out[WORKER.node_id] = probe(marker, token, str(elsewhere / "answer"))
        return out

    with pytest.raises(StorageNotShared, match="does not reach the driver"):
        check_shared(exp, [HEAD, WORKER], prober)


def test_a_node_that_does_not_answer(tmp_path):
    with pytest.raises(StorageNotShared, match="no answer"):
        check_shared(tmp_path / "e", [HEAD, WORKER], lambda nodes, m, t, a: {HEAD.node_id: probe(m, t, a(HEAD))})


def test_one_node_needs_no_check(tmp_path):
    def never(*a):
        raise AssertionError("a one-node Ray is not probed")

    assert check_shared(tmp_path / "e", [HEAD], never) == []
    assert not (tmp_path / "e").exists()
