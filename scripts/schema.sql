-- Notification settings (contract: seed scripts write these columns). Idempotent, and portable
-- between SQLite and PostgreSQL: `platform seed` and `platform worker` apply it on every start.
CREATE TABLE IF NOT EXISTS NotificationOption (
    BusinessUnitId          BIGINT  NOT NULL,
    NotificationEventTypeId INTEGER NOT NULL,
    IsEnabled               BOOLEAN NOT NULL DEFAULT TRUE,
    Channels                TEXT    NOT NULL DEFAULT 'email', -- comma-separated: email, webhook
    DelaySeconds            INTEGER NOT NULL DEFAULT 0,
    TemplateName            TEXT,                             -- NULL: the type's default template
    PRIMARY KEY (BusinessUnitId, NotificationEventTypeId)
);

CREATE TABLE IF NOT EXISTS NotificationSubscriber (
    BusinessUnitId          BIGINT  NOT NULL,
    NotificationEventTypeId INTEGER NOT NULL,
    Channel                 TEXT    NOT NULL,
    Address                 TEXT    NOT NULL,
    DisplayName             TEXT,
    PRIMARY KEY (BusinessUnitId, NotificationEventTypeId, Channel, Address)
);
