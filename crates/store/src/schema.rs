//! The database schema and the migrations that build it, applied in order at start-up.
//!
//! Times are Unix seconds (`INTEGER`) so expiry checks happen inside SQL statements, atomically.
//! Each migration runs in its own transaction and is recorded in `schema_migrations`.

/// Migrations, oldest first. Never edit one that has shipped; append a new one.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_foundation",
        r#"
CREATE TABLE organisations (
    ods_code    TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    national    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX organisations_one_national ON organisations(national) WHERE national = 1;

CREATE TABLE people (
    uid            TEXT PRIMARY KEY,
    given_name     TEXT NOT NULL,
    family_name    TEXT NOT NULL,
    email          TEXT,
    registered_by  TEXT NOT NULL REFERENCES organisations(ods_code),
    created_at     INTEGER NOT NULL
);

CREATE TABLE positions (
    id          TEXT PRIMARY KEY,
    uid         TEXT NOT NULL REFERENCES people(uid),
    ods_code    TEXT NOT NULL REFERENCES organisations(ods_code),
    role_code   TEXT NOT NULL,
    role_name   TEXT NOT NULL,
    activities  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (uid, ods_code, role_code)
);

CREATE TABLE ra_roles (
    uid               TEXT NOT NULL REFERENCES people(uid),
    ods_code          TEXT NOT NULL REFERENCES organisations(ods_code),
    role              TEXT NOT NULL,
    assignable_roles  TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    PRIMARY KEY (uid, ods_code, role)
);

CREATE TABLE identity_checks (
    id          INTEGER PRIMARY KEY,
    uid         TEXT NOT NULL REFERENCES people(uid),
    checked_by  TEXT NOT NULL,
    ods_code    TEXT NOT NULL REFERENCES organisations(ods_code),
    evidence    TEXT NOT NULL,
    level       INTEGER NOT NULL,
    checked_at  INTEGER NOT NULL
);

CREATE TABLE devices (
    device_id    TEXT PRIMARY KEY,
    uid          TEXT NOT NULL REFERENCES people(uid),
    platform     TEXT NOT NULL,
    app_version  TEXT NOT NULL,
    model        TEXT NOT NULL,
    simulated    INTEGER NOT NULL,
    first_seen   INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL
);

CREATE TABLE cards (
    id                   TEXT PRIMARY KEY,
    uid                  TEXT NOT NULL REFERENCES people(uid),
    state                TEXT NOT NULL,
    custody              TEXT NOT NULL,
    issued_by            TEXT NOT NULL REFERENCES organisations(ods_code),
    device_id            TEXT REFERENCES devices(device_id),
    recovery_key_sealed  BLOB,
    created_at           INTEGER NOT NULL,
    activated_at         INTEGER,
    revoked_at           INTEGER,
    revocation_reason    TEXT
);
CREATE INDEX cards_by_uid ON cards(uid);

CREATE TABLE certificates (
    serial             TEXT PRIMARY KEY,
    card_id            TEXT NOT NULL REFERENCES cards(id),
    usage              TEXT NOT NULL,
    der                BLOB NOT NULL,
    spki_sha256        TEXT NOT NULL UNIQUE,
    not_before         INTEGER NOT NULL,
    not_after          INTEGER NOT NULL,
    revoked_at         INTEGER
);
CREATE INDEX certificates_by_card ON certificates(card_id);

CREATE TABLE one_time_codes (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    card_id          TEXT NOT NULL REFERENCES cards(id),
    secret_hash      BLOB NOT NULL,
    created_by       TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    used_at          INTEGER,
    failed_attempts  INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE challenges (
    id          TEXT PRIMARY KEY,
    purpose     TEXT NOT NULL,
    uid         TEXT NOT NULL,
    nonce       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);

CREATE TABLE ra_sessions (
    token_hash  BLOB PRIMARY KEY,
    uid         TEXT NOT NULL REFERENCES people(uid),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);

CREATE TABLE crls (
    issuer       TEXT PRIMARY KEY,
    crl_number   INTEGER NOT NULL,
    der          BLOB NOT NULL,
    this_update  INTEGER NOT NULL,
    next_update  INTEGER NOT NULL
);

CREATE TABLE audit_events (
    seq           INTEGER PRIMARY KEY,
    at_ms         INTEGER NOT NULL,
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    organisation  TEXT NOT NULL,
    source        TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    detail        TEXT NOT NULL,
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL
);
"#,
    ),
    (
        "0002_signin",
        r#"
ALTER TABLE devices ADD COLUMN public_key BLOB;
ALTER TABLE organisations ADD COLUMN session_idle_seconds INTEGER NOT NULL DEFAULT 900;
ALTER TABLE organisations ADD COLUMN session_max_seconds INTEGER NOT NULL DEFAULT 43200;
ALTER TABLE cards ADD COLUMN consecutive_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cards ADD COLUMN blocked_until INTEGER;

CREATE TABLE device_tokens (
    token_hash  BLOB PRIMARY KEY,
    device_id   TEXT NOT NULL REFERENCES devices(device_id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);

CREATE TABLE auth_requests (
    id                TEXT PRIMARY KEY,
    card_id           TEXT NOT NULL REFERENCES cards(id),
    uid               TEXT NOT NULL,
    nonce             TEXT NOT NULL,
    context           TEXT NOT NULL,
    context_digest    TEXT NOT NULL,
    workstation_id    TEXT NOT NULL,
    number            INTEGER NOT NULL,
    choices           TEXT NOT NULL,
    poll_secret_hash  BLOB NOT NULL,
    source            TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    state             TEXT NOT NULL,
    decided_at        INTEGER
);
CREATE INDEX auth_requests_by_card ON auth_requests(card_id, state, created_at);

CREATE TABLE sessions (
    id              TEXT PRIMARY KEY,
    ticket_hash     BLOB NOT NULL UNIQUE,
    uid             TEXT NOT NULL REFERENCES people(uid),
    card_id         TEXT NOT NULL REFERENCES cards(id),
    request_id      TEXT NOT NULL UNIQUE REFERENCES auth_requests(id),
    position_id     TEXT REFERENCES positions(id),
    workstation_id  TEXT NOT NULL,
    auth_time       INTEGER NOT NULL,
    last_used       INTEGER NOT NULL,
    idle_seconds    INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    ended_at        INTEGER,
    end_reason      TEXT
);
"#,
    ),
    (
        "0003_signing",
        r#"
CREATE TABLE signing_requests (
    id              TEXT PRIMARY KEY,
    card_id         TEXT NOT NULL REFERENCES cards(id),
    uid             TEXT NOT NULL,
    session_id      TEXT NOT NULL REFERENCES sessions(id),
    kind            TEXT NOT NULL,
    algorithm       TEXT NOT NULL,
    items           TEXT NOT NULL,
    workstation     TEXT NOT NULL,
    role            TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    state           TEXT NOT NULL,
    decided_at      INTEGER,
    outcome         TEXT
);
CREATE INDEX signing_requests_open ON signing_requests(card_id, state);
"#,
    ),
    (
        "0004_card_pin",
        r#"
ALTER TABLE cards ADD COLUMN pin_hash TEXT;
ALTER TABLE cards ADD COLUMN pin_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN card_pin_verified_at INTEGER;
ALTER TABLE sessions ADD COLUMN agent_key_hash BLOB;
"#,
    ),
    (
        // Issue 9: revocation reasons and invalidity dates for the CRL; what a Sponsor may put
        // into a position; position requests across organisations.
        "0005_revocation_reasons",
        r#"
ALTER TABLE certificates ADD COLUMN revocation_reason_code INTEGER;
ALTER TABLE certificates ADD COLUMN invalidity_date INTEGER;
ALTER TABLE ra_roles ADD COLUMN assignable_activities TEXT NOT NULL DEFAULT '[]';
CREATE TABLE position_requests (
    id            TEXT PRIMARY KEY,
    uid           TEXT NOT NULL REFERENCES people(uid),
    ods_code      TEXT NOT NULL REFERENCES organisations(ods_code),
    home_ods      TEXT NOT NULL REFERENCES organisations(ods_code),
    role_code     TEXT NOT NULL,
    role_name     TEXT NOT NULL,
    activities    TEXT NOT NULL,
    requested_by  TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    state         TEXT NOT NULL,
    decided_by    TEXT,
    decided_at    INTEGER,
    note          TEXT
);
CREATE INDEX position_requests_pending ON position_requests(state, home_ods);
"#,
    ),
    (
        // Issue 9 item 10: what the server holds to check a phone's keystore passcode (the
        // verifier and the keystore's server secret, sealed under the master key) and its count
        // of wrong passcodes in a row.
        "0006_device_passcode_secret",
        r#"
CREATE TABLE card_passcode_secrets (
    card_id          TEXT PRIMARY KEY REFERENCES cards(id),
    sealed_verifier  BLOB NOT NULL,
    sealed_secret    BLOB NOT NULL,
    failed_attempts  INTEGER NOT NULL DEFAULT 0,
    updated_at       INTEGER NOT NULL
);
"#,
    ),
    (
        "0007_signin_failures",
        r#"
CREATE TABLE signin_failures (
    id          INTEGER PRIMARY KEY,
    card_id     TEXT NOT NULL REFERENCES cards(id),
    request_id  TEXT NOT NULL,
    at          INTEGER NOT NULL
);
CREATE INDEX signin_failures_card ON signin_failures(card_id, at);
"#,
    ),
    (
        "0008_workstations",
        r#"
CREATE TABLE workstations (
    id             TEXT PRIMARY KEY,
    ods_code       TEXT NOT NULL REFERENCES organisations(ods_code),
    name           TEXT NOT NULL,
    public_key     BLOB NOT NULL UNIQUE,
    cert_serial    TEXT NOT NULL UNIQUE,
    cert_der       BLOB NOT NULL,
    not_before     INTEGER NOT NULL,
    not_after      INTEGER NOT NULL,
    registered_by  TEXT NOT NULL,
    code_id        TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    state          TEXT NOT NULL,
    revoked_at     INTEGER,
    revoked_by     TEXT
);
CREATE UNIQUE INDEX workstations_active_name ON workstations(ods_code, name COLLATE NOCASE) WHERE state = 'active';
CREATE TABLE workstation_codes (
    id               TEXT PRIMARY KEY,
    secret_hash      BLOB NOT NULL,
    ods_code         TEXT NOT NULL REFERENCES organisations(ods_code),
    name             TEXT,
    created_by       TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    used_at          INTEGER,
    failed_attempts  INTEGER NOT NULL DEFAULT 0,
    workstation_id   TEXT REFERENCES workstations(id)
);
ALTER TABLE organisations ADD COLUMN allow_unregistered_workstations INTEGER NOT NULL DEFAULT 0;
"#,
    ),
];
