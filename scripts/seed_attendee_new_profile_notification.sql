-- AttendeeNewProfile (101) for business unit 42: enabled, by email to the guardian named in the
-- event, sent at once. Idempotent.
INSERT INTO NotificationOption (BusinessUnitId, NotificationEventTypeId, IsEnabled, Channels, DelaySeconds, TemplateName)
SELECT 42, 101, TRUE, 'email', 0, NULL
WHERE NOT EXISTS (SELECT 1 FROM NotificationOption WHERE BusinessUnitId = 42 AND NotificationEventTypeId = 101);
