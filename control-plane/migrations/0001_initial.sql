-- The control plane's metadata store (docs/design/control-plane.md).
-- Portable SQL for SQLite and PostgreSQL: TEXT and BIGINT only, no SERIAL,
-- no BLOB/BYTEA, no booleans (flags are BIGINT 0/1). Ids are made by the
-- application (acc_, ses_, tok_, db_, inv_, aud_ + 16 random bytes in hex);
-- times are Unix milliseconds; secrets are stored only as SHA-256 hex.

CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_account ON sessions (account_id);

CREATE TABLE invites (
    id TEXT PRIMARY KEY,
    code_hash TEXT NOT NULL UNIQUE,
    email TEXT,
    created_by TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

CREATE TABLE databases (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    suspended_at BIGINT
);
CREATE INDEX databases_account ON databases (account_id);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    all_databases BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    last_used_at BIGINT
);
CREATE INDEX api_tokens_account ON api_tokens (account_id);

CREATE TABLE api_token_databases (
    token_id TEXT NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    database_id TEXT NOT NULL REFERENCES databases (id) ON DELETE CASCADE,
    PRIMARY KEY (token_id, database_id)
);

CREATE TABLE module_versions (
    database_id TEXT NOT NULL REFERENCES databases (id) ON DELETE CASCADE,
    version BIGINT NOT NULL,
    module_sha256 TEXT NOT NULL,
    published_by TEXT NOT NULL,
    published_at BIGINT NOT NULL,
    PRIMARY KEY (database_id, version)
);

CREATE TABLE hosts (
    id TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    registered_at BIGINT NOT NULL,
    last_heartbeat_at BIGINT NOT NULL
);

CREATE TABLE placements (
    database_id TEXT PRIMARY KEY REFERENCES databases (id) ON DELETE CASCADE,
    host_id TEXT NOT NULL REFERENCES hosts (id),
    generation BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Who did what, when and from where. `account_id` is the account whose
-- admins may read the entry (NULL: operators only, e.g. a failed login for
-- an unknown email); `actor` is an account id or `email:…` for a failed
-- login; `via` the credential (`session` or a token id). `seq` orders
-- entries of the same millisecond.
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    account_id TEXT,
    actor TEXT NOT NULL,
    via TEXT,
    action TEXT NOT NULL,
    target TEXT,
    client_ip TEXT,
    detail TEXT
);
CREATE INDEX audit_log_account ON audit_log (account_id, at);
