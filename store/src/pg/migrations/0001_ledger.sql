-- 0001: the ledger in PostgreSQL.
--
-- entries: every journal entry (connection events, declarations, seals), range-partitioned
-- by month on part_at; partitions are created by the service (schema::ensure_partitions),
-- never by this migration. Citus: distributed by tenant (the distribution column is in the
-- primary key, the only unique index); the other tables are small reference tables.

CREATE TABLE entries (
    chain_id     bytea       NOT NULL CHECK (octet_length(chain_id) = 16),
    seq          bigint      NOT NULL CHECK (seq >= 0),
    -- the establishment; '' for seals, which belong to the chain, not to a tenant
    tenant       text        NOT NULL,
    -- partition key: the journal's received_at carried forward along the chain so it never
    -- decreases with seq (a retention cut then falls on a partition boundary)
    part_at      timestamptz NOT NULL,
    epoch        bigint      NOT NULL CHECK (epoch >= 0),
    mac          bytea       NOT NULL CHECK (octet_length(mac) = 32),
    digest       bytea       NOT NULL CHECK (octet_length(digest) = 32),
    entry_type   text        NOT NULL CHECK (entry_type IN ('event', 'declaration', 'seal')),
    kind         text        NOT NULL,
    -- events: the reporting bastion or gateway; declarations: who filed it
    source       text,
    vendor       text,
    person       text,
    account      text,
    target       text,
    session_id   text,
    source_addr  inet,
    -- events: the source's clock; declarations: filed_at; seals: sealed_at
    occurred_at  timestamptz NOT NULL,
    -- events: the collector's clock as signed in the entry; others: the journal's
    received_at  timestamptz NOT NULL,
    canonical    bytea       NOT NULL,
    PRIMARY KEY (chain_id, seq, tenant, part_at)
) PARTITION BY RANGE (part_at);

-- A vendor's journal over a period; a window's sessions (windows belong to a vendor).
CREATE INDEX entries_vendor_time ON entries (tenant, vendor, occurred_at);
-- A person's sessions.
CREATE INDEX entries_person_time ON entries (tenant, person, occurred_at)
    WHERE person IS NOT NULL;
-- The events of one session (its end often lacks the person).
CREATE INDEX entries_session ON entries (tenant, session_id)
    WHERE session_id IS NOT NULL;
-- A chain's seals, for retention (rare: a small partial index).
CREATE INDEX entries_seals ON entries (chain_id, seq, tenant)
    WHERE entry_type = 'seal';
-- Declarations, folded in time order by the auditor (rare: a small partial index).
CREATE INDEX entries_declarations ON entries (tenant, occurred_at)
    WHERE entry_type = 'declaration';

-- Where each chain's replication stands; written in the same transaction as each batch.
CREATE TABLE replication_positions (
    chain_id      bytea       PRIMARY KEY CHECK (octet_length(chain_id) = 16),
    next_seq      bigint      NOT NULL CHECK (next_seq >= 0),
    last_part_at  timestamptz,
    last_seal_seq bigint,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Monthly partitions dropped by retention, with the instant the ledger starts from.
CREATE TABLE retention_drops (
    partition_name text        PRIMARY KEY,
    range_from     timestamptz NOT NULL,
    range_to       timestamptz NOT NULL,
    dropped_at     timestamptz NOT NULL DEFAULT now()
);
