"""drop ix_md_message_session_id: ix_md_message_session_date starts with the same column

At 10 million messages it was 125 MB that every insert kept up to date and no plan
needed (bench/results/data_scale.md).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 14:00:00

"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("md_message", schema=None) as batch_op:
        batch_op.drop_index("ix_md_message_session_id")


def downgrade():
    with op.batch_alter_table("md_message", schema=None) as batch_op:
        batch_op.create_index("ix_md_message_session_id", ["session_id"], unique=False)
