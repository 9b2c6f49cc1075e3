-- Orleans.MoE on PostgreSQL, part 1: the table of named queries the Orleans ADO.NET providers read at start-up
-- ("SELECT QueryKey, QueryText FROM OrleansQuery"). Written for Microsoft.Orleans.*.AdoNet 10.4.2 with Npgsql.
-- Every script in this folder is idempotent: apply them in order, as often as you like
-- (psql -v ON_ERROR_STOP=1 -f 01-main.sql -f 02-clustering.sql -f 03-persistence.sql, or `PostgresSchema.Apply`).

CREATE TABLE IF NOT EXISTS OrleansQuery
(
    QueryKey  varchar(64) NOT NULL,
    QueryText text        NOT NULL,
    CONSTRAINT PK_OrleansQuery PRIMARY KEY (QueryKey)
);
