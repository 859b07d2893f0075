"""Users use cases: sign-up, login, profiles and addresses.

Each use case checks who is calling (:mod:`mesh.auth`), applies the domain
rules and goes through the store; profile reads go through the Redis cache
first and every write invalidates it after its transaction commits.

Passwords are hashed with Argon2id (argon2-cffi defaults: 64 MiB, 3 passes)
on worker threads, a few at a time, so hashing neither blocks the event loop
nor lets a burst of logins exhaust memory. Neither passwords nor their hashes
are ever logged or returned.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives.asymmetric import rsa

from mesh import tokens
from mesh.auth import require_owner_or_admin
from mesh.errors import AlreadyExists, NotFound, Unauthenticated
from svc_users.domain import (
    Address,
    ProfileChange,
    Role,
    SignUp,
    User,
    normalize_email,
    validate_address,
    validate_sign_up,
)
from svc_users.store import ProfileCache, UserStore

log = logging.getLogger("svc_users.service")

# One message for unknown email and wrong password alike: telling them
# apart would let anyone probe which emails have accounts.
LOGIN_FAILED = "email or password is incorrect"
ADMIN_NAME = "Administrator"


@dataclass(frozen=True)
class LoginResult:
    """A signed access token and what the client needs to use it."""

    access_token: str
    expire_time: datetime
    expires_in_seconds: int
    user_id: str
    role: Role


class Passwords:
    """Argon2id hashing off the event loop, bounded in concurrency."""

    def __init__(self, hasher: PasswordHasher | None = None, *, concurrency: int = 4) -> None:
        self._hasher = hasher or PasswordHasher()
        self._slots = asyncio.Semaphore(concurrency)
        # Verified against when the email is unknown, so a failed login takes
        # as long whether or not the account exists.
        self._dummy_hash = self._hasher.hash("not-a-real-password-only-for-timing")

    async def hash(self, password: str) -> str:
        """The Argon2id hash (PHC string, salt included) of ``password``."""
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; with no hash, burns the same time
        against a dummy hash and returns False."""
        async with self._slots:
            return await asyncio.to_thread(self._verify, password_hash, password)

    def _verify(self, password_hash: str | None, password: str) -> bool:
        try:
            ok = self._hasher.verify(password_hash or self._dummy_hash, password)
        except (VerificationError, InvalidHashError):
            return False
        return ok and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with weaker parameters than today's."""
        return self._hasher.check_needs_rehash(password_hash)


