"""API keys, their roles and ACL labels, and the audit log, kept in the catalog's SQLite file.

A key is `hk_` + 32 random bytes (URL-safe base64), shown once when it is made; the catalog
keeps only its SHA-256. Each key has a role (`ROLES`: viewer < editor < admin) and the ACL
labels it may see (`heron.catalog.acl`): a viewer or editor sees the units that carry no label
and those sharing one with it; an admin sees everything, whatever its labels say.

The tables live beside the catalog's own (same file, same engine, same transactions rules) but
on their own `MetaData`, created by `KeyRing` on first use: the catalog knows nothing of keys,
and importing this module changes nothing about a catalog that never uses them.

    ring = KeyRing(catalog)
    key_id, secret = ring.create("viewer", "team-a", labels=["finance"])
    principal = ring.authenticate(secret)          # None for an unknown or revoked key
    ring.record(principal, "search", {"query": "invoice", "ids": [...]})
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import json
import secrets
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine

from heron.catalog.acl import check_label
from heron.catalog.catalog import Catalog
from heron.util.errors import HeronError

VIEWER, EDITOR, ADMIN = "viewer", "editor", "admin"
ROLES = (VIEWER, EDITOR, ADMIN)
SECRET_PREFIX = "hk_"
SECRET_BYTES = 32
LAST_USED_EVERY_S = 60.0  # `last_used_at` is written at most this often per key (a write a search)

# What each role may do; an admin may do everything.
_VIEWER_ACTIONS = frozenset({"session", "search", "read", "stats", "duplicates"})
_EDITOR_ACTIONS = _VIEWER_ACTIONS | {"upload", "delete"}
_ADMIN_ACTIONS = _EDITOR_ACTIONS | {"keys", "audit"}
ROLE_ACTIONS: Mapping[str, frozenset[str]] = {
    VIEWER: _VIEWER_ACTIONS,
    EDITOR: _EDITOR_ACTIONS,
    ADMIN: _ADMIN_ACTIONS,
}
AUDIT_ACTIONS = ("search", "open", "upload", "delete", "admin")

_metadata = MetaData()

api_keys_table = Table(
    "api_keys",
    _metadata,
    Column("id", String(32), primary_key=True),
    Column("label", Text, nullable=False),
    Column("role", String(16), nullable=False),
    Column("labels", Text, nullable=False, default=""),  # comma list; "" = none
    Column("secret_hash", String(64), nullable=False, unique=True),  # sha256 hex
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float),
    Column("revoked_at", Float),
)

audit_table = Table(
    "audit",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("action", String(16), nullable=False),
    Column("detail", Text, nullable=False, default="{}"),  # JSON
    Index("ix_audit_key_at", "key_id", "at"),
    Index("ix_audit_at", "at"),
)

_created: weakref.WeakSet[Engine] = weakref.WeakSet()  # engines whose tables exist already
_created_lock = threading.Lock()


class KeyRingError(HeronError, ValueError):
    """A key cannot be made or found as asked (unknown role, bad label, no such key)."""

    code = "bad_key_request"
    status = 400


@dataclass(frozen=True)
class Principal:
    """Who makes a request: a key (or the anonymous local admin), its role and labels."""

    key_id: str
    label: str
    role: str
    labels: tuple[str, ...] = ()

    def can(self, action: str) -> bool:
        return action in ROLE_ACTIONS.get(self.role, frozenset())

    @property
    def visible_to(self) -> tuple[str, ...] | None:
        """What to pass as `visible_to` to `Heron`: None (everything) for an admin, else the
        key's labels. A viewer or editor without labels gets `()`, the units no label covers,
        never everything: "" means everything for an admin only."""
        return None if self.role == ADMIN else self.labels


LOCAL_ADMIN = Principal("local", "local", ADMIN)  # a server that requires no keys
CLI_ADMIN = Principal("cli", "cli", ADMIN)  # the command line, for its audit rows


@dataclass(frozen=True)
class KeyRecord:
    """A key as listed: never its secret, nor the secret's hash."""

    id: str
    label: str
    role: str
    labels: tuple[str, ...]
    created_at: float
    last_used_at: float | None
    revoked_at: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "labels": list(self.labels), "active": self.active}


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: float
    key_id: str
    action: str
    detail: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def hash_secret(secret: str) -> str:
    # One SHA-256, no salt and no slow KDF: a key is 256 random bits, not a password, so there
    # is no dictionary to try and a fast hash is as strong as bcrypt here (and cheap enough to
    # check on every request).
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def parse_labels(labels: str | Iterable[str]) -> tuple[str, ...]:
    """ACL labels from a comma list or an iterable, checked and sorted, duplicates dropped."""
    items = labels.split(",") if isinstance(labels, str) else builtins.list(labels)
    try:
        return tuple(sorted({check_label(item) for item in items if item.strip()}))
    except ValueError as exc:
        raise KeyRingError(str(exc)) from None


