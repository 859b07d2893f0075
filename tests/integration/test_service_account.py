"""The service account is created once, whoever asks for it at the same time.

`python -m infra up` starts its servers side by side and several of them ask
for the unprivileged account (`infra.core.ensure_service_user`). On a fresh
machine concurrent `useradd` runs used to race, and data folders ended up
owned by a uid/gid no account had. Here many threads and a few processes ask
for a throwaway account at the same instant: they must all get the same
ids, of an account and a group that exist, and files handed over with
`chown_tree` must belong to them. The account and its group are removed
afterwards.

It creates real accounts, so it needs root (the project's machines run as
root); elsewhere it is skipped with that reason.
"""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.core import REPO, _useradd, chown_tree, ensure_service_user

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create accounts"),
]

THREADS = 16
PROCESSES = 3

# Each child waits for the same wall-clock instant as the threads, then asks.
CHILD = """
import sys, time
from infra.core import ensure_service_user
start_at, name = float(sys.argv[1]), sys.argv[2]
time.sleep(max(0.0, start_at - time.time()))
uid, gid = ensure_service_user(name)
print(uid, gid)
"""


def _exists(lookup, name: str) -> bool:  # type: ignore[no-untyped-def]
    try:
        lookup(name)
    except KeyError:
        return False
    return True


@pytest.fixture
def account() -> Iterator[str]:
    """A fresh account name (never present before); removed afterwards."""
    name = f"ecomt{uuid.uuid4().hex[:10]}"
    assert not _exists(pwd.getpwnam, name)
    yield name
    if _exists(pwd.getpwnam, name):
        subprocess.run(["userdel", name], check=True, capture_output=True)
    if _exists(grp.getgrnam, name):
        subprocess.run(["groupdel", name], check=True, capture_output=True)
    assert not _exists(pwd.getpwnam, name) and not _exists(grp.getgrnam, name)


def test_concurrent_callers_get_one_account(account: str, tmp_path: Path) -> None:
    start_at = time.time() + 2.0  # time for the children to import
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(start_at), account],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(PROCESSES)
    ]
    results: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def ask() -> None:
        barrier.wait()
        time.sleep(max(0.0, start_at - time.time()))
        try:
            results.append(ensure_service_user(account))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        uid, gid = (int(v) for v in out.split())
        results.append((uid, gid))

    assert errors == []
    assert len(results) == THREADS + PROCESSES
    assert len(set(results)) == 1, f"callers saw different ids: {sorted(set(results))}"
    uid, gid = results[0]
    pw = pwd.getpwnam(account)
    assert (pw.pw_uid, pw.pw_gid) == (uid, gid)
    assert grp.getgrgid(gid).gr_name == account
    # Exactly one account carries the name (a race used to leave duplicates).
    assert [p.pw_name for p in pwd.getpwall()].count(account) == 1
    assert [g.gr_name for g in grp.getgrall()].count(account) == 1

    # Data handed over to the account belongs to an account that exists.
    data = tmp_path / "data"
    (data / "tmp").mkdir(parents=True)
    (data / "tmp" / "file").write_text("x")
    (data / "my.cnf").write_text("x")
    chown_tree(data, uid, gid)
    for path in [data, data / "tmp", data / "tmp" / "file", data / "my.cnf"]:
        st = path.stat()
        assert pwd.getpwuid(st.st_uid).pw_name == account, path
        assert grp.getgrgid(st.st_gid).gr_name == account, path

    # A later caller, and a useradd that finds the name taken (exit 9), are fine.
    assert ensure_service_user(account) == (uid, gid)
    _useradd(account)
    assert (pwd.getpwnam(account).pw_uid, pwd.getpwnam(account).pw_gid) == (uid, gid)


def test_existing_group_of_that_name_is_reused(account: str) -> None:
    """A group left behind by an earlier half-created account does not make
    useradd refuse: the account joins it."""
    subprocess.run(["groupadd", "--system", account], check=True, capture_output=True)
    gid = grp.getgrnam(account).gr_gid
    uid, got_gid = ensure_service_user(account)
    assert got_gid == gid
    assert pwd.getpwnam(account).pw_uid == uid
