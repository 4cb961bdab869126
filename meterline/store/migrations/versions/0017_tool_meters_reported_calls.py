"""Built-in tool uses on usage records and archived records (web searches, file searches, code
interpreter sessions: priced per use; their charge lines roll up in usage_daily_meters like every
meter's); the calls reported rather than passing the gateway counted in the daily rollup
(reconciliation names them as a cause without reading the records); and usage_daily_models, the
daily rollup without users and keys, which the statistics that need neither read; and
usage_daily_people, who spent per day (the dashboard's top users and keys).

Existing records get 0 tool uses: no call was metered for its tools before. The rollup's
reported calls are counted from the reported records (sources other than the gateway's), per
tenant-local day as the rollup keeps them; then usage_daily_models and usage_daily_people are
summed from usage_daily.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-08 02:00:00
"""

from __future__ import annotations

from collections import Counter
from decimal import Context, Decimal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

from meterline.store.types import Money, UtcDateTime

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

RECORD_TABLES = ('usage_records', 'usage_records_archive')
TOOL_COLUMNS = ('web_search_calls', 'file_search_calls', 'code_interpreter_sessions')
GATEWAY_SOURCES = ('gateway', 'refund')
KEY = ('tenant_id', 'user_id', 'key_id', 'provider', 'model', 'status', 'currency',
       'billed_currency')
MODEL_KEY = ('tenant_id', 'day', 'provider', 'model', 'status', 'currency', 'billed_currency')
KEY_LENGTHS = {'tenant_id': 64, 'provider': 64, 'model': 200, 'status': 16, 'currency': 3,
               'billed_currency': 3}
LATENCY_BOUNDS_MS = (50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000, 20000,
                     30000, 60000, 120000)
COUNTS = ('calls', 'input_tokens', 'cached_input_tokens', 'cache_write_tokens',
          'cache_write_1h_tokens', 'output_tokens', 'reasoning_tokens', 'characters', 'images',
          'requests', 'unpriced_calls', 'estimated_calls', 'reported_calls', 'latency_count',
          'latency_ms_total', *(f'latency_le_{b}' for b in LATENCY_BOUNDS_MS),
          f'latency_over_{LATENCY_BOUNDS_MS[-1]}')
MONEY = ('seconds', 'cost', 'billed_cost')
PEOPLE_KEY = ('tenant_id', 'day', 'user_id', 'key_id', 'currency', 'billed_currency')
PEOPLE_LENGTHS = {'tenant_id': 64, 'user_id': 128, 'key_id': 32, 'currency': 3,
                  'billed_currency': 3}
PEOPLE_COUNTS = ('records', 'calls', 'successes', 'input_tokens', 'output_tokens',
                 'unpriced_calls')
PEOPLE_MONEY = ('cost', 'billed_cost')
EXACT = Context(prec=200)


def upgrade() -> None:
    for table in RECORD_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in TOOL_COLUMNS:
                batch_op.add_column(sa.Column(column, sa.BigInteger(), nullable=False,
                                              server_default='0'))
    with op.batch_alter_table('usage_daily', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reported_calls', sa.BigInteger(), nullable=False,
                                      server_default='0'))
    _count_reported(op.get_bind())
    op.create_table(
        'usage_daily_models',
        *(sa.Column(n, sa.Date() if n == 'day' else sa.String(length=KEY_LENGTHS[n]),
                    nullable=False) for n in MODEL_KEY),
        *(sa.Column(n, sa.BigInteger(), nullable=False) for n in COUNTS),
        *(sa.Column(n, Money(), nullable=False) for n in MONEY),
        sa.PrimaryKeyConstraint(*MODEL_KEY, name=op.f('pk_usage_daily_models')))
    _sum_by_model(op.get_bind())
    op.create_table(
        'usage_daily_people',
        *(sa.Column(n, sa.Date() if n == 'day' else sa.String(length=PEOPLE_LENGTHS[n]),
                    nullable=False) for n in PEOPLE_KEY),
        *(sa.Column(n, sa.BigInteger(), nullable=False) for n in PEOPLE_COUNTS),
        *(sa.Column(n, Money(), nullable=False) for n in PEOPLE_MONEY),
        sa.PrimaryKeyConstraint(*PEOPLE_KEY, name=op.f('pk_usage_daily_people')))
    op.create_index('ix_usage_daily_people_day', 'usage_daily_people', ['day'], unique=False)
    _sum_by_person(op.get_bind())


