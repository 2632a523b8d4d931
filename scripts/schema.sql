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

-- Automation rules: one row per version of a rule; a rule is its newest version. A change is a
-- new version (the primary key refuses two writers of the same version), never an update.
CREATE TABLE IF NOT EXISTS AutomationRule (
    RuleId         TEXT    NOT NULL,
    Version        INTEGER NOT NULL,
    BusinessUnitId BIGINT  NOT NULL,
    ProjectId      TEXT,
    Enabled        BOOLEAN NOT NULL,
    Shadow         BOOLEAN NOT NULL,
    Definition     TEXT    NOT NULL, -- JSON: name, eventTypes, filter, dedupeKey, rateLimit, action
    Note           TEXT,             -- why this version: added, enabled, disabled (by whom, or why automatically)
    CreatedAt      TEXT    NOT NULL,
    CreatedBy      TEXT,
    PRIMARY KEY (RuleId, Version)
);
