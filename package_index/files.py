"""The proxy's file cache: each file is downloaded once, by the first request that wants it,
and every answer is the cached file or an error; never a redirect to the upstream.

Why not proxpi's own (1.3.1): a first request publishes its download's thread before starting
it, so a second request for the same file in that instant fails to wait on it ("cannot join
thread before it is started") and is answered with a redirect to the upstream's address. A
download the upstream refused (4xx, 5xx) stays listed as under way, so every later request for
that file was redirected too. A user's pod can not follow such a redirect (it reaches this proxy
alone), and the address may carry the upstream's credential (``packageIndex.upstreamSecret``),
which must not reach a process a user controls.

Here a lock per file makes the others wait while the first request downloads; a failed
download is a 503 that names the file alone (pip retries a 503), and the next request tries
the upstream again. proxpi chooses its file cache through ``Cache._file_cache_cls``, which is
how this one is put in (``__main__``).
"""

from __future__ import annotations

import logging
import os
import posixpath

from proxpi import _cache

log = logging.getLogger("moonhub.package_index")


class FileUnavailable(Exception):
    """A package file the proxy could not fetch; its message names the file, never the
    upstream's address."""

    status = 503

    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"{name}: {why}; try again later")


class ServedFiles(_cache._FileCache):
    """proxpi's file cache, with each file fetched under a lock of its own."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._file_locks = _cache._Locks()

    def _cached(self, key: str) -> str | None:
        file = self._files.get(key)
        if isinstance(file, _cache._CachedFile) and os.path.exists(file.path):
            file.n_hits += 1
            return str(file.path)
        return None

    def get(self, url: str) -> str:
        """The local path of the file at ``url``, downloading it first if it is not cached."""
        key = self._get_key(url)
        name = posixpath.basename(key)
        if self.max_size == 0:
            raise FileUnavailable(name, "the package index keeps no files (its cache size is 0)")
        path = self._cached(key)
        if path:
            self._stats.add_hit(key=key)
            return path
        with self._file_locks[key]:
            # another request may have fetched it while this one waited for the lock
            path = self._cached(key)
            if path:
                self._stats.add_hit(key=key)
                return path
            self._stats.add_miss(key=key)
            self._files.pop(key, None)  # a file whose copy is gone is fetched again
            target = os.path.join(self.cache_dir, *_cache._split_path(key, posixpath.split))
            try:
                with self._evict_lock:
                    self._evict_lfu(url)
                self._download_file(url, target)
            except Exception as e:  # the upstream unreachable, reset, slow past the read timeout
                log.warning("could not fetch %s from the upstream: %s", name, type(e).__name__)
                raise FileUnavailable(name, "the upstream index did not answer") from e
            path = self._cached(key)
            if not path:  # proxpi's download logged the upstream's status and kept nothing
                raise FileUnavailable(name, "the upstream index refused the download")
            return path
