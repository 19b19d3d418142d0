"""Who is asking: the credential an operation runs for, and its store."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from lrs.config import StoreSettings, store_settings
from lrs.scopes import STATEMENTS_READ
from lrs.store.credentials import Credential
from lrs.xapi.errors import Forbidden
from lrs.xapi.pseudonyms import Pseudonym


@dataclass(frozen=True)
class Caller:
    """Who is asking: the credential and the store it belongs to."""

    credential: Credential

    @property
    def store_id(self) -> int:
        return self.credential.store_id

    @property
    def key(self) -> str:
        return self.credential.key

    @property
    def authority(self) -> dict[str, Any]:
        return self.credential.authority

    def has(self, scopes: frozenset[str]) -> bool:
        return not self.credential.scopes.isdisjoint(scopes)

    def require(self, scopes: frozenset[str]) -> None:
        if not self.has(scopes):
            raise Forbidden(f"this credential needs one of the scopes: {', '.join(sorted(scopes))}")

    @cached_property
    def settings(self) -> StoreSettings:
        """The store's settings, parsed once per request."""
        return store_settings(self.credential.store_settings)

    @cached_property
    def pseudonym(self) -> Pseudonym | None:
        """How the store pseudonymises agents, when it does (setting ``pseudonymise``)."""
        return store_pseudonym(self.settings, self.credential.store_pseudonym_secret)

    @property
    def only_own_statements(self) -> bool:
        """``statements/read/mine`` without a broader read scope: sees what it wrote."""
        return not self.has(STATEMENTS_READ - {"statements/read/mine"})


def store_pseudonym(own: StoreSettings, secret: bytes) -> Pseudonym | None:
    """How a store with these settings and pseudonym secret pseudonymises agents (None:
    it keeps them as sent)."""
    if not own.pseudonymise or not own.pseudonym_home_page:
        return None
    return Pseudonym(secret, own.pseudonym_home_page)
