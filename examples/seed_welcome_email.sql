-- WelcomeEmail (201, direct) for business unit 42: enabled, by email, at once. Idempotent.
INSERT INTO NotificationOption (BusinessUnitId, NotificationEventTypeId, IsEnabled, Channels, DelaySeconds, TemplateName)
SELECT 42, 201, TRUE, 'email', 0, NULL
WHERE NOT EXISTS (SELECT 1 FROM NotificationOption WHERE BusinessUnitId = 42 AND NotificationEventTypeId = 201);
