"""turn usage: what each LLM call cost, per user and day

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('md_turn_usage',
    sa.Column('usage_pk', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('message_pk', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('model', sa.String(length=255), nullable=False),
    sa.Column('prompt_tokens', sa.Integer(), nullable=False),
    sa.Column('completion_tokens', sa.Integer(), nullable=False),
    sa.Column('estimated', sa.Boolean(), nullable=False),
    sa.Column('time_to_first_token_ms', sa.Integer(), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=True),
    sa.Column('stopped', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('turn', 'title', 'todos')", name=op.f('ck_md_turn_usage_usage_kind_known')),
    sa.ForeignKeyConstraint(['message_pk'], ['md_message.message_pk'], name=op.f('fk_md_turn_usage_message_pk_md_message'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['md_user.user_id'], name=op.f('fk_md_turn_usage_user_id_md_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('usage_pk', name=op.f('pk_md_turn_usage'))
    )
    with op.batch_alter_table('md_turn_usage', schema=None) as batch_op:
        batch_op.create_index('ix_md_turn_usage_user_created', ['user_id', 'created_at'], unique=False)
        batch_op.create_index('uq_md_turn_usage_message_pk', ['message_pk'], unique=True, postgresql_where=sa.text('message_pk IS NOT NULL'))


def downgrade():
    with op.batch_alter_table('md_turn_usage', schema=None) as batch_op:
        batch_op.drop_index('uq_md_turn_usage_message_pk', postgresql_where=sa.text('message_pk IS NOT NULL'))
        batch_op.drop_index('ix_md_turn_usage_user_created')

    op.drop_table('md_turn_usage')
