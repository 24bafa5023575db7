"""Versioned schema migrations, shared by SQLite and PostgreSQL.

Each migration is a list of statements that both engines accept; ``{without_rowid}`` becomes
SQLite's ``WITHOUT ROWID`` (a table clustered on its primary key: one B-tree to write instead of
two) and nothing on PostgreSQL. Append new versions; never edit an old one. Table names live here
and in ``ops.py`` only.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            """CREATE TABLE apps (
                app_id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                package TEXT NOT NULL UNIQUE,
                app_key_hash TEXT NOT NULL,
                secret_hash TEXT NOT NULL UNIQUE,
                privacy_policy_version TEXT,
                created_at BIGINT NOT NULL,
                log_head BIGINT NOT NULL DEFAULT 0
            )""",
            """CREATE TABLE devices (
                reg_id TEXT PRIMARY KEY,
                app_id TEXT NOT NULL REFERENCES apps(app_id),
                uaid TEXT NOT NULL,
                account TEXT,
                sdk_name TEXT NOT NULL DEFAULT '',
                sdk_version TEXT NOT NULL DEFAULT '',
                app_version TEXT NOT NULL DEFAULT '',
                locale TEXT NOT NULL DEFAULT '',
                model TEXT NOT NULL DEFAULT '',
                consent_version TEXT,
                consent_at BIGINT,
                last_seq BIGINT NOT NULL DEFAULT 0,
                log_cursor BIGINT NOT NULL DEFAULT 0,
                dropped BIGINT NOT NULL DEFAULT 0,
                created_at BIGINT NOT NULL,
                UNIQUE (app_id, uaid)
            )""",
            "CREATE INDEX devices_account ON devices (app_id, account)",
            "CREATE INDEX devices_uaid ON devices (uaid)",
            """CREATE TABLE aliases (
                app_id TEXT NOT NULL,
                alias TEXT NOT NULL,
                reg_id TEXT NOT NULL,
                PRIMARY KEY (app_id, alias)
            )""",
            "CREATE INDEX aliases_reg ON aliases (reg_id)",
            """CREATE TABLE topic_subs (
                app_id TEXT NOT NULL,
                topic TEXT NOT NULL,
                reg_id TEXT NOT NULL,
                PRIMARY KEY (app_id, topic, reg_id)
            )""",
            "CREATE INDEX topic_subs_reg ON topic_subs (reg_id)",
            """CREATE TABLE messages (
                msg_id TEXT PRIMARY KEY,
                app_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                body TEXT NOT NULL,
                topics TEXT NOT NULL DEFAULT '',
                topic_op TEXT NOT NULL DEFAULT 'UNION',
                created_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                log_offset BIGINT
            )""",
            """CREATE UNIQUE INDEX messages_log ON messages (app_id, log_offset)
                WHERE log_offset IS NOT NULL""",
            "CREATE INDEX messages_expiry ON messages (expires_at)",
            """CREATE TABLE inbox (
                reg_id TEXT NOT NULL,
                seq BIGINT NOT NULL,
                msg_id TEXT,
                expires_at BIGINT NOT NULL,
                PRIMARY KEY (reg_id, seq)
            ){without_rowid}""",
            "CREATE INDEX inbox_expiry ON inbox (expires_at)",
        ],
    ),
    (
        # 2 is reserved for another branch; 3: consent ledger, policy versions, content review
        3,
        [
            """CREATE TABLE policy_versions (
                app_id TEXT NOT NULL,
                version TEXT NOT NULL,
                url TEXT NOT NULL,
                published_at BIGINT NOT NULL,
                requires_fresh_consent INTEGER NOT NULL DEFAULT 1,
                PRIMARY KEY (app_id, version)
            )""",
            """CREATE TABLE consent_heads (
                app_id TEXT PRIMARY KEY,
                seq BIGINT NOT NULL,
                hash TEXT NOT NULL
            )""",
            """CREATE TABLE consent_ledger (
                app_id TEXT NOT NULL,
                seq BIGINT NOT NULL,
                subject TEXT NOT NULL,
                policy_version TEXT NOT NULL,
                action TEXT NOT NULL,
                at BIGINT NOT NULL,
                source TEXT NOT NULL,
                app_version TEXT NOT NULL DEFAULT '',
                prev_hash TEXT NOT NULL,
                hash TEXT NOT NULL,
                PRIMARY KEY (app_id, seq)
            )""",
            "CREATE INDEX consent_subject ON consent_ledger (app_id, subject)",
            """CREATE TABLE message_stats (
                msg_id TEXT NOT NULL,
                app_id TEXT NOT NULL,
                name TEXT NOT NULL,
                value BIGINT NOT NULL,
                PRIMARY KEY (msg_id, name)
            )""",
            """CREATE TABLE review_rules (
                rule_id TEXT PRIMARY KEY,
                app_id TEXT,
                kind TEXT NOT NULL,
                pattern TEXT NOT NULL,
                action TEXT NOT NULL,
                created_at BIGINT NOT NULL
            )""",
            """CREATE TABLE review_queue (
                msg_id TEXT PRIMARY KEY,
                app_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                body TEXT NOT NULL,
                targets TEXT NOT NULL,
                topics TEXT NOT NULL DEFAULT '',
                topic_op TEXT NOT NULL DEFAULT 'UNION',
                created_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                status TEXT NOT NULL,
                reason TEXT NOT NULL,
                decided_at BIGINT
            )""",
            "CREATE INDEX review_queue_status ON review_queue (status, created_at)",
            """CREATE TABLE review_log (
                decision_id TEXT PRIMARY KEY,
                msg_id TEXT NOT NULL,
                app_id TEXT NOT NULL,
                decision TEXT NOT NULL,
                reason TEXT NOT NULL,
                actor TEXT NOT NULL,
                at BIGINT NOT NULL
            )""",
            "CREATE INDEX review_log_msg ON review_log (msg_id)",
        ],
    ),
]

LATEST = MIGRATIONS[-1][0]
