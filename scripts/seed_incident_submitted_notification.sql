-- IncidentSubmitted (102) for business unit 42: enabled, by email, sent at once, to the
-- centre's manager. Idempotent: run it as often as you like.
INSERT INTO NotificationOption (BusinessUnitId, NotificationEventTypeId, IsEnabled, Channels, DelaySeconds, TemplateName)
SELECT 42, 102, TRUE, 'email', 0, 'incident-submitted'
WHERE NOT EXISTS (SELECT 1 FROM NotificationOption WHERE BusinessUnitId = 42 AND NotificationEventTypeId = 102);

INSERT INTO NotificationSubscriber (BusinessUnitId, NotificationEventTypeId, Channel, Address, DisplayName)
SELECT 42, 102, 'email', 'manager@example.com', 'Centre Manager'
WHERE NOT EXISTS (SELECT 1 FROM NotificationSubscriber
                  WHERE BusinessUnitId = 42 AND NotificationEventTypeId = 102 AND Channel = 'email' AND Address = 'manager@example.com');
