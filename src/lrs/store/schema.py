"""The tables, as SQLAlchemy Core. Migrations are written from this and checked against it.

Every table leads with ``store_id`` so that a store is one contiguous slice of each index,
and the schema can be distributed by store later without a rewrite.
"""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Sequence,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSON, JSONB, UUID

metadata = MetaData()

DEFAULT_STORE_ID = 1

# One row: this installation's random secret (signs `more` tokens unless settings give one).
instance = Table(
    "instance",
    metadata,
    Column("id", SmallInteger, primary_key=True, autoincrement=False),
    Column("secret", LargeBinary, nullable=False),
    CheckConstraint("id = 1", name="instance_single_row"),
)

stores = Table(
    "stores",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("created", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("settings", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    # The key of the store's pseudonyms (setting `pseudonymise`): random, never shown.
    Column(
        "pseudonym_secret",
        LargeBinary,
        nullable=False,
        server_default=text(
            "decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex')"
        ),
    ),
)

credentials = Table(
    "credentials",
    metadata,
    Column("store_id", BigInteger, ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
    Column("key", Text, nullable=False),
    # sha256 of the secret: the secret is random and long, so a slow hash adds nothing.
    Column("secret_hash", LargeBinary, nullable=False),
    Column("label", Text, nullable=False, server_default=""),
    Column("scopes", ARRAY(Text), nullable=False),
    Column("authority", JSONB, nullable=False),
    Column("created", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires", DateTime(timezone=True)),
    Column("revoked", DateTime(timezone=True)),
    # A region credential (scope region/analytics) reads that region's aggregates only.
    Column("region_id", BigInteger, ForeignKey("regions.id", ondelete="CASCADE")),
    PrimaryKeyConstraint("store_id", "key"),
    UniqueConstraint("key", name="credentials_key_key"),
)

statement_seq = Sequence("statement_seq", metadata=metadata)

# No foreign key to the store: it would check the store row once per statement written.
# Each write locks that row once instead (store.statements.insert), and a store's deletion
# deletes its statements itself (store.stores.delete).
statements = Table(
    "statements",
    metadata,
    Column("store_id", BigInteger, nullable=False),
    # The paging order: grows with every insert, never reused.
    Column("seq", BigInteger, statement_seq, server_default=statement_seq.next_value(), nullable=False),
    Column("id", UUID(as_uuid=True), nullable=False),
    Column("stored", DateTime(timezone=True), nullable=False),
    Column("timestamp", DateTime(timezone=True), nullable=False),
    Column("verb_id", Text, nullable=False),
    Column("voided", Boolean, nullable=False, server_default=text("false")),
    # The statement this one voids, when it is a voiding statement.
    Column("voids", UUID(as_uuid=True)),
    # The statement its object refers to (StatementRef), voiding or not.
    Column("refers_to", UUID(as_uuid=True)),
    Column("credential", Text, nullable=False),
    # The JSON text as it is served, kept as written (json, not jsonb): PostgreSQL writes
    # the text out as it is, where jsonb is parsed in and printed out again, which cost it
    # about 9 µs per statement each way (migration 0024). The few queries that look inside
    # it (an agent's names, attachments still referenced) read it as json.
    Column("statement", JSON, nullable=False),
    PrimaryKeyConstraint("store_id", "seq"),
    UniqueConstraint("store_id", "id", name="statements_store_id_id_key"),
    Index("statements_voids_idx", "store_id", "voids", postgresql_where=text("voids IS NOT NULL")),
    Index(
        "statements_refers_to_idx", "store_id", "refers_to", postgresql_where=text("refers_to IS NOT NULL")
    ),
    Index("statements_stored_idx", "store_id", "stored"),
)

# One row per (statement, thing a query filter can match): agents, activities, verb and
# registration, each by a 16-byte key (store.keys.index_key). `related` rows only match the
# related_* filters.
statement_index = Table(
    "statement_index",
    metadata,
    Column("store_id", BigInteger, nullable=False),
    Column("key", UUID(as_uuid=False), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("related", Boolean, nullable=False),
    PrimaryKeyConstraint("store_id", "key", "seq", "related"),
)

# State, Activity Profile and Agent Profile documents. `owner_hash` is a sha256 of the kind,
# activity, agent and registration, so the key stays small however long the IRIs are.
documents = Table(
    "documents",
    metadata,
    Column("store_id", BigInteger, ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
    Column("owner_hash", LargeBinary, nullable=False),
    Column("doc_id", Text, nullable=False),
    Column("kind", SmallInteger, nullable=False),
    Column("activity_id", Text, nullable=False),
    Column("agent_key", Text, nullable=False),
    Column("registration", Text, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("content_type", Text, nullable=False),
    Column("etag", Text, nullable=False),
    Column("updated", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("store_id", "owner_hash", "doc_id"),
)

# The canonical definition of each activity, merged from statements sent with `define`.
activities = Table(
    "activities",
    metadata,
    Column("store_id", BigInteger, ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
    # store.keys.analytics_key of the activity id.
    Column("key", UUID(as_uuid=True), nullable=False),
    Column("activity_id", Text, nullable=False),
    Column("definition", JSONB, nullable=False),
    Column("updated", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("store_id", "key"),
)

# Attachment content, once per store and hash; the bytes live in 1 MiB chunks.
attachments = Table(
    "attachments",
    metadata,
    Column("store_id", BigInteger, ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
    Column("sha2", Text, nullable=False),
    Column("content_type", Text, nullable=False),
    Column("length", BigInteger, nullable=False),
    Column("created", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("store_id", "sha2"),
)

attachment_chunks = Table(
    "attachment_chunks",
    metadata,
    Column("store_id", BigInteger, nullable=False),
    Column("sha2", Text, nullable=False),
    Column("n", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    PrimaryKeyConstraint("store_id", "sha2", "n"),
    ForeignKeyConstraint(
        ["store_id", "sha2"], ["attachments.store_id", "attachments.sha2"], ondelete="CASCADE"
    ),
)

# Which credentials sent an attachment's content: a `statements/read/mine` credential is
# served only content it sent itself, whatever hashes its statements declare.
attachment_senders = Table(
    "attachment_senders",
    metadata,
    Column("store_id", BigInteger, nullable=False),
    Column("sha2", Text, nullable=False),
    Column("credential", Text, nullable=False),
    PrimaryKeyConstraint("store_id", "sha2", "credential"),
    ForeignKeyConstraint(
        ["store_id", "sha2"], ["attachments.store_id", "attachments.sha2"], ondelete="CASCADE"
    ),
)

# What admins did. Installation-wide rather than per store: it outlives deleted stores, so it
# names the store instead of referencing it.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("store", Text),
    Column("target", Text),
    Column("details", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
)

# Analytics rollup, kept by the write path: the figures of one (activity, hour, learner), for
# questions about a time window. The nil UUID as activity_key (store.keys.OVERALL_KEY) holds
# every statement once (store-wide).
analytics_hourly = Table(
    "analytics_hourly",
    metadata,
    Column("store_id", BigInteger, ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
    Column("activity_key", UUID(as_uuid=True), nullable=False),
    Column("hour", DateTime(timezone=True), nullable=False),
    Column("learner_key", UUID(as_uuid=True), nullable=False),
    Column("statements", Integer, nullable=False),
    Column("completions", Integer, nullable=False),
    Column("first_at", DateTime(timezone=True), nullable=False),
    Column("last_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True)),
    Column("passed", Boolean, nullable=False),
    Column("failed", Boolean, nullable=False),
    Column("best_score", Float),
    Column("duration_seconds", Float, nullable=False),
    Column("sessions", Integer, nullable=False, server_default=text("0")),
    Column("abandoned", Integer, nullable=False, server_default=text("0")),
    # The figures a window's lists add up ride in the key's index, so that reading a window
    # (per activity, a range of hours) touches only index pages; see migration 0018.
    PrimaryKeyConstraint(
        "store_id",
        "activity_key",
        "hour",
        "learner_key",
        postgresql_include=["statements", "completions", "completed_at", "duration_seconds"],
    ),
    # A window open to the present counts its completers from the hours that hold one.
    Index(
        "analytics_hourly_completed",
        "store_id",
        "activity_key",
        "hour",
        postgresql_include=["learner_key"],
        postgresql_where=text("completed_at IS NOT NULL"),
    ),
)

# The same per (activity, learner), over all time: what completion, drop-off and the learner
# list read when no window is asked for. `was_completed` is set by each upsert to whether the
# learner had completed before it, so the write path can count newly completed learners.
analytics_progress = Table(
    "analytics_progress",
    metadata,
    Column("store_id", BigInteger, ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
    Column("activity_key", UUID(as_uuid=True), nullable=False),
    Column("learner_key", UUID(as_uuid=True), nullable=False),
    Column("activity_id", Text, nullable=False),
    Column("learner", Text, nullable=False),
    Column("learner_name", Text),
    Column("statements", Integer, nullable=False),
    Column("completions", Integer, nullable=False),
    Column("first_at", DateTime(timezone=True), nullable=False),
    Column("last_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True)),
    Column("passed", Boolean, nullable=False),
    Column("failed", Boolean, nullable=False),
    Column("best_score", Float),
    Column("duration_seconds", Float, nullable=False),
    Column("groups", JSONB, nullable=False),
    Column("was_completed", Boolean, nullable=False),
    Column("sessions", Integer, nullable=False, server_default=text("0")),
    Column("abandoned", Integer, nullable=False, server_default=text("0")),
    # The learner's latest rating of the activity (see analytics.rollup.Rating).
    Column("rating_at", DateTime(timezone=True)),
    Column("rating_scaled", Float),
    Column("rating_raw", Float),
    Column("rating_min", Float),
    Column("rating_max", Float),
    Column("rating_response", Text),
    PrimaryKeyConstraint("store_id", "activity_key", "learner_key"),
    # Trends count learners who started or completed since a date; assignments read who
    # completed. Both read ranges of these instead of every learner of the activity.
    Index("analytics_progress_started", "store_id", "activity_key", "first_at"),
    Index(
        "analytics_progress_completed",
        "store_id",
        "activity_key",
        "completed_at",
        postgresql_include=["learner_key"],
        postgresql_where=text("completed_at IS NOT NULL"),
    ),
)

# Learners started and completed, and time spent, per activity (the activity list).
analytics_activity = Table(
    "analytics_activity",
    metadata,
    Column("store_id", BigInteger, ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
    Column("activity_key", UUID(as_uuid=True), nullable=False),
    Column("activity_id", Text, nullable=False),
    Column("learners_started", Integer, nullable=False),
    Column("learners_completed", Integer, nullable=False),
    Column("duration_seconds", Float, nullable=False),
    PrimaryKeyConstraint("store_id", "activity_key"),
)

# The time zone a store's period figures are kept in.
analytics_zone = Table(
    "analytics_zone",
    metadata,
    Column("store_id", BigInteger, ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
    Column("zone", Text, nullable=False),
    PrimaryKeyConstraint("store_id"),
)

# Store-wide: which learners were active in which local period (day, week, month, or hour of
# the week: "cell"), with how many of their active UTC hours fall in it, and the figures of
# each period. Counting distinct learners then reads one row per period.
analytics_presence = Table(
    "analytics_presence",
    metadata,
    Column("store_id", BigInteger, ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
    Column("kind", Text, nullable=False),
    Column("period", Integer, nullable=False),
    Column("learner_key", UUID(as_uuid=True), nullable=False),
    Column("hours", Integer, nullable=False),
    PrimaryKeyConstraint("store_id", "kind", "period", "learner_key"),
)

analytics_period = Table(
    "analytics_period",
    metadata,
    Column("store_id", BigInteger, ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
    Column("kind", Text, nullable=False),
    Column("period", Integer, nullable=False),
    Column("learners", Integer, nullable=False),
    Column("statements", BigInteger, nullable=False),
    Column("completions", BigInteger, nullable=False),
    Column("duration_seconds", Float, nullable=False),
    PrimaryKeyConstraint("store_id", "kind", "period"),
)

# Per activity and local month (in the store's zone, like the period figures): which learners
# were active, and the figures. A window's whole months are read from these, its cut ends
# from the hourly rows: a learner active in many hours of a month is one row here (migration
# 0019). The store-wide rows (OVERALL_KEY) are left out; their periods are analytics_period's.
analytics_month_learners = Table(
    "analytics_month_learners",
    metadata,
    Column("store_id", BigInteger, ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
    Column("activity_key", UUID(as_uuid=True), nullable=False),
    Column("month", Integer, nullable=False),
    Column("learner_key", UUID(as_uuid=True), nullable=False),
    PrimaryKeyConstraint("store_id", "activity_key", "month", "learner_key"),
)

analytics_activity_months = Table(
    "analytics_activity_months",
    metadata,
    Column("store_id", BigInteger, ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
    Column("activity_key", UUID(as_uuid=True), nullable=False),
    Column("month", Integer, nullable=False),
    Column("statements", BigInteger, nullable=False),
    Column("completions", BigInteger, nullable=False),
    Column("duration_seconds", Float, nullable=False),
    PrimaryKeyConstraint("store_id", "activity_key", "month"),
)

# Which activities statements have shown under which parent (for drop-off).
analytics_children = Table(
    "analytics_children",
    metadata,
    Column("store_id", BigInteger, ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
    Column("parent_key", UUID(as_uuid=True), nullable=False),
    Column("child_key", UUID(as_uuid=True), nullable=False),
    Column("child_id", Text, nullable=False),
    PrimaryKeyConstraint("store_id", "parent_key", "child_key"),
)


# The name (a language map) statements last gave each activity: what analytics call an
# activity that has no canonical definition.
analytics_names = Table(
    "analytics_names",
    metadata,
    Column("store_id", BigInteger, ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
    Column("activity_key", UUID(as_uuid=True), nullable=False),
    Column("activity_id", Text, nullable=False),
    Column("name", JSONB, nullable=False),
    PrimaryKeyConstraint("store_id", "activity_key"),
)

# Statements stored but not yet folded into the analytics rollups: one row per write
# transaction, deleted by the worker in the transaction that folds it. ``statements`` is
# how many ``seqs`` holds, kept beside it so that the backlog and the worker's next batch
# are counted without decompressing every array (migration 0022).
rollup_queue = Table(
    "rollup_queue",
    metadata,
    Column("store_id", BigInteger, ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
    Column("id", BigInteger, Identity(always=False), nullable=False),
    Column("stored", DateTime(timezone=True), nullable=False),
    Column("seqs", ARRAY(BigInteger), nullable=False),
    Column("voided", ARRAY(UUID(as_uuid=True)), nullable=False),
    Column("statements", Integer, Computed("cardinality(seqs)", persisted=True), nullable=False),
    PrimaryKeyConstraint("store_id", "id"),
    Index("rollup_queue_id", "id"),
)


# Target groups: named sets of learners, nested (municipality, sector, unit). A cohort's
# figures include the members of every cohort below it.
cohorts = Table(
    "cohorts",
    metadata,
    Column("store_id", BigInteger, ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
    Column("id", BigInteger, Identity(always=False), nullable=False),
    Column("name", Text, nullable=False),
    Column("parent_id", BigInteger),
    Column("created", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # When the membership last changed: a new change may not be dated before it.
    Column("changed", DateTime(timezone=True)),
    PrimaryKeyConstraint("store_id", "id"),
    UniqueConstraint("store_id", "name", name="cohorts_store_id_name_key"),
    ForeignKeyConstraint(["store_id", "parent_id"], ["cohorts.store_id", "cohorts.id"]),
)

# Who was in a cohort when: a membership runs from valid_from until valid_to (open: still).
cohort_members = Table(
    "cohort_members",
    metadata,
    Column("store_id", BigInteger, nullable=False),
    Column("cohort_id", BigInteger, nullable=False),
    Column("learner_key", UUID(as_uuid=True), nullable=False),
    Column("learner", Text, nullable=False),
    Column("name", Text),
    Column("valid_from", DateTime(timezone=True), nullable=False),
    Column("valid_to", DateTime(timezone=True)),
    PrimaryKeyConstraint("store_id", "cohort_id", "learner_key", "valid_from"),
    ForeignKeyConstraint(["store_id", "cohort_id"], ["cohorts.store_id", "cohorts.id"], ondelete="CASCADE"),
    # A learner's cohorts: how figures for one course find the cohorts of its learners.
    Index("cohort_members_learner", "store_id", "learner_key"),
)

# A cohort must complete an activity, optionally by a due date.
cohort_assignments = Table(
    "cohort_assignments",
    metadata,
    Column("store_id", BigInteger, nullable=False),
    Column("cohort_id", BigInteger, nullable=False),
    Column("activity_key", UUID(as_uuid=True), nullable=False),
    Column("activity_id", Text, nullable=False),
    Column("due", DateTime(timezone=True)),
    PrimaryKeyConstraint("store_id", "cohort_id", "activity_key"),
    ForeignKeyConstraint(["store_id", "cohort_id"], ["cohorts.store_id", "cohorts.id"], ondelete="CASCADE"),
    Index("cohort_assignments_activity", "store_id", "activity_key"),
)

# What an activity cost to make and run, for cost per completion.
activity_costs = Table(
    "activity_costs",
    metadata,
    Column("store_id", BigInteger, ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
    Column("activity_key", UUID(as_uuid=True), nullable=False),
    Column("activity_id", Text, nullable=False),
    Column("amount", Numeric(18, 2), nullable=False),
    Column("currency", Text, nullable=False),
    Column("updated", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("store_id", "activity_key"),
    CheckConstraint("amount >= 0", name="activity_costs_amount_check"),
)

# Dashboard sign-ins: the browser holds a random token, the table its hash. Signing out
# deletes the row, so the session ends at once in every server process.
dashboard_sessions = Table(
    "dashboard_sessions",
    metadata,
    Column("token_hash", LargeBinary, primary_key=True),
    Column("credential_key", Text, ForeignKey("credentials.key", ondelete="CASCADE"), nullable=False),
    Column("csrf", Text, nullable=False),
    Column("created", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires", DateTime(timezone=True), nullable=False),
    Index("dashboard_sessions_expires", "expires"),
)

# Forwarding: per store, rules that send matching statements to another LRS. A statement
# that matches is put in the rule's outbox in the transaction that stores it; the elected
# worker sends the outbox in seq order and deletes what the target accepted. The target's
# credentials and the pseudonym secret are kept encrypted (AES-GCM).
forward_rules = Table(
    "forward_rules",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("store_id", BigInteger, ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    Column("endpoint", Text, nullable=False),
    Column("version", Text, nullable=False),
    Column("credentials", LargeBinary, nullable=False),
    Column("filter", JSONB, nullable=False),
    Column("pseudonym_secret", LargeBinary),
    Column("pseudonym_home_page", Text),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("batch_size", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_error", Text),
    Column("sent", BigInteger, nullable=False, server_default=text("0")),
    Column("failed", BigInteger, nullable=False, server_default=text("0")),
    Column("dead", BigInteger, nullable=False, server_default=text("0")),
    Column("created", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("store_id", "name", name="forward_rules_store_id_name_key"),
)

forward_outbox = Table(
    "forward_outbox",
    metadata,
    Column("rule_id", BigInteger, ForeignKey("forward_rules.id", ondelete="CASCADE"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    PrimaryKeyConstraint("rule_id", "seq"),
)

# Batches a target refused too many times, with the last error: retried or dropped by hand.
forward_dead = Table(
    "forward_dead",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("rule_id", BigInteger, ForeignKey("forward_rules.id", ondelete="CASCADE"), nullable=False),
    Column("seqs", ARRAY(BigInteger), nullable=False),
    Column("error", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("forward_dead_rule", "rule_id"),
)

# Pulling: other LRSs a store reads statements from, each with how far it has got (the
# `stored` of the last statement taken) and, if scheduled, how often the worker pulls.
pull_sources = Table(
    "pull_sources",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("store_id", BigInteger, ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    Column("endpoint", Text, nullable=False),
    Column("version", Text, nullable=False),
    Column("credentials", LargeBinary, nullable=False),
    Column("checkpoint", DateTime(timezone=True)),
    Column("every_seconds", Integer),
    Column("last_run", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("pulled", BigInteger, nullable=False, server_default=text("0")),
    Column("created", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("store_id", "name", name="pull_sources_store_id_name_key"),
)


# When the retention job last ran for a store (setting `retention_months`), and how many
# statements it deleted then: the elected worker runs it once a day per store.
retention_runs = Table(
    "retention_runs",
    metadata,
    Column("store_id", BigInteger, ForeignKey("stores.id", ondelete="CASCADE"), primary_key=True),
    Column("last_run", DateTime(timezone=True), nullable=False),
    Column("deleted", BigInteger, nullable=False),
)


# Regions: named groups of stores that share aggregate figures, and nothing else. A store is
# counted in its regions' answers only while its own setting `region_sharing` allows it.
regions = Table(
    "regions",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("min_group_size", Integer, nullable=False, server_default=text("5")),
    Column("created", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("min_group_size >= 1", name="regions_min_group_size_check"),
)

region_members = Table(
    "region_members",
    metadata,
    Column("region_id", BigInteger, ForeignKey("regions.id", ondelete="CASCADE"), nullable=False),
    Column("store_id", BigInteger, ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
    Column("joined", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("region_id", "store_id"),
)


# Read replicas. The primary's WAL position after each credential's last write, so that the
# credential's reads wait for a replica that has replayed it (read-your-writes). Unlogged:
# it is read on the primary only, and losing it in a crash costs nothing but a few reads
# that a replica could have served.
recent_writes = Table(
    "recent_writes",
    metadata,
    Column("writer", Text, primary_key=True),
    Column("lsn", Numeric, nullable=False),  # pg_lsn as bytes from 0/0
    prefixes=["UNLOGGED"],
)

# One row, written every second by the elected worker when replicas are configured: the
# primary's consistent-through time, committed after it was taken. A replica that has
# replayed this row has every statement stored before `through`; `beat` says how old it is.
replica_heartbeat = Table(
    "replica_heartbeat",
    metadata,
    Column("id", SmallInteger, primary_key=True, autoincrement=False),
    Column("through", DateTime(timezone=True), nullable=False),
    Column("beat", DateTime(timezone=True), nullable=False),
    CheckConstraint("id = 1", name="replica_heartbeat_single_row"),
)
