"""`GitSource`: a local clone, a bare mirror, or a URL cloned into a bare mirror.

Contract: `resolve(rev)` returns a full sha or raises `UnknownRevision`; every read takes that sha and
reads the object database only. Thread-safe: GitPython's persistent `cat-file` pipes are shared, so
every access goes through one lock.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import git
from git.exc import BadName, GitCommandError, InvalidGitRepositoryError, NoSuchPathError

from deploy_manager.models.errors import SourceError, UnknownRevision
from deploy_manager.source.credentials import GitAuth, GitCredentials

T = TypeVar("T")
_SHA = re.compile(r"[0-9a-f]{40}")
_SYMLINK_MODE = 0o120000
_MEMO_SIZE = 4096
_EXEC_MODE = 0o100755


def default_state_dir() -> Path:
    return Path(os.environ.get("DM_STATE_DIR") or ".state")


def _is_url(repo: str) -> bool:
    # scp-like `user@host:path` counts as a URL too, but not a Windows-ish or plain local path.
    return "://" in repo or (":" in repo and "@" in repo.split(":", 1)[0])


@dataclass(frozen=True)
class TreeEntry:
    name: str
    path: str  # repo-relative
    kind: str  # "blob" | "tree" | "symlink" | "commit" (submodule)
    sha: str


class GitSource:
    """Read-only view of a repository's commits."""

    def __init__(
        self, repo: str, *, mirror_dir: Path | None = None, credentials: GitCredentials | None = None
    ) -> None:
        self._lock = threading.RLock()
        self._memo: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self.remote = _is_url(repo)
        # Credentials leave the URL here: self.url (used in every message) and the mirror never hold them.
        self._auth = GitAuth.for_url(repo, credentials) if self.remote else None
        self.url = self._auth.url if self._auth is not None else repo
        try:
            if self.remote:
                root = mirror_dir if mirror_dir is not None else default_state_dir() / "mirrors"
                # Keyed by the clean URL: rotating a token keeps the mirror.
                self.path = root / hashlib.sha256(self.url.encode()).hexdigest()[:16]
                if not (self.path / "HEAD").exists():
                    self._clone_mirror(root)
            else:
                self.path = Path(repo).expanduser().resolve()
            self._repo = git.Repo(self.path)
        except (InvalidGitRepositoryError, NoSuchPathError) as exc:
            self._close_auth()
            raise SourceError(f"{self.url}: not a git repository") from exc
        except BaseException:
            self._close_auth()
            raise
        if self.remote:
            self._clean_remote_config()

    def _clean_remote_config(self) -> None:
        """A mirror cloned by an older version from a URL with a token kept it in its config: drop it."""
        with self._repo.config_reader() as reader:
            stored = reader.get_value('remote "origin"', "url", default="")
        if stored != self.url:
            with self._repo.config_writer() as writer:
                writer.set_value('remote "origin"', "url", self.url)

    def _git_env(self) -> dict[str, str]:
        return self._auth.env if self._auth is not None else {}

    def _redact(self, text: str) -> str:
        return self._auth.redact(text) if self._auth is not None else text

    def _close_auth(self) -> None:
        if self._auth is not None:
            self._auth.close()

    def _clone_mirror(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        # Clone next to the final place, then rename: a crash never leaves a half-cloned mirror in use.
        tmp = Path(tempfile.mkdtemp(prefix=".clone-", dir=root))
        try:
            git.Repo.clone_from(self.url, tmp / "repo.git", env=self._git_env(), mirror=True)
            os.replace(tmp / "repo.git", self.path)
        except GitCommandError as exc:
            raise SourceError(f"{self.url}: clone failed: {self._redact(_git_error(exc))}") from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def memo(self, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
        """Cache a value derived from immutable objects (key must include the commit or an object id).

        Commits never change, so results keyed by them stay valid; a bounded LRU keeps memory flat.
        """
        with self._lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]  # type: ignore[no-any-return]
        value = compute()
        with self._lock:
            self._memo[key] = value
            if len(self._memo) > _MEMO_SIZE:
                self._memo.popitem(last=False)
        return value

    def close(self) -> None:
        with self._lock:
            self._repo.close()
            self._close_auth()

    def fetch(self) -> None:
        """Update the mirror from its remote (no-op for a local path)."""
        if not self.remote:
            return
        with self._lock:
            try:
                self._repo.git.fetch("--prune", "origin", "+refs/*:refs/*", env=self._git_env())
            except GitCommandError as exc:
                raise SourceError(f"{self.url}: fetch failed: {self._redact(_git_error(exc))}") from exc

    def resolve(self, rev: str) -> str:
        """The full commit sha of a branch, tag or (abbreviated) sha."""
        with self._lock:
            try:
                return self._repo.commit(rev).hexsha
            except (BadName, ValueError, GitCommandError) as exc:
                raise UnknownRevision(f"unknown revision {rev!r} in {self.url}") from exc

    def _commit(self, commit: str) -> git.Commit:
        try:
            return self._repo.commit(commit)
        except (BadName, ValueError) as exc:
            raise UnknownRevision(f"unknown revision {commit!r} in {self.url}") from exc

    def _object(self, commit: str, path: str) -> git.Object | None:
        """The object at `path` in `commit`, walking cached parent trees (GitPython trees cache entries)."""
        if not _SHA.fullmatch(commit):
            commit = self.resolve(commit)  # memo keys must be immutable: never cache under a branch name
        clean = path.strip("/")
        if "//" in clean or "/." in clean or clean.startswith("."):
            clean = str(PurePosixPath(clean)).strip("/")  # normalise only when needed: this is a hot path
        if clean in ("", "."):
            return self.memo(("root", commit), lambda: self._commit(commit).tree)
        parent_path, _, name = clean.rpartition("/")

        def lookup() -> git.Object | None:
            parent = self._object(commit, parent_path)
            if parent is None or parent.type != "tree":
                return None
            try:
                obj = parent[name]
            except KeyError:
                return None
            if obj.type == "tree":
                # Same content at the same path in another commit: reuse the tree whose entries are loaded.
                return self.memo(("tree", obj.hexsha, clean), lambda: obj)
            return obj

        return self.memo(("obj", commit, clean), lookup)

    def read_file(self, commit: str, path: str) -> bytes | None:
        """The content of a file at `commit`, or None if there is no file at `path`."""
        with self._lock:
            obj = self._object(commit, path)
            if obj is None or obj.type != "blob":
                return None
            return self.memo(("blob", obj.hexsha), lambda: obj.data_stream.read())

    def file_id(self, commit: str, path: str) -> str | None:
        """The git blob id of the file at `path` (a content hash), or None if there is no file."""
        with self._lock:
            obj = self._object(commit, path)
            return obj.hexsha if obj is not None and obj.type == "blob" else None

    def tree_id(self, commit: str, path: str) -> str | None:
        """The git object id of the directory (tree) at `path`, or None if it is not a directory."""
        with self._lock:
            obj = self._object(commit, path)
            return obj.hexsha if obj is not None and obj.type == "tree" else None

    def kind(self, commit: str, path: str) -> str | None:
        """`tree`, `blob`, `symlink`, `commit` or None if absent."""
        with self._lock:
            obj = self._object(commit, path)
            if obj is None:
                return None
            if obj.type == "blob" and obj.mode == _SYMLINK_MODE:
                return "symlink"
            return obj.type

    def list_tree(self, commit: str, path: str, *, recursive: bool = False) -> list[TreeEntry]:
        with self._lock:
            obj = self._object(commit, path)
            if obj is None or obj.type != "tree":
                return []
            items = obj.traverse() if recursive else iter(obj)
            out = []
            for item in items:
                kind = "symlink" if item.type == "blob" and item.mode == _SYMLINK_MODE else item.type
                out.append(TreeEntry(name=item.name, path=item.path, kind=kind, sha=item.hexsha))
            return out

    def export_tree(self, commit: str, path: str, dest: Path) -> Path:
        """Write the directory `path` at `commit` to `dest` (reused if it exists) and return `dest`.

        Written to a temporary sibling and renamed, so a reader never sees a partial tree. Symlinks that
        point inside the repository are materialised (copied) so the result is self-contained.
        """
        if dest.exists():
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
        try:
            with self._lock:
                obj = self._object(commit, path)
                if obj is None or obj.type != "tree":
                    raise SourceError(f"{path}: no such directory at {commit[:12]}")
                self._write_tree(commit, obj, tmp, depth=0)
            try:
                os.rename(tmp, dest)
            except OSError:
                if not dest.exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return dest

    def _write_tree(self, commit: str, tree: git.Tree, out: Path, *, depth: int) -> None:
        if depth > 20:
            raise SourceError(f"{tree.path}: symlinks nest too deeply")
        out.mkdir(parents=True, exist_ok=True)
        for item in tree:
            target = out / item.name
            if item.type == "tree":
                self._write_tree(commit, item, target, depth=depth)
            elif item.type == "blob" and item.mode == _SYMLINK_MODE:
                link = item.data_stream.read().decode()
                resolved = resolve_link(str(item.path), link)
                obj = self._object(commit, resolved) if resolved is not None else None
                if obj is not None and obj.type == "tree":
                    self._write_tree(commit, obj, target, depth=depth + 1)
                elif obj is not None and obj.type == "blob":
                    target.write_bytes(obj.data_stream.read())
                else:
                    os.symlink(link, target)
            elif item.type == "blob":
                target.write_bytes(item.data_stream.read())
                if item.mode == _EXEC_MODE:
                    target.chmod(0o755)


def resolve_link(link_path: str, target: str) -> str | None:
    """Repo-relative path a symlink at `link_path` points to, or None if it leaves the repository."""
    if target.startswith("/"):
        return None
    parts: list[str] = []
    for part in (*PurePosixPath(link_path).parent.parts, *PurePosixPath(target).parts):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def _git_error(exc: GitCommandError) -> str:
    """git's own reason: ssh/TLS lines and the first `fatal:`, without GitPython's wrapper or git's advice."""
    text = str(exc.stderr or exc).strip()
    text = text.removeprefix("stderr: '").removesuffix("'")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("Cloning into")]
    for i, line in enumerate(lines):
        if line.startswith(("fatal:", "error:")):
            # What ssh said before git's fatal line is the cause ("Host key verification failed.").
            return " ".join(lines[max(0, i - 2) : i + 1])[:500]
    return lines[-1] if lines else str(exc)
