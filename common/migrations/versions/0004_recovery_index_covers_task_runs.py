"""the recovery index covers task runs' inputs (sender 'system') too

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 10:45:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('md_message', schema=None) as batch_op:
        batch_op.drop_index('ix_md_message_user_creation', postgresql_where=sa.text("sender = 'user'"))
        batch_op.create_index('ix_md_message_answerable_creation', ['creation_date'], unique=False, postgresql_where=sa.text("sender IN ('user', 'system')"))


def downgrade():
    with op.batch_alter_table('md_message', schema=None) as batch_op:
        batch_op.drop_index('ix_md_message_answerable_creation', postgresql_where=sa.text("sender IN ('user', 'system')"))
        batch_op.create_index('ix_md_message_user_creation', ['creation_date'], unique=False, postgresql_where=sa.text("sender = 'user'"))
