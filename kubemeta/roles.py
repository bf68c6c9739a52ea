"""Which part a helper plays on its node, and the store it serves lines from.

- **leader**: the first helper of a group to take the lock (see sharing); it
  talks to the API, keeps the snapshot, publishes for the others.
- **follower**: any other helper of the group; it serves from the view the
  leader shares, asks the leader (never the API) for what the view lacks yet,
  and takes the lead when the leader dies.
- **alone**: ``share_helpers`` is off, or ``state_dir`` is unusable.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kubemeta import internal, jsonlib
from kubemeta.app import App
from kubemeta.cache.lookups import Fetcher
from kubemeta.cache.policy import Backoff
from kubemeta.cache.store import MetadataStore
from kubemeta.errors import ConfigError
from kubemeta.kinds import Mode, Role
from kubemeta.share.sharedview import ViewError, ViewSlot
from kubemeta.state.warmstart import SnapshotKeeper
from kubemeta.wire.sharedproto import Group

if TYPE_CHECKING:
    from kubemeta.share.leading import Leading

log = logging.getLogger("kubemeta.roles")


@dataclass
class Helper:
    store: MetadataStore
    keeper: SnapshotKeeper | None
    role: Role  # a follower may become the leader
    lock_fd: int | None = None
    changed: threading.Lock = field(default_factory=threading.Lock)
    shared: ViewSlot | None = None  # a follower serves from the view in it

    def leads(self) -> bool:
        return self.role is not Role.FOLLOWER


def start(app: App) -> Helper:
    """Build, seed and start the store in the role this helper can take."""
    from kubemeta.share import transport

    cfg = app.cfg
    group: Group | None = None
    fd: int | None = None
    problem = app.state_dir_problem()
    if problem is not None:
        log.warning("state_dir %s is not safe to trust: %s. This helper works alone and "
                    "without a snapshot; make it a directory of this user's that nobody else "
                    "may write (chown, chmod 0750)", cfg.state_dir, problem,
                    extra={"event": "state_dir_unsafe"})
    elif cfg.share_helpers:
        group = app.group()
        try:
            fd = transport.open_lock(group)
        except OSError as e:
            log.warning("cannot use %s to share one view with this node's other helpers "
                        "(%s); this helper works alone", cfg.state_dir, e.strerror or e,
                        extra={"event": "share_unusable"})
            group = None
    if group is None or fd is None or transport.try_lead(fd):
        return _lead(app, group, fd)
    return _follow(app, group, fd)


def _lead(app: App, group: Group | None, fd: int | None) -> Helper:
    store = app.store()
    keeper = app.keeper(store)
    warm = keeper is not None and keeper.load() > 0  # before the first line
    if keeper is not None:
        keeper.start()
    app.start_store(store, lazy=warm)
    if app.mode is Mode.WATCH:
        app.start_watches(store, warm)
    if group is not None:
        # Last, and at once (followers starting with us wait up to SEND_PATIENCE):
        # a question asked before the watches expect their first lists would
        # cost a GET of its own.
        _leading(app, group, store).start()
    return Helper(store, keeper, Role.ALONE if group is None else Role.LEADER, fd)


def _leading(app: App, group: Group, store: MetadataStore) -> Leading:
    from kubemeta.share.leading import Leading

    leading = Leading(group, store, app.answer_wait, app.clock)
    leading.status = app.health(store, group, leading.followers).report
    return leading


def _follow(app: App, group: Group, fd: int) -> Helper:
    from kubemeta.share.following import Following, LeaderClient, RoleFetcher

    client = LeaderClient(group, app.answer_wait + 1.0, app.clock)
    role_fetcher = RoleFetcher(client)

    def fetcher() -> RoleFetcher:
        # Built in the store's dispatcher, while lines wait at most STARTUP_GRACE.
        client.wait_ready(MetadataStore.STARTUP_GRACE)
        return role_fetcher

    store = app.store()
    # No snapshot is loaded: the leader has it, and a follower keeps no copy.
    keeper = app.keeper(store)
    store.start(fetcher)
    helper = Helper(store, keeper, Role.FOLLOWER, fd)
    rng = random.Random()

    def take_lead() -> None:
        log.warning("leading this node's helpers now (the previous leader is gone); "
                    "serving what it published meanwhile", extra={"event": "share_lead"})
        seed(store, following.slot, rng)
        if keeper is not None:
            keeper.start()
        fetcher = until_built(app.fetcher(store), store.stopped, app.backoff)
        if fetcher is None:
            return  # stopping
        role_fetcher.promote(fetcher)
        app.add_fallback(store)
        with helper.changed:
            helper.role = Role.LEADER
        if app.mode is Mode.WATCH:
            app.start_watches(store, True)
        # Last: until its fetcher is the API's, a question would come back to it.
        _leading(app, group, store).start()

    following = Following(group, store, client, fd, take_lead, app.clock,
                          app.cfg.share_view_max_age)
    helper.shared = following.slot
    following.load_if_changed()  # before the first line
    following.start()
    log.info("following this node's leading helper (%s)", group.lock_path,
             extra={"event": "share_follow"})
    return helper


def until_built(make: Callable[[], Fetcher], stopped: threading.Event,
                backoff: Backoff) -> Fetcher | None:
    """``make()``, tried again after a backoff while it fails (a kubeconfig briefly
    unreadable): a helper that took the lock must lead, or nobody would.
    None: stopped meanwhile."""
    attempt = 0
    while not stopped.is_set():
        try:
            return make()
        except ConfigError as e:
            if attempt == 0:
                log.error("cannot use the Kubernetes API yet: %s; leading with what is known "
                          "and trying again", e, extra={"event": "config_error"})
        except Exception as e:  # the client's import, say: reported, and tried again
            internal.report("taking the lead", e)
        attempt += 1
        stopped.wait(backoff.delay(attempt))
    return None


def seed(store: MetadataStore, slot: ViewSlot, rng: random.Random) -> None:
    """A follower taking the lead: its store takes over what the last view held
    (refreshed from the API over half to all of their TTL, not all at once), then
    its lines are served from the store."""
    view = slot.view
    if view is not None:
        try:
            got = view.contents(store.now(), jsonlib.loads)
        except ViewError as e:
            log.warning("the last shared view is unusable (%s); starting from nothing", e,
                        extra={"event": "share_error"})
        else:
            store.preload(got.pods, got.namespaces, got.deleted, lambda: rng.uniform(0.5, 1.0))
    slot.view = None
