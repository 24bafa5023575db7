"""Versioned schema migrations, shared by SQLite and PostgreSQL.

Each migration is a list of statements that both engines accept; ``{without_rowid}`` becomes
SQLite's ``WITHOUT ROWID`` (a table clustered on its primary key: one B-tree to write instead of
two) and nothing on PostgreSQL; ``{blob}`` is ``BLOB`` or ``BYTEA``. Append new versions; never
edit an old one.
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
        2,
        [
            # per-message counters behind the trace API; kept after the message expires
            """CREATE TABLE message_stats (
                msg_id TEXT PRIMARY KEY,
                app_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                jobkey TEXT,
                created_at BIGINT NOT NULL,
                ttl_ms BIGINT NOT NULL,
                raw_counter BIGINT NOT NULL DEFAULT 0,
                resolved BIGINT NOT NULL DEFAULT 0,
                invalid_target BIGINT NOT NULL DEFAULT 0,
                app_not_register BIGINT NOT NULL DEFAULT 0,
                device_condition_unmatch BIGINT NOT NULL DEFAULT 0,
                delivered BIGINT NOT NULL DEFAULT 0,
                click BIGINT NOT NULL DEFAULT 0,
                bar_closed BIGINT NOT NULL DEFAULT 0,
                callback_url TEXT,
                callback_param TEXT,
                callback_type BIGINT NOT NULL DEFAULT 0,
                category TEXT NOT NULL DEFAULT 'default'
            )""",
            "CREATE INDEX message_stats_time ON message_stats (app_id, created_at)",
            "CREATE INDEX message_stats_jobkey ON message_stats (app_id, jobkey)",
            "CREATE INDEX message_stats_age ON message_stats (created_at)",
            # one click counted per (message, device)
            """CREATE TABLE message_clicks (
                msg_id TEXT NOT NULL,
                reg_id TEXT NOT NULL,
                PRIMARY KEY (msg_id, reg_id)
            )""",
            # per app and UTC day (yyyyMMdd)
            """CREATE TABLE daily_stats (
                app_id TEXT NOT NULL,
                day TEXT NOT NULL,
                single_recipients BIGINT NOT NULL DEFAULT 0,
                broadcast_recipients BIGINT NOT NULL DEFAULT 0,
                alias_recipients BIGINT NOT NULL DEFAULT 0,
                useraccount_recipients BIGINT NOT NULL DEFAULT 0,
                regid_recipients BIGINT NOT NULL DEFAULT 0,
                received BIGINT NOT NULL DEFAULT 0,
                click BIGINT NOT NULL DEFAULT 0,
                received_default BIGINT NOT NULL DEFAULT 0,
                received_public BIGINT NOT NULL DEFAULT 0,
                received_private BIGINT NOT NULL DEFAULT 0,
                PRIMARY KEY (app_id, day)
            )""",
            # notification channels (extra.channel_id) and the message category they give
            """CREATE TABLE channels (
                app_id TEXT NOT NULL,
                channel_id TEXT NOT NULL,
                name TEXT NOT NULL,
                description TEXT NOT NULL DEFAULT '',
                sound_url TEXT NOT NULL DEFAULT '',
                notify_type BIGINT NOT NULL DEFAULT -1,
                category TEXT NOT NULL,
                discarded INTEGER NOT NULL DEFAULT 0,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (app_id, channel_id)
            )""",
            # feedback: regIds and aliases that stopped working, until the app fetches them
            """CREATE TABLE invalid_targets (
                app_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                target TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (app_id, kind, target)
            )""",
            "CREATE INDEX invalid_targets_age ON invalid_targets (app_id, kind, created_at)",
            # sends with time_to_send: one row until it fires (the row is deleted as it fires)
            """CREATE TABLE scheduled_jobs (
                job_id TEXT PRIMARY KEY,
                app_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                body TEXT NOT NULL,
                topics TEXT NOT NULL DEFAULT '',
                topic_op TEXT NOT NULL DEFAULT 'UNION',
                targets TEXT NOT NULL DEFAULT '',
                jobkey TEXT,
                ttl_ms BIGINT NOT NULL,
                durable INTEGER NOT NULL,
                fire_at BIGINT NOT NULL,
                created_at BIGINT NOT NULL
            )""",
            "CREATE INDEX scheduled_jobs_due ON scheduled_jobs (fire_at)",
            "CREATE INDEX scheduled_jobs_jobkey ON scheduled_jobs (app_id, jobkey)",
            # receipts waiting to be POSTed to extra.callback, batched per app, URL and type
            """CREATE TABLE receipts (
                receipt_id TEXT PRIMARY KEY,
                app_id TEXT NOT NULL,
                url TEXT NOT NULL,
                msg_id TEXT NOT NULL,
                type BIGINT NOT NULL,
                targets TEXT NOT NULL,
                jobkey TEXT,
                param TEXT,
                at BIGINT NOT NULL,
                attempts BIGINT NOT NULL DEFAULT 0,
                next_at BIGINT NOT NULL
            )""",
            "CREATE INDEX receipts_due ON receipts (next_at)",
            # the key receipts are signed with (Standard Webhooks), per app
            """CREATE TABLE receipt_keys (
                app_id TEXT PRIMARY KEY,
                secret TEXT NOT NULL
            )""",
            # deleting or stopping one message removes its undelivered inbox rows
            "CREATE INDEX inbox_msg ON inbox (msg_id)",
        ],
    ),
    (
        # 3: consent ledger, policy versions, content review
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
            """CREATE TABLE message_counters (
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
    (
        # 4: developer accounts, credentials, terms, account states, audit log
        4,
        [
            """CREATE TABLE developers (
                developer_id TEXT PRIMARY KEY,
                email TEXT NOT NULL UNIQUE,
                password_hash TEXT NOT NULL,
                legal_name TEXT NOT NULL,
                region TEXT NOT NULL,
                role TEXT NOT NULL,
                state TEXT NOT NULL,
                state_reason TEXT NOT NULL DEFAULT '',
                state_since BIGINT NOT NULL,
                deadline BIGINT,
                created_at BIGINT NOT NULL
            )""",
            "ALTER TABLE apps ADD COLUMN developer_id TEXT",
            "CREATE INDEX apps_developer ON apps (developer_id)",
            # personal API tokens (kind 'api') and login sessions (kind 'session'), hashed
            """CREATE TABLE credentials (
                token_id TEXT PRIMARY KEY,
                token_hash TEXT NOT NULL UNIQUE,
                developer_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                name TEXT NOT NULL DEFAULT '',
                created_at BIGINT NOT NULL,
                expires_at BIGINT,
                revoked_at BIGINT
            )""",
            "CREATE INDEX credentials_developer ON credentials (developer_id, kind)",
            """CREATE TABLE terms_versions (
                version TEXT PRIMARY KEY,
                body TEXT NOT NULL,
                published_at BIGINT NOT NULL,
                effective_at BIGINT NOT NULL
            )""",
            """CREATE TABLE terms_acceptances (
                developer_id TEXT NOT NULL,
                version TEXT NOT NULL,
                accepted_at BIGINT NOT NULL,
                source TEXT NOT NULL,
                PRIMARY KEY (developer_id, version)
            )""",
            # account state transitions: dated, reasoned, never updated
            """CREATE TABLE account_transitions (
                transition_id TEXT PRIMARY KEY,
                developer_id TEXT NOT NULL,
                from_state TEXT NOT NULL,
                to_state TEXT NOT NULL,
                reason TEXT NOT NULL,
                actor TEXT NOT NULL,
                at BIGINT NOT NULL,
                deadline BIGINT
            )""",
            "CREATE INDEX account_transitions_dev ON account_transitions (developer_id, at)",
            # append-only: who did what, when, from where, with what outcome
            """CREATE TABLE audit_log (
                seq_id TEXT PRIMARY KEY,
                at BIGINT NOT NULL,
                actor TEXT NOT NULL,
                developer_id TEXT,
                action TEXT NOT NULL,
                target TEXT NOT NULL DEFAULT '',
                source TEXT NOT NULL DEFAULT '',
                outcome TEXT NOT NULL,
                detail TEXT NOT NULL DEFAULT ''
            )""",
            "CREATE INDEX audit_log_time ON audit_log (at)",
            "CREATE INDEX audit_log_developer ON audit_log (developer_id, at)",
            # package-binding misuse per app: one row per (kind, detail), counted
            """CREATE TABLE misuse_signals (
                app_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                detail TEXT NOT NULL,
                count BIGINT NOT NULL,
                first_at BIGINT NOT NULL,
                last_at BIGINT NOT NULL,
                PRIMARY KEY (app_id, kind, detail)
            )""",
            # per SDK name: devices below min_version are refused, below deprecated_below counted
            """CREATE TABLE sdk_policies (
                sdk_name TEXT PRIMARY KEY,
                min_version TEXT NOT NULL DEFAULT '',
                deprecated_below TEXT NOT NULL DEFAULT '',
                updated_at BIGINT NOT NULL
            )""",
        ],
    ),
    (
        # 5: operator limits (schedule with effective dates), per-device daily delivered counts,
        # receipts with an extra object (type 128)
        5,
        [
            """CREATE TABLE limits (
                limits_id TEXT PRIMARY KEY,
                preset TEXT NOT NULL,
                quotas TEXT NOT NULL DEFAULT '{}',
                qps BIGINT,
                effective_at BIGINT NOT NULL,
                created_at BIGINT NOT NULL
            )""",
            """CREATE TABLE device_daily (
                reg_id TEXT NOT NULL,
                day TEXT NOT NULL,
                category TEXT NOT NULL,
                delivered BIGINT NOT NULL DEFAULT 0,
                PRIMARY KEY (reg_id, day, category)
            ){without_rowid}""",
            "CREATE INDEX device_daily_day ON device_daily (day)",
            "ALTER TABLE receipts ADD COLUMN extra TEXT",
        ],
    ),
    (
        # 6: the region an app's data lives in (data residency)
        6,
        ["ALTER TABLE apps ADD COLUMN region TEXT NOT NULL DEFAULT 'ROW'"],
    ),
    (
        # 7: log cursors moved by acks of broadcasts sent from the log, in a narrow table of their
        # own (a device row is wide: rewriting it per ack cost ~5 µs, this row ~1 µs). A device's
        # cursor is the larger of devices.log_cursor and this.
        7,
        [
            """CREATE TABLE log_acks (
                reg_id TEXT PRIMARY KEY REFERENCES devices(reg_id) ON DELETE CASCADE,
                log_cursor BIGINT NOT NULL
            ){without_rowid}""",
        ],
    ),
    (
        # 8: those cursors in pages of 250 devices (store/ack_pages.py): a broadcast's acks
        # rewrite one row per 250 devices instead of one per device (~7 µs per device on SQLite)
        8,
        [
            "ALTER TABLE apps ADD COLUMN ack_slots BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE devices ADD COLUMN ack_slot BIGINT",
            """CREATE TABLE log_ack_pages (
                app_id TEXT NOT NULL,
                page BIGINT NOT NULL,
                cursors {blob} NOT NULL,
                PRIMARY KEY (app_id, page)
            ){without_rowid}""",
            """UPDATE devices SET log_cursor =
                (SELECT a.log_cursor FROM log_acks a WHERE a.reg_id = devices.reg_id)
                WHERE EXISTS (SELECT 1 FROM log_acks a
                    WHERE a.reg_id = devices.reg_id AND a.log_cursor > devices.log_cursor)""",
            "DROP TABLE log_acks",
        ],
    ),
    (
        # 9: Web Push (RFC 8030): browser subscriptions (a push endpoint each) and the messages
        # posted to them, kept until the browser acks them or they expire
        9,
        [
            """CREATE TABLE webpush_channels (
                token TEXT PRIMARY KEY,
                uaid TEXT NOT NULL,
                channel_id TEXT NOT NULL,
                app_server_key TEXT,
                created_at BIGINT NOT NULL,
                UNIQUE (uaid, channel_id)
            )""",
            """CREATE TABLE webpush_messages (
                version TEXT PRIMARY KEY,
                token TEXT NOT NULL REFERENCES webpush_channels(token) ON DELETE CASCADE,
                uaid TEXT NOT NULL,
                channel_id TEXT NOT NULL,
                topic TEXT,
                data TEXT,
                headers TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL
            )""",
            "CREATE INDEX webpush_messages_uaid ON webpush_messages (uaid, created_at)",
            "CREATE INDEX webpush_messages_token ON webpush_messages (token, topic)",
            "CREATE INDEX webpush_messages_expiry ON webpush_messages (expires_at)",
        ],
    ),
]

LATEST = max(version for version, _ in MIGRATIONS)
