-- 0002: the ledger's text columns compare byte for byte (COLLATE "C").
--
-- They hold identifiers (tenants, sources, vendors, persons, accounts, targets, sessions,
-- kinds), never prose sorted for a reader. Under the database's default collation, every
-- index insert compared them with the locale's rules (strcoll); on a database created
-- with LC_COLLATE fr_FR.UTF-8 that made each row cost PostgreSQL about half as much CPU
-- again (benches/replication.rs with VIGIE_BENCH_LOCALE, README).
--
-- Equality is unchanged (with a deterministic collation, two texts are equal only when
-- their bytes are), so every query finds what it found; only an ORDER BY on these columns
-- now sorts in byte order. The change is binary-compatible: PostgreSQL does not rewrite
-- the partitions' rows, it rebuilds the indexes on these columns, under the lock of this
-- migration's transaction.
--
-- Citus refuses to change the type of a distributed table's distribution column: run
-- this migration before `create_distributed_table` (deploy/postgresql/CITUS.md).

ALTER TABLE entries
    ALTER COLUMN tenant     TYPE text COLLATE "C",
    ALTER COLUMN kind       TYPE text COLLATE "C",
    ALTER COLUMN source     TYPE text COLLATE "C",
    ALTER COLUMN vendor     TYPE text COLLATE "C",
    ALTER COLUMN person     TYPE text COLLATE "C",
    ALTER COLUMN account    TYPE text COLLATE "C",
    ALTER COLUMN target     TYPE text COLLATE "C",
    ALTER COLUMN session_id TYPE text COLLATE "C";
