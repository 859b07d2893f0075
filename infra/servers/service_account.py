"""Running a Java server as the unprivileged service account when the download
cache sits where that account cannot go (by default ~/.cache under /root,
mode 0700)."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from infra.core import log


def reachable_by(path: Path, uid: int, gid: int) -> bool:
    """Can account uid:gid traverse every folder down to `path`?"""
    if uid == os.getuid():
        return path.exists()
    p = path.resolve()
    for d in [*reversed(p.parents), p]:
        try:
            st = d.stat()
        except FileNotFoundError:
            return False
        if st.st_uid == uid:
            need = stat.S_IXUSR
        elif st.st_gid == gid:
            need = stat.S_IXGRP
        else:
            need = stat.S_IXOTH
        if not st.st_mode & need:
            return False
    return True


def usable_copy(src: Path, private: Path, owner: tuple[int, int]) -> Path:
    """`src` itself when the account `owner` can reach it, else a copy at
    `private` (made once, atomically). `private` should live inside the
    server's data folder, which `Server.start` hands to that account; it is a
    real copy, not hard links, because that chown would otherwise change the
    cache's own files too."""
    if reachable_by(src, *owner):
        return src
    if not private.exists():
        log(f"copying {src} to {private} (the cache is not reachable by the service account)")
        tmp = private.with_name(private.name + ".part")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp, symlinks=True)
        tmp.rename(private)
    return private
