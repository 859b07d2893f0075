"""Users, addresses and the idempotency record.

Revision ID: 0001
Revises:
Create Date: 2025-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _ts(name: str) -> sa.Column:
    # Microseconds, stored as UTC.
    return sa.Column(name, mysql.DATETIME(fsp=6), nullable=False)


def upgrade() -> None:
    """Create users, addresses and request_ids."""
    op.create_table(
        "users",
        sa.Column("user_id", sa.String(36), primary_key=True),
        # Stored lowercased; the unique index (case-insensitive collation too)
        # is what makes concurrent sign-ups with one email fail cleanly.
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("phone", sa.String(16), nullable=False, server_default=""),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        _ts("create_time"),
        _ts("update_time"),
        sa.UniqueConstraint("email", name="uq_users_email"),
        sa.CheckConstraint("role IN ('customer', 'admin')", name="ck_users_role"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    op.create_table(
        "addresses",
        sa.Column("address_id", sa.String(36), primary_key=True),
        sa.Column(
            "user_id",
            sa.String(36),
            sa.ForeignKey("users.user_id", ondelete="CASCADE", name="fk_addresses_user"),
            nullable=False,
        ),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("lines", sa.JSON, nullable=False),
        sa.Column("landmark", sa.String(100), nullable=False, server_default=""),
        sa.Column("city", sa.String(100), nullable=False),
        sa.Column("state", sa.String(100), nullable=False),
        sa.Column("pincode", sa.CHAR(6), nullable=False),
        sa.Column("phone", sa.String(16), nullable=False),
        # The owner's user_id on the default address, NULL elsewhere: the
        # unique index then allows at most one default per user, enforced by
        # the database rather than by every code path remembering to.
        sa.Column("default_of", sa.String(36), nullable=True),
        _ts("create_time"),
        sa.UniqueConstraint("default_of", name="uq_addresses_one_default"),
        sa.CheckConstraint("default_of IS NULL OR default_of = user_id", name="ck_default_owner"),
        sa.CheckConstraint("pincode REGEXP '^[1-9][0-9]{5}$'", name="ck_addresses_pincode"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_addresses_user_created", "addresses", ["user_id", "create_time"])
    op.create_table(
        "request_ids",
        # Who the key belongs to (a user id, or the email for sign-ups), so
        # one client's key can never replay another's result.
        sa.Column("scope", sa.String(254), primary_key=True),
        sa.Column("method", sa.String(32), primary_key=True),
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("resource_id", sa.String(36), nullable=False),
        _ts("create_time"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )


def downgrade() -> None:
    """Drop everything upgrade created."""
    op.drop_table("request_ids")
    op.drop_table("addresses")
    op.drop_table("users")