class KeyRing:
    """The API keys and the audit log of one catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self._engine: Engine = catalog._engine
        with _created_lock:
            if self._engine not in _created:
                _metadata.create_all(self._engine)
                _created.add(self._engine)

    # keys
    def create(self, role: str, label: str, labels: str | Iterable[str] = ()) -> tuple[str, str]:
        """A new key: (its id, its secret). The secret is shown here once and stored nowhere."""
        if role not in ROLES:
            raise KeyRingError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        label = label.strip()
        if not label:
            raise KeyRingError("a key needs a label (who or what it is for)")
        checked = parse_labels(labels)
        key_id = secrets.token_hex(6)
        secret = SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
        row = {
            "id": key_id,
            "label": label,
            "role": role,
            "labels": ",".join(checked),
            "secret_hash": hash_secret(secret),
            "created_at": time.time(),
        }
        with self._engine.begin() as conn:
            conn.execute(insert(api_keys_table).values(**row))
        return key_id, secret

    def authenticate(self, secret: str | None) -> Principal | None:
        """The principal of an active key, or None (unknown, malformed or revoked)."""
        if not secret or not secret.startswith(SECRET_PREFIX) or len(secret) > 256:
            return None
        digest = hash_secret(secret)
        # Looked up by its hash: what an attacker times is the index lookup of a SHA-256 of
        # their guess, which tells them nothing about any secret; the compare is constant-time.
        query = select(api_keys_table).where(api_keys_table.c.secret_hash == digest)
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None or not hmac.compare_digest(row.secret_hash, digest):
            return None
        if row.revoked_at is not None:
            return None
        now = time.time()
        if row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY_S:
            with self._engine.begin() as conn:
                conn.execute(
                    update(api_keys_table)
                    .where(api_keys_table.c.id == row.id)
                    .values(last_used_at=now)
                )
        return Principal(row.id, row.label, row.role, _split(row.labels))

    def list(self, include_revoked: bool = True) -> builtins.list[KeyRecord]:
        """Every key, oldest first (revoked ones too, unless `include_revoked=False`)."""
        query = select(api_keys_table).order_by(api_keys_table.c.created_at, api_keys_table.c.id)
        if not include_revoked:
            query = query.where(api_keys_table.c.revoked_at.is_(None))
        with self._engine.connect() as conn:
            return [_key_record(row) for row in conn.execute(query)]

    def get(self, key_id: str) -> KeyRecord | None:
        with self._engine.connect() as conn:
            query = select(api_keys_table).where(api_keys_table.c.id == key_id)
            row = conn.execute(query).first()
        return _key_record(row) if row else None

    def revoke(self, key_id: str) -> KeyRecord:
        """Revoke a key at once (its next request is refused); revoking twice keeps the first
        time. KeyRingError for an unknown id."""
        with self._engine.begin() as conn:
            conn.execute(
                update(api_keys_table)
                .where(api_keys_table.c.id == key_id, api_keys_table.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
        found = self.get(key_id)
        if found is None:
            raise KeyRingError(f"no key {key_id!r}; heron keys list shows them")
        return found

    def any_active(self) -> bool:
        query = select(func.count()).where(api_keys_table.c.revoked_at.is_(None))
        with self._engine.connect() as conn:
            return bool(conn.execute(query).scalar())

    # audit
    def record(self, principal: Principal, action: str, detail: Mapping[str, Any]) -> None:
        """One audit row: who did `action` (search, open, upload, delete, admin), and what."""
        if action not in AUDIT_ACTIONS:
            raise KeyRingError(f"unknown audit action {action!r}")
        row = {
            "at": time.time(),
            "key_id": principal.key_id,
            "action": action,
            "detail": json.dumps(dict(detail), ensure_ascii=False, default=str),
        }
        with self._engine.begin() as conn:
            conn.execute(insert(audit_table).values(**row))

    def audit(self, limit: int = 100, key: str | None = None) -> builtins.list[AuditRecord]:
        """The latest audit rows, newest first (of one key's requests with `key`)."""
        query = select(audit_table).order_by(audit_table.c.id.desc()).limit(limit)
        if key is not None:
            query = query.where(audit_table.c.key_id == key)
        with self._engine.connect() as conn:
            return [
                AuditRecord(row.id, row.at, row.key_id, row.action, json.loads(row.detail))
                for row in conn.execute(query)
            ]


def _split(labels: str) -> tuple[str, ...]:
    return tuple(x for x in labels.split(",") if x)


def _key_record(row: Any) -> KeyRecord:
    return KeyRecord(
        id=row.id,
        label=row.label,
        role=row.role,
        labels=_split(row.labels),
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


__all__ = [
    "ADMIN",
    "CLI_ADMIN",
    "EDITOR",
    "LOCAL_ADMIN",
    "ROLES",
    "ROLE_ACTIONS",
    "VIEWER",
    "AuditRecord",
    "KeyRecord",
    "KeyRing",
    "KeyRingError",
    "Principal",
    "hash_secret",
    "parse_labels",
]
