"""run status history (run_events); runs.queued_at and runs.resumed_from_step

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_run_events_run_id_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_events")),
    )
    op.create_index(op.f("ix_run_events_run_id_id"), "run_events", ["run_id", "id"], unique=False)
    with op.batch_alter_table("runs") as batch_op:
        batch_op.add_column(sa.Column("queued_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("resumed_from_step", sa.Integer(), nullable=True))
    op.execute("UPDATE runs SET queued_at = created_at WHERE status = 'queued'")


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch_op:
        batch_op.drop_column("resumed_from_step")
        batch_op.drop_column("queued_at")
    op.drop_index(op.f("ix_run_events_run_id_id"), table_name="run_events")
    op.drop_table("run_events")
