"""what the Mojodex web app needs: the user's time zone, todos

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 10:00:00

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('md_user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('timezone_offset', sa.Integer(), nullable=True))

    with op.batch_alter_table('md_user_task_execution', schema=None) as batch_op:
        batch_op.add_column(sa.Column('todos_extracted', sa.DateTime(timezone=True), nullable=True))

    op.create_table('md_todo',
    sa.Column('todo_pk', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('user_task_execution_fk', sa.Integer(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('scheduled_date', sa.Date(), nullable=False),
    sa.Column('creation_date', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed', sa.DateTime(timezone=True), nullable=True),
    sa.Column('read_by_user', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deleted_by_user', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_task_execution_fk'], ['md_user_task_execution.user_task_execution_pk'], name=op.f('fk_md_todo_user_task_execution_fk_md_user_task_execution'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('todo_pk', name=op.f('pk_md_todo'))
    )
    with op.batch_alter_table('md_todo', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_md_todo_user_task_execution_fk'), ['user_task_execution_fk'], unique=False)


def downgrade():
    with op.batch_alter_table('md_todo', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_md_todo_user_task_execution_fk'))

    op.drop_table('md_todo')
    with op.batch_alter_table('md_user_task_execution', schema=None) as batch_op:
        batch_op.drop_column('todos_extracted')

    with op.batch_alter_table('md_user', schema=None) as batch_op:
        batch_op.drop_column('timezone_offset')
