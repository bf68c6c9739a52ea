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
import time
from dataclasses import dataclass, field

from kubemeta import jsonlib
from kubemeta.cache.store import MetadataStore
from kubemeta.config import Config
from kubemeta.service import build_store, source_factory, start_watches, store_settings
from kubemeta.share.sharedview import ViewError, ViewSlot
from kubemeta.state import snapshot
from kubemeta.state.warmstart import SnapshotKeeper
from kubemeta.wire.sharedproto import Group

log = logging.getLogger("kubemeta")


@dataclass
class Helper:
    store: MetadataStore
    keeper: SnapshotKeeper | None
    role: str  # "alone", "leader" or "follower"; a follower may become the leader
    lock_fd: int | None = None
    changed: threading.Lock = field(default_factory=threading.Lock)
    shared: ViewSlot | None = None  # a follower serves from the view in it

    def leads(self) -> bool:
        return self.role != "follower"


def identity(cfg: Config) -> dict[str, object]:
    return snapshot.identity(cfg.kubernetes_url, cfg.node_name, cfg.de_dot,
                             cfg.de_dot_separator, cfg.annotation_match, cfg.extra_fields)


def start(cfg: Config) -> Helper:
    """Build, seed and start the store in the role this helper can take."""
    from kubemeta.share import sharing

    group: Group | None = None
    fd: int | None = None
    if cfg.share_helpers:
        group = Group.of(cfg.state_dir, identity(cfg))
        try:
            fd = sharing.open_lock(group)
        except OSError as e:
            log.warning("cannot use %s to share one view with this node's other helpers "
                        "(%s); this helper works alone", cfg.state_dir, e.strerror or e,
                        extra={"event": "share_unusable"})
            group = None
    if group is None or fd is None or sharing.try_lead(fd):
        return _lead(cfg, group, fd)
    return _follow(cfg, group, fd)


def _keeper(cfg: Config, store: MetadataStore) -> tuple[SnapshotKeeper | None, bool]:
    if cfg.snapshot_interval <= 0:
        return None, False
    keeper = SnapshotKeeper(store, cfg)
    return keeper, keeper.load() > 0  # before the first line: known pods are served at once


def _lead(cfg: Config, group: Group | None, fd: int | None) -> Helper:
    from kubemeta.share import sharing

    store = build_store(cfg)
    if group is not None:
        # First: the followers starting with us are asking already.
        sharing.Leading(group, store, _answer_wait(cfg)).start()
    keeper, warm = _keeper(cfg, store)
    if keeper is not None:
        keeper.start()
    store.lazy = warm
    store.start()
    if cfg.effective_source() == "watch":
        start_watches(cfg, store, warm)
    return Helper(store, keeper, "alone" if group is None else "leader", fd)


def _follow(cfg: Config, group: Group, fd: int) -> Helper:
    from kubemeta.share import sharing

    client = sharing.LeaderClient(group, _answer_wait(cfg) + 1.0)
    role_source = sharing.RoleSource(client)

    def source() -> sharing.RoleSource:
        # Built in the store's dispatcher, while lines wait at most STARTUP_GRACE.
        client.wait_ready(MetadataStore.STARTUP_GRACE)
        return role_source

    store = MetadataStore(source, clock=time.monotonic, settings=store_settings(cfg))
    # No snapshot is loaded: the leader has it, and a follower keeps no copy.
    keeper = SnapshotKeeper(store, cfg) if cfg.snapshot_interval > 0 else None
    store.start()
    helper = Helper(store, keeper, "follower", fd)
    rng = random.Random()

    def take_lead() -> None:
        log.warning("leading this node's helpers now (the previous leader is gone); "
                    "serving what it published meanwhile", extra={"event": "share_lead"})
        seed(store, following.slot, rng)
        role_source.promote(source_factory(cfg, [store])())  # the client's import, here
        with helper.changed:
            helper.role = "leader"
        if cfg.effective_source() == "watch":
            start_watches(cfg, store, True)
        if keeper is not None:
            keeper.start()
        sharing.Leading(group, store, _answer_wait(cfg)).start()

    following = sharing.Following(group, store, client, fd, take_lead)
    helper.shared = following.slot
    following.load_if_changed()  # before the first line
    following.start()
    log.info("following this node's leading helper (%s)", group.lock_path,
             extra={"event": "share_follow"})
    return helper


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


def _answer_wait(cfg: Config) -> float:
    """How long the leader looks for what a follower asked: a request's time."""
    return cfg.api_connect_timeout + cfg.api_read_timeout