def _sum_by_person(conn: sa.Connection) -> None:
    names = ', '.join((*PEOPLE_KEY, *PEOPLE_COUNTS, *PEOPLE_MONEY))
    if conn.dialect.name == 'postgresql':
        conn.execute(sa.text(
            f"INSERT INTO usage_daily_people ({names}) SELECT {', '.join(PEOPLE_KEY)}, "
            "sum(calls), coalesce(sum(calls) FILTER (WHERE status <> 'refunded'), 0), "
            "coalesce(sum(calls) FILTER (WHERE status = 'success'), 0), sum(input_tokens), "
            "sum(output_tokens), sum(unpriced_calls), sum(cost), sum(billed_cost) "
            f"FROM usage_daily GROUP BY {', '.join(PEOPLE_KEY)}"))
        return
    daily = sa.table('usage_daily', sa.column('day', sa.Date), sa.column('status'),
                     *(sa.column(n) for n in PEOPLE_KEY if n != 'day'),
                     *(sa.column(n) for n in ('calls', 'input_tokens', 'output_tokens',
                                              'unpriced_calls')),
                     *(sa.column(n, Money) for n in PEOPLE_MONEY))
    counts: dict[tuple[object, ...], list[int]] = {}
    money: dict[tuple[object, ...], list[Decimal]] = {}
    for row in conn.execute(sa.select(daily)):
        key = tuple(getattr(row, n) for n in PEOPLE_KEY)
        ints = [row.calls, 0 if row.status == 'refunded' else row.calls,
                row.calls if row.status == 'success' else 0, row.input_tokens,
                row.output_tokens, row.unpriced_calls]
        amounts = [row.cost, row.billed_cost]
        if key in counts:
            ints = [a + b for a, b in zip(counts[key], ints, strict=True)]
            amounts = [EXACT.add(a, b) for a, b in zip(money[key], amounts, strict=True)]
        counts[key], money[key] = ints, amounts
    people = sa.table('usage_daily_people', sa.column('day', sa.Date),
                      *(sa.column(n) for n in PEOPLE_KEY if n != 'day'),
                      *(sa.column(n) for n in PEOPLE_COUNTS),
                      *(sa.column(n, Money) for n in PEOPLE_MONEY))
    rows = [dict(zip((*PEOPLE_KEY, *PEOPLE_COUNTS, *PEOPLE_MONEY), (*key, *ints, *money[key]),
                     strict=True)) for key, ints in counts.items()]
    if rows:
        conn.execute(sa.insert(people), rows)


def _sum_by_model(conn: sa.Connection) -> None:
    names = ', '.join((*MODEL_KEY, *COUNTS, *MONEY))
    if conn.dialect.name == 'postgresql':  # exact NUMERIC sums in the database
        sums = ', '.join((*(f'sum({n})' for n in COUNTS), *(f'sum({n})' for n in MONEY)))
        conn.execute(sa.text(
            f"INSERT INTO usage_daily_models ({names}) SELECT {', '.join(MODEL_KEY)}, {sums} "
            f"FROM usage_daily GROUP BY {', '.join(MODEL_KEY)}"))
        return
    # SQLite keeps money as text: summed here as Decimals, exactly.
    daily = sa.table('usage_daily', sa.column('day', sa.Date), *(sa.column(n) for n in MODEL_KEY
                                                                 if n != 'day'),
                     *(sa.column(n) for n in COUNTS), *(sa.column(n, Money) for n in MONEY))
    counts: dict[tuple[object, ...], list[int]] = {}
    money: dict[tuple[object, ...], list[Decimal]] = {}
    for row in conn.execute(sa.select(daily)):
        key = tuple(row._mapping[n] for n in MODEL_KEY)
        ints = [row._mapping[n] for n in COUNTS]
        amounts = [row._mapping[n] for n in MONEY]
        if key in counts:
            ints = [a + b for a, b in zip(counts[key], ints, strict=True)]
            amounts = [EXACT.add(a, b) for a, b in zip(money[key], amounts, strict=True)]
        counts[key], money[key] = ints, amounts
    models = sa.table('usage_daily_models', sa.column('day', sa.Date),
                      *(sa.column(n) for n in MODEL_KEY if n != 'day'),
                      *(sa.column(n) for n in COUNTS), *(sa.column(n, Money) for n in MONEY))
    rows = [dict(zip((*MODEL_KEY, *COUNTS, *MONEY), (*key, *ints, *money[key]), strict=True))
            for key, ints in counts.items()]
    if rows:
        conn.execute(sa.insert(models), rows)


def _count_reported(conn: sa.Connection) -> None:
    zones = {row.id: ZoneInfo(row.timezone)
             for row in conn.execute(sa.text("SELECT id, timezone FROM tenants"))}
    counts: Counter[tuple[object, ...]] = Counter()
    for name in RECORD_TABLES:
        table = sa.table(name, sa.column('occurred_at', UtcDateTime), sa.column('source'),
                         *(sa.column(c) for c in KEY))
        query = sa.select(table).where(table.c.source.not_in(GATEWAY_SOURCES))
        for row in conn.execute(query):
            day = row.occurred_at.astimezone(zones.get(row.tenant_id, ZoneInfo("UTC"))).date()
            counts[(row.tenant_id, day, row.user_id or '', row.key_id or '', row.provider,
                    row.model, row.status, row.currency or '', row.billed_currency or '')] += 1
    daily = sa.table('usage_daily', sa.column('day', sa.Date), sa.column('reported_calls'),
                     *(sa.column(c) for c in KEY))
    update = (sa.update(daily).values(reported_calls=sa.bindparam('calls'))
              .where(daily.c.tenant_id == sa.bindparam('t'), daily.c.day == sa.bindparam('d'),
                     daily.c.user_id == sa.bindparam('u'), daily.c.key_id == sa.bindparam('k'),
                     daily.c.provider == sa.bindparam('p'), daily.c.model == sa.bindparam('m'),
                     daily.c.status == sa.bindparam('s'),
                     daily.c.currency == sa.bindparam('c'),
                     daily.c.billed_currency == sa.bindparam('b')))
    rows = [dict(zip(('t', 'd', 'u', 'k', 'p', 'm', 's', 'c', 'b'), key, strict=True),
                 calls=calls) for key, calls in counts.items()]
    if rows:
        conn.execute(update, rows)


def downgrade() -> None:
    op.drop_index('ix_usage_daily_people_day', table_name='usage_daily_people')
    op.drop_table('usage_daily_people')
    op.drop_table('usage_daily_models')
    with op.batch_alter_table('usage_daily', schema=None) as batch_op:
        batch_op.drop_column('reported_calls')
    for table in RECORD_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in TOOL_COLUMNS:
                batch_op.drop_column(column)
