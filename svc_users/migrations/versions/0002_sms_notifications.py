"""A user's SMS notification preference (transactional email is always on).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add users.sms_notifications, on for every existing account."""
    op.add_column(
        "users",
        sa.Column("sms_notifications", sa.Boolean, nullable=False, server_default=sa.true()),
    )


def downgrade() -> None:
    op.drop_column("users", "sms_notifications")
