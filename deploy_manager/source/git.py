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
from typing import Any, TypeVar, cast

import git
from git.exc import BadName, GitCommandError, InvalidGitRepositoryError, NoSuchPathError

from deploy_manager.models.errors import SourceError, SymlinkError, UnknownRevision
from deploy_manager.redaction import Redactor, cut, redacted_url, url_secrets
from deploy_manager.source.credentials import GitAuth, GitCredentials

T = TypeVar("T")
_SHA = re.compile(r"[0-9a-f]{40}")
_SYMLINK_MODE = 0o120000
_MEMO_SIZE = 4096
_EXEC_MODE = 0o100755
MAX_LINK_HOPS = 40  # like the kernel's ELOOP limit
GIT_ERROR_CHARS = 500


def is_full_sha(rev: str) -> bool:
    """A full commit sha names itself: resolving it again is never needed."""
    return _SHA.fullmatch(rev) is not None


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
        # Messages name the remote without its credentials; what git prints is masked with the same secrets.
        self.display_url = redacted_url(repo)  # `***@host` says credentials were given, never what they are
        self._redact = Redactor(url_secrets(repo) + (self._auth.secrets if self._auth is not None else []))
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
            raise SourceError(f"{self.display_url}: not a git repository") from exc
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
            raise SourceError(f"{self.display_url}: clone failed: {self._git_error(exc)}") from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _git_error(self, exc: GitCommandError) -> str:
        """What git said (its `fatal:`/`error:` lines), masked, then cut."""
        return cut(self._redact.text(git_error_text(exc)), GIT_ERROR_CHARS)

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
                raise SourceError(f"{self.display_url}: fetch failed: {self._git_error(exc)}") from exc

    def resolve(self, rev: str) -> str:
        """The full commit sha of a branch, tag or (abbreviated) sha."""
        with self._lock:
            try:
                return self._repo.commit(rev).hexsha
            except (BadName, ValueError, GitCommandError) as exc:
                raise UnknownRevision(f"unknown revision {rev!r} in {self.display_url}") from exc

    def _commit(self, commit: str) -> git.Commit:
        try:
            return self._repo.commit(commit)
        except (BadName, ValueError) as exc:
            raise UnknownRevision(f"unknown revision {commit!r} in {self.display_url}") from exc

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
                return cast(git.Object, self.memo(("tree", obj.hexsha, clean), lambda: obj))
            return cast(git.Object, obj)

        return self.memo(("obj", commit, clean), lookup)

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Whether commit `ancestor` is reachable from `descendant` (equal commits included)."""
        with self._lock:
            try:
                self._repo.git.merge_base("--is-ancestor", ancestor, descendant)
            except GitCommandError as exc:
                if exc.status == 1:
                    return False
                raise SourceError(f"{self.display_url}: merge-base failed: {self._git_error(exc)}") from exc
            return True

    def follow(self, commit: str, path: str) -> tuple[str, git.Object | None]:
        """The real path and object at `path`, following symlinks (in any component) inside the repository.

        A link whose target leaves the repository tree at `commit` (absolute, or `..` past the root), points
        at nothing, or loops raises `SymlinkError` naming the link: nothing outside the repository is ever
        read, and a link is never handed on to helm as a link."""
        with self._lock:
            obj = self._object(commit, path)
            if obj is not None and not _is_link(obj):
                return path.strip("/"), obj  # the common case: no link on the way
            return self._follow_slow(commit, path)

    def _follow_slow(self, commit: str, path: str) -> tuple[str, git.Object | None]:
        pending = [p for p in reversed(PurePosixPath(path.strip("/")).parts)]  # a stack: next part last
        done: list[str] = []
        hops = 0
        link: tuple[str, str] | None = None  # the last link followed: (its path, its target)
        while pending:
            part = pending.pop()
            if part in ("", "."):
                continue
            if part == "..":
                if not done:
                    if link is None:
                        return path, None  # a path of ours that climbs out is just absent
                    raise SymlinkError(f"symlink to {link[1]} points outside the repository", file=link[0])
                done.pop()
                continue
            here = "/".join((*done, part))
            obj = self._object(commit, here)
            if obj is None:
                if link is not None:
                    raise SymlinkError(
                        f"symlink to {link[1]} points to {here}, which does not exist at {commit[:12]}", file=link[0]
                    )
                return path, None
            if _is_link(obj):
                hops += 1
                target = obj.data_stream.read().decode(errors="replace")
                if hops > MAX_LINK_HOPS:
                    raise SymlinkError(f"symlink to {target}: too many levels of symlinks", file=here)
                if target.startswith("/") or not target:
                    raise SymlinkError(f"symlink to {target or '(empty)'} points outside the repository", file=here)
                link = (here, target)
                pending.extend(reversed(PurePosixPath(target).parts))
                continue
            if pending and obj.type != "tree":
                return path, None  # a file used as a directory
            done.append(part)
        real = "/".join(done)
        return real, self._object(commit, real)

    def read_file(self, commit: str, path: str) -> bytes | None:
        """The content of a file at `commit` (symlinks inside the repository followed), or None if there is no
        file at `path`. A symlink leaving the repository raises `SymlinkError`."""
        with self._lock:
            _, obj = self.follow(commit, path)
            if obj is None or obj.type != "blob":
                return None
            return cast(bytes, self.memo(("blob", obj.hexsha), lambda: obj.data_stream.read()))

    def file_id(self, commit: str, path: str) -> str | None:
        """The git blob id of the file at `path` (a content hash; symlinks followed), or None if there is no file."""
        with self._lock:
            _, obj = self.follow(commit, path)
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
        point inside the repository are materialised (copied) so the result is self-contained; no link is ever
        written (helm would follow it out of the cache), and one leaving the repository raises `SymlinkError`.
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
            elif _is_link(item):
                _, obj = self.follow(commit, str(item.path))
                if obj is not None and obj.type == "tree":
                    self._write_tree(commit, obj, target, depth=depth + 1)
                elif obj is not None and obj.type == "blob":
                    target.write_bytes(obj.data_stream.read())
                    if obj.mode == _EXEC_MODE:
                        target.chmod(0o755)
                # else: a submodule behind a link; skipped like a submodule itself
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


def _is_link(obj: git.Object) -> bool:
    return obj.type == "blob" and obj.mode == _SYMLINK_MODE


def git_error_text(exc: GitCommandError) -> str:
    """GitPython wraps git's stderr as `stderr: '<text>'` (so its last line is a lone quote): unwrap it and keep
    the lines that say what went wrong."""
    raw = exc.stderr if isinstance(exc.stderr, str) and exc.stderr.strip() else str(exc)
    text = raw.strip()
    if text.startswith("stderr: '"):
        text = text[len("stderr: '") :]
        text = text[:-1] if text.endswith("'") else text
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and ln.strip() != "'"]
    said = [ln for ln in lines if ln.lower().startswith(("fatal:", "error:", "remote:", "ssh:"))]
    if said:
        # What ssh or TLS printed just before git's first complaint is the cause ("Host key verification failed.").
        first = lines.index(said[0])
        said = [ln for ln in lines[max(0, first - 2) : first] if not ln.startswith(("Cloning into", "cmdline:"))] + said
    picked = said or [ln for ln in lines if not ln.startswith(("Cloning into", "cmdline:"))] or lines
    return "; ".join(picked[-4:]) or f"git exited with status {exc.status}"