class UsersService:
    """The use cases behind UserService and AuthService."""

    def __init__(
        self,
        store: UserStore,
        cache: ProfileCache,
        passwords: Passwords,
        signing_key: rsa.RSAPrivateKey,
        *,
        token_ttl_seconds: int = 3600,
        pincode_known: Callable[[str], bool],
    ) -> None:
        self.store = store
        self.cache = cache
        self.passwords = passwords
        self.signing_key = signing_key
        self.token_ttl_seconds = token_ttl_seconds
        self.pincode_known = pincode_known
        self._jwks = tokens.public_jwks(signing_key)

    # -- accounts ----------------------------------------------------------------

    async def sign_up(
        self, email: str, password: str, name: str, phone: str, request_id: str
    ) -> User:
        """Create a customer account. A retry with the same email, password
        and request id returns the account created first; any other sign-up
        with a taken email is ALREADY_EXISTS."""
        form = validate_sign_up(email, password, name, phone)
        replayed = await self._replayed_sign_up(form, request_id)
        if replayed is not None:
            return replayed
        created = await self.store.create_user(
            form, await self.passwords.hash(form.password), Role.CUSTOMER, request_id
        )
        if created is not None:
            log.info("user signed up", extra={"user_id": created.user_id})
            return created
        # Lost a race with the same request (its retry), or the email is taken.
        replayed = await self._replayed_sign_up(form, request_id)
        if replayed is not None:
            return replayed
        raise AlreadyExists(
            "an account with this email already exists",
            resource_type="user",
            reason="EMAIL_TAKEN",
        )

    async def _replayed_sign_up(self, form: SignUp, request_id: str) -> User | None:
        user_id = await self.store.replayed_sign_up(form.email, request_id)
        if user_id is None:
            return None
        creds = await self.store.credentials(form.email)
        # Only whoever knows the password gets the first result back: a
        # guessed email + request id must not disclose the profile.
        if creds is None or not await self.passwords.verify(creds[2], form.password):
            return None
        return await self.store.get_user(user_id)

    async def bootstrap_admin(self, email: str, password: str) -> str:
        """Make sure the configured first admin exists (idempotent): create it,
        or give an existing account with that email the admin role. An
        existing account's password is left alone. Returns its user id."""
        form = validate_sign_up(email, password, ADMIN_NAME, "")
        creds = await self.store.credentials(form.email)
        if creds is None:
            created = await self.store.create_user(
                form, await self.passwords.hash(password), Role.ADMIN, ""
            )
            if created is not None:
                log.info("admin account created", extra={"user_id": created.user_id})
                return created.user_id
            creds = await self.store.credentials(form.email)  # another process won
            assert creds is not None
        user_id, role, _ = creds
        if role is not Role.ADMIN:
            await self.store.promote_to_admin(user_id)
            await self.cache.invalidate(user_id)
            log.warning("existing account promoted to admin", extra={"user_id": user_id})
        return user_id

    async def login(self, email: str, password: str) -> LoginResult:
        """A signed token for valid credentials; UNAUTHENTICATED with the same
        message, and about the same delay, for an unknown email or a wrong
        password."""
        creds = await self.store.credentials(normalize_email(email)) if email else None
        password_hash = creds[2] if creds else None
        if not await self.passwords.verify(password_hash, password) or creds is None:
            raise Unauthenticated(LOGIN_FAILED, reason="INVALID_CREDENTIALS")
        user_id, role, stored_hash = creds
        if self.passwords.needs_rehash(stored_hash):
            await self.store.set_password_hash(user_id, await self.passwords.hash(password))
        token, expires = tokens.issue_token(
            self.signing_key,
            user_id=user_id,
            roles=[role.value],
            ttl_seconds=self.token_ttl_seconds,
        )
        log.info("user logged in", extra={"user_id": user_id})
        return LoginResult(token, expires, self.token_ttl_seconds, user_id, role)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public keys that verify our tokens (JWKS document)."""
        return self._jwks

    # -- profiles ------------------------------------------------------------------

    async def get_user(self, user_id: str) -> User:
        """The profile with its default address: from the cache when there,
        else from MariaDB (and then cached)."""
        require_owner_or_admin(user_id)
        cached = await self.cache.get(user_id)
        if cached is not None:
            return cached
        user = await self.store.get_user(user_id)
        if user is None:
            raise NotFound("user not found", resource_type="user", resource_name=user_id)
        await self.cache.put(user)
        return user

    async def update_user(self, user_id: str, change: ProfileChange) -> User:
        """Apply a validated profile change."""
        require_owner_or_admin(user_id)
        try:
            return await self.store.update_profile(user_id, change)
        finally:
            await self.cache.invalidate(user_id)

    # -- addresses -----------------------------------------------------------------

    async def create_address(self, user_id: str, address: Address, request_id: str) -> Address:
        """Validate (pincode against India Post's directory) and save."""
        require_owner_or_admin(user_id)
        clean = validate_address(address, self.pincode_known)
        try:
            return await self.store.create_address(user_id, clean, request_id)
        finally:
            await self.cache.invalidate(user_id)

    async def list_addresses(self, user_id: str) -> list[Address]:
        """Every address of the user, default first, then newest first."""
        require_owner_or_admin(user_id)
        return await self.store.list_addresses(user_id)

    async def get_address(self, user_id: str, address_id: str) -> Address:
        """One saved address."""
        require_owner_or_admin(user_id)
        found = await self.store.get_address(user_id, address_id)
        if found is None:
            raise NotFound("address not found", resource_type="address", resource_name=address_id)
        return found

    async def set_default_address(self, user_id: str, address_id: str) -> Address:
        """Make the address the user's one default."""
        require_owner_or_admin(user_id)
        try:
            return await self.store.set_default_address(user_id, address_id)
        finally:
            await self.cache.invalidate(user_id)

    async def delete_address(
        self, user_id: str, address_id: str, request_id: str
    ) -> Address | None:
        """Delete the address; returns the default afterwards (None if none left)."""
        require_owner_or_admin(user_id)
        try:
            return await self.store.delete_address(user_id, address_id, request_id)
        finally:
            await self.cache.invalidate(user_id)


__all__ = ["LOGIN_FAILED", "LoginResult", "Passwords", "UsersService"]
