// Platform on Azure Container Apps, keyless: one container app per process role (api, events,
// notifications, runs), each run by its own user-assigned identity that holds only the grants
// it needs; a storage account that refuses shared keys; logs in Log Analytics.
//
// Deploy into an existing resource group:
//   az deployment group create -g RG -f deploy/azure/main.bicep -p environmentName=prod \
//     keyVaultName=VAULT authIssuer=https://login.microsoftonline.com/TENANT/v2.0 \
//     authAudience=API_CLIENT_ID image=REGISTRY/platform:TAG
// or with the Azure Developer CLI from the repository root (azure.yaml): azd up.
//
// Key Vault. The template references an EXISTING vault (keyVaultName, keyVaultResourceGroupName)
// and never sees a secret's value: secrets have their own owners and rotation, outlive any one
// environment, and must exist before an app that references them can start, which a vault
// created by this template could not offer on its first deployment. The vault must use Azure
// RBAC (enableRbacAuthorization: true); the deploying principal needs to create role
// assignments on it. Secrets it must hold (each app gets Key Vault Secrets User on its own
// secrets only):
//   platform-settings-dsn     every role   PLATFORM_SETTINGS_DSN: postgres://USER:PASSWORD@SERVER.postgres.database.azure.com:5432/DB?sslmode=require
//   platform-webhook-secret   notifications (unless webhookSecretEnabled=false)   PLATFORM_WEBHOOK_SECRET
//   platform-smtp-password    notifications (only when smtpUsername is set)       PLATFORM_SMTP_PASSWORD
//   platform-agent-secret     runs (only when agents is set)                      PLATFORM_AGENT_SECRET
// e.g. az keyvault secret set --vault-name VAULT --name platform-settings-dsn --file dsn.txt

targetScope = 'resourceGroup'

@minLength(1)
@maxLength(64)
@description('Name of the environment (azd: AZURE_ENV_NAME): resource names derive from it.')
param environmentName string

@description('Region of every resource.')
param location string = resourceGroup().location

@description('Full image reference, e.g. myregistry.azurecr.io/platform:1.0 (the repository\'s Containerfile: /platform, CMD worker, port 8080). Empty: each app keeps the image it runs (azd deploy sets it), or gets a placeholder on a first provision.')
param image string = ''

@description('azd: whether the api app exists (SERVICE_API_RESOURCE_EXISTS).')
param apiExists bool = false

@description('azd: whether the events app exists (SERVICE_EVENTS_RESOURCE_EXISTS).')
param eventsExists bool = false

@description('azd: whether the notifications app exists (SERVICE_NOTIFICATIONS_RESOURCE_EXISTS).')
param notificationsExists bool = false

@description('azd: whether the runs app exists (SERVICE_RUNS_RESOURCE_EXISTS).')
param runsExists bool = false

@description('PLATFORM_NAMESPACE: prefix of every queue, table and blob container; empty for none. 1-24 lowercase letters and digits, starting with a letter (anything else deploys, then every app exits 2 at start naming it).')
@maxLength(24)
param namespace string = ''

@description('Storage account name; empty: st + a token derived from the subscription, resource group and environment.')
@maxLength(24)
param storageAccountName string = ''

@description('Storage redundancy.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param storageSku string = 'Standard_LRS'

@description('Name of the existing Key Vault (Azure RBAC) holding the secrets listed at the top of this file.')
param keyVaultName string

@description('Resource group of that Key Vault.')
param keyVaultResourceGroupName string = resourceGroup().name

@description('Create an Azure Container Registry (Basic) that every app pulls from with its identity (AcrPull); azd pushes there. false: image must be public.')
param createRegistry bool = true

@description('Days Log Analytics keeps the apps\' logs.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

@description('PLATFORM_LOG_LEVEL of every app.')
@allowed([
  'debug'
  'info'
  'warn'
  'error'
])
param logLevel string = 'info'

// --- api: the HTTP API (external ingress), the outbox materializer and reconciler ---

@description('PLATFORM_AUTH_ISSUER: the OIDC issuer exactly as its tokens\' iss (Entra ID: https://login.microsoftonline.com/TENANT_ID/v2.0).')
param authIssuer string

@description('PLATFORM_AUTH_AUDIENCE: what a token\'s aud must hold (Entra ID: the API app registration\'s client id).')
param authAudience string

@description('api replicas at least (the API is always up).')
@minValue(1)
param apiMinReplicas int = 1

@description('api replicas at most.')
@minValue(1)
param apiMaxReplicas int = 10

@description('HTTP scale rule: concurrent requests per api replica before another is added. Realtime change streams are long requests and count.')
@minValue(1)
param apiConcurrentRequests int = 50

@description('vCPU per api replica.')
param apiCpu string = '0.5'

@description('Memory per api replica.')
param apiMemory string = '1Gi'

// --- events: consumes entity-events ---

@description('events replicas at least: 1 keeps history and webhooks prompt; 0 lets it scale to zero (a first event then waits for KEDA\'s poll and a start).')
@allowed([
  0
  1
])
param eventsMinReplicas int = 1

@description('events replicas at most.')
@minValue(1)
param eventsMaxReplicas int = 10

@description('KEDA azure-queue queueLength for entity-events: visible messages per events replica that the scaler aims for (more waiting adds replicas). 500 = about 2 s of one 0.5 vCPU replica\'s work at the ~280 events/s make bench measured (README, Deploying to Azure).')
@minValue(1)
param eventsQueueLength int = 500

@description('vCPU per events replica.')
param eventsCpu string = '0.5'

@description('Memory per events replica.')
param eventsMemory string = '1Gi'

// --- notifications: consumes notification-scheduler, -generator and -distributor; scales to zero ---

@description('notifications replicas at most.')
@minValue(1)
param notificationsMaxReplicas int = 10

@description('KEDA azure-queue queueLength for each notification queue: visible messages per notifications replica the scaler aims for. 100 = about 1.5 s of one 0.5 vCPU replica\'s work at the ~77 emails/s make bench measured.')
@minValue(1)
param notificationsQueueLength int = 100

@description('PLATFORM_SMTP_ADDR (host:port of the relay); empty: email is written to the log, not sent.')
param smtpAddr string = ''

@description('PLATFORM_SMTP_FROM; empty: the worker\'s default.')
param smtpFrom string = ''

@description('PLATFORM_SMTP_USERNAME; set: the password comes from Key Vault secret platform-smtp-password.')
param smtpUsername string = ''

@description('PLATFORM_WEBHOOK_SECRET from Key Vault secret platform-webhook-secret (the webhook channel refuses to send without it). false: no such secret is referenced.')
param webhookSecretEnabled bool = true

@description('vCPU per notifications replica.')
param notificationsCpu string = '0.5'

@description('Memory per notifications replica.')
param notificationsMemory string = '1Gi'

// --- runs: consumes agent-runs; scales to zero ---

@description('runs replicas at most.')
@minValue(1)
param runsMaxReplicas int = 10

@description('KEDA azure-queue queueLength for agent-runs: runs per runs replica, queued and running (a run in progress is an invisible message, and this rule counts it, so a replica is not scaled in under a running agent). Agent runs are long and mostly wait on the agent: set it to the concurrency one replica should carry.')
@minValue(1)
param agentRunsQueueLength int = 5

@description('PLATFORM_AGENTS: comma-separated name=URL of the HTTP agents; set: requests are signed with Key Vault secret platform-agent-secret.')
param agents string = ''

@description('PLATFORM_WEBHOOK_ALLOWLIST of every app: hosts and CIDRs that endpoints and agents may be although not globally routable (an agent running as an internal container app in this environment: its private address range). Empty: none.')
param webhookAllowlist string = ''

@description('vCPU per runs replica.')
param runsCpu string = '0.5'

@description('Memory per runs replica.')
param runsMemory string = '1Gi'

@description('PLATFORM_QUEUE_SHARDS of every app: each work queue is this many queues, {queue}-0 … {queue}-{N-1} (README, Sharded queues); 1: one queue each, under its own name. Every shard gets its own scale rule, whose queueLength is the role\'s divided by the shard count: KEDA scales on the rule that asks for the most replicas, so a backlog spread evenly over the shards asks for as many as it would on one queue. Changing it loses nothing (every replica drains the queues of the old count too); keep at least one replica of each role running until the old queues are empty, because only the new ones have scale rules.')
@minValue(1)
@maxValue(64)
param queueShards int = 1

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = { 'azd-env-name': environmentName }
var queuePrefix = empty(namespace) ? '' : '${namespace}-'

// What follows a work queue's name in each of its physical queues: nothing with one shard,
// else -0 … -{N-1} (docs/contracts.md, "Sharded queues").
var shardSuffixes = queueShards == 1 ? [''] : map(range(0, queueShards), i => '-${i}')
var notificationQueues = flatten(map(['notification-scheduler', 'notification-generator', 'notification-distributor'], queue => map(shardSuffixes, suffix => '${queue}${suffix}')))

// Key Vault secret names (see the top of this file) and the app secret each becomes.
var settingsDsn = { name: 'settings-dsn', secret: 'platform-settings-dsn' }
var webhookSecret = { name: 'webhook-secret', secret: 'platform-webhook-secret' }
var smtpPassword = { name: 'smtp-password', secret: 'platform-smtp-password' }
var agentSecret = { name: 'agent-secret', secret: 'platform-agent-secret' }

var apiSecrets = [settingsDsn]
var eventsSecrets = [settingsDsn]
var notificationsSecrets = concat(
  [settingsDsn],
  webhookSecretEnabled ? [webhookSecret] : [],
  empty(smtpUsername) ? [] : [smtpPassword]
)
var runsSecrets = concat([settingsDsn], empty(agents) ? [] : [agentSecret])

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: !empty(storageAccountName) ? storageAccountName : 'st${resourceToken}'
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: storageSku
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false // keyless: Entra ID tokens only
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
}

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${resourceToken}'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: logRetentionDays
  }
}

resource appsEnvironment 'Microsoft.App/managedEnvironments@2025-01-01' = {
  name: 'cae-${resourceToken}'
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: logs.properties.customerId
        sharedKey: logs.listKeys().primarySharedKey
      }
    }
    workloadProfiles: [
      {
        name: 'Consumption'
        workloadProfileType: 'Consumption'
      }
    ]
  }
}

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = if (createRegistry) {
  name: 'cr${resourceToken}'
  location: location
  tags: tags
  sku: {
    name: 'Basic'
  }
  properties: {
    adminUserEnabled: false // pulls by managed identity (AcrPull), pushes by Entra ID
  }
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
  scope: resourceGroup(keyVaultResourceGroupName)
}

var roles = [
  'api'
  'events'
  'notifications'
  'runs'
]

// identities[i] belongs to roles[i].
module identities 'modules/identity.bicep' = [
  for role in roles: {
    name: 'identity-${role}'
    params: {
      name: 'id-${role}-${resourceToken}'
      location: location
      tags: tags
      storageAccountName: storage.name
      registryName: createRegistry ? registry.name : ''
    }
  }
]

module apiVault 'modules/vault-access.bicep' = {
  name: 'vault-access-api'
  scope: resourceGroup(keyVaultResourceGroupName)
  params: {
    vaultName: keyVaultName
    principalId: identities[0].outputs.principalId
    secretNames: map(apiSecrets, s => s.secret)
  }
}

module eventsVault 'modules/vault-access.bicep' = {
  name: 'vault-access-events'
  scope: resourceGroup(keyVaultResourceGroupName)
  params: {
    vaultName: keyVaultName
    principalId: identities[1].outputs.principalId
    secretNames: map(eventsSecrets, s => s.secret)
  }
}

module notificationsVault 'modules/vault-access.bicep' = {
  name: 'vault-access-notifications'
  scope: resourceGroup(keyVaultResourceGroupName)
  params: {
    vaultName: keyVaultName
    principalId: identities[2].outputs.principalId
    secretNames: map(notificationsSecrets, s => s.secret)
  }
}

module runsVault 'modules/vault-access.bicep' = {
  name: 'vault-access-runs'
  scope: resourceGroup(keyVaultResourceGroupName)
  params: {
    vaultName: keyVaultName
    principalId: identities[3].outputs.principalId
    secretNames: map(runsSecrets, s => s.secret)
  }
}

// What every role is told: where storage is and how to get its tokens (the app's own
// identity), where to listen (every role serves /healthz and /readyz), how to log. The webhook
// allowlist is the same everywhere: endpoints and agents are checked when added (api), when a
// delivery or run is started (events) and on every connection (notifications, runs).
var commonEnv = concat(
  [
    { name: 'PLATFORM_STORAGE_ACCOUNT', value: storage.name }
    { name: 'PLATFORM_STORAGE_CREDENTIAL', value: 'managed-identity' }
    { name: 'PLATFORM_HTTP_ADDR', value: '0.0.0.0:8080' }
    { name: 'PLATFORM_LOG_FORMAT', value: 'json' }
    { name: 'PLATFORM_LOG_LEVEL', value: logLevel }
    { name: 'PLATFORM_SETTINGS_DSN', secretRef: settingsDsn.name }
    { name: 'PLATFORM_QUEUE_SHARDS', value: string(queueShards) }
  ],
  empty(namespace) ? [] : [{ name: 'PLATFORM_NAMESPACE', value: namespace }],
  empty(webhookAllowlist) ? [] : [{ name: 'PLATFORM_WEBHOOK_ALLOWLIST', value: webhookAllowlist }]
)

// SMTP login (notifications) and HTTP agents (runs), each only when configured.
var smtpLoginEnv = [
  { name: 'PLATFORM_SMTP_USERNAME', value: smtpUsername }
  { name: 'PLATFORM_SMTP_PASSWORD', secretRef: smtpPassword.name }
]
var agentsEnv = [
  { name: 'PLATFORM_AGENTS', value: agents }
  { name: 'PLATFORM_AGENT_SECRET', secretRef: agentSecret.name }
]
// api and events need the agents' names (rules naming an agent are checked when saved, and
// runs are started when a rule fires) but never call an agent: no secret for them.
var agentNamesEnv = empty(agents) ? [] : [{ name: 'PLATFORM_AGENTS', value: agents }]

var registryServer = createRegistry ? registry.properties.loginServer : ''

module api 'modules/app.bicep' = {
  name: 'app-api'
  dependsOn: [apiVault]
  params: {
    name: 'ca-api-${resourceToken}'
    location: location
    tags: tags
    serviceName: 'api'
    environmentId: appsEnvironment.id
    identityId: identities[0].outputs.id
    image: image
    exists: apiExists
    registryServer: registryServer
    vaultUri: vault.properties.vaultUri
    keyVaultSecrets: apiSecrets
    env: concat(
      [
        { name: 'PLATFORM_ROLE', value: 'api' }
        { name: 'AZURE_CLIENT_ID', value: identities[0].outputs.clientId }
        { name: 'PLATFORM_AUTH', value: 'oidc' }
        { name: 'PLATFORM_AUTH_ISSUER', value: authIssuer }
        { name: 'PLATFORM_AUTH_AUDIENCE', value: authAudience }
      ],
      commonEnv,
      agentNamesEnv
    )
    ingress: true
    external: true
    minReplicas: apiMinReplicas
    maxReplicas: apiMaxReplicas
    rules: [
      {
        name: 'http'
        http: {
          metadata: {
            concurrentRequests: string(apiConcurrentRequests)
          }
        }
      }
    ]
    cpu: apiCpu
    memory: apiMemory
  }
}

// The queue scale rules authenticate as the app's own identity (`identity`, with the
// account's name in `accountName`, no connection string): "Use managed identity for scale
// rules", learn.microsoft.com/azure/container-apps/managed-identity#scale-rules; KEDA's
// azure-queue scaler underneath. The identity's Storage Queue Data Contributor covers the
// scaler's reads.
//
// What a rule counts matters. KEDA's default (queueLengthStrategy all) is the queue's
// approximate count, invisible messages included: the notification scheduler holds reminders
// invisible for days, and backing-off retries are invisible too, so that count would keep
// replicas up (ceil(n / queueLength) of them) for work that is not due. events and
// notifications therefore count visible messages only (custom rule, queueLengthStrategy
// visibleonly: KEDA peeks up to 32, and falls back to the approximate count above that, i.e.
// only under a real backlog): a reminder that comes due is visible again, and wakes the app
// from zero within the rule's polling interval. runs counts everything (the typed azureQueue
// rule): a run in progress is an invisible message, and must keep its replica.

module events 'modules/app.bicep' = {
  name: 'app-events'
  dependsOn: [eventsVault]
  params: {
    name: 'ca-events-${resourceToken}'
    location: location
    tags: tags
    serviceName: 'events'
    environmentId: appsEnvironment.id
    identityId: identities[1].outputs.id
    image: image
    exists: eventsExists
    registryServer: registryServer
    vaultUri: vault.properties.vaultUri
    keyVaultSecrets: eventsSecrets
    env: concat(
      [
        { name: 'PLATFORM_ROLE', value: 'events' }
        { name: 'AZURE_CLIENT_ID', value: identities[1].outputs.clientId }
      ],
      commonEnv,
      agentNamesEnv
    )
    minReplicas: eventsMinReplicas
    maxReplicas: eventsMaxReplicas
    rules: [
      for suffix in shardSuffixes: {
        name: 'entity-events${suffix}'
        custom: {
          type: 'azure-queue'
          metadata: {
            accountName: storage.name
            queueName: '${queuePrefix}entity-events${suffix}'
            queueLength: string(max(1, eventsQueueLength / queueShards))
            queueLengthStrategy: 'visibleonly'
          }
          identity: identities[1].outputs.id
        }
      }
    ]
    cpu: eventsCpu
    memory: eventsMemory
  }
}

// SMTP and the webhook secret go to notifications only: email and webhook-channel messages
// are sent by the distributor (queue notification-distributor), and so are the endpoint
// deliveries that events creates, which are signed with each endpoint's own secret.
module notifications 'modules/app.bicep' = {
  name: 'app-notifications'
  dependsOn: [notificationsVault]
  params: {
    name: 'ca-notifications-${resourceToken}'
    location: location
    tags: tags
    serviceName: 'notifications'
    environmentId: appsEnvironment.id
    identityId: identities[2].outputs.id
    image: image
    exists: notificationsExists
    registryServer: registryServer
    vaultUri: vault.properties.vaultUri
    keyVaultSecrets: notificationsSecrets
    env: concat(
      [
        { name: 'PLATFORM_ROLE', value: 'notifications' }
        { name: 'AZURE_CLIENT_ID', value: identities[2].outputs.clientId }
      ],
      commonEnv,
      empty(smtpAddr) ? [] : [{ name: 'PLATFORM_SMTP_ADDR', value: smtpAddr }],
      empty(smtpFrom) ? [] : [{ name: 'PLATFORM_SMTP_FROM', value: smtpFrom }],
      empty(smtpUsername) ? [] : smtpLoginEnv,
      webhookSecretEnabled ? [{ name: 'PLATFORM_WEBHOOK_SECRET', secretRef: webhookSecret.name }] : []
    )
    minReplicas: 0
    maxReplicas: notificationsMaxReplicas
    rules: [
      for queue in notificationQueues: {
        name: queue
        custom: {
          type: 'azure-queue'
          metadata: {
            accountName: storage.name
            queueName: '${queuePrefix}${queue}'
            queueLength: string(max(1, notificationsQueueLength / queueShards))
            queueLengthStrategy: 'visibleonly'
          }
          identity: identities[2].outputs.id
        }
      }
    ]
    cpu: notificationsCpu
    memory: notificationsMemory
  }
}

module runs 'modules/app.bicep' = {
  name: 'app-runs'
  dependsOn: [runsVault]
  params: {
    name: 'ca-runs-${resourceToken}'
    location: location
    tags: tags
    serviceName: 'runs'
    environmentId: appsEnvironment.id
    identityId: identities[3].outputs.id
    image: image
    exists: runsExists
    registryServer: registryServer
    vaultUri: vault.properties.vaultUri
    keyVaultSecrets: runsSecrets
    env: concat(
      [
        { name: 'PLATFORM_ROLE', value: 'runs' }
        { name: 'AZURE_CLIENT_ID', value: identities[3].outputs.clientId }
        // An agent works for minutes: a scale-in or a new revision lets running agents finish
        // for up to 570 s of the 600 s grace period (Container Apps' most) before it cancels
        // them; a run cancelled then is taken over by another replica once its lease ends.
        { name: 'PLATFORM_STOP_TIMEOUT', value: '570s' }
      ],
      commonEnv,
      empty(agents) ? [] : agentsEnv
    )
    minReplicas: 0
    maxReplicas: runsMaxReplicas
    terminationGracePeriodSeconds: 600
    rules: [
      for suffix in shardSuffixes: {
        name: 'agent-runs${suffix}'
        azureQueue: {
          accountName: storage.name
          queueName: '${queuePrefix}agent-runs${suffix}'
          queueLength: max(1, agentRunsQueueLength / queueShards)
          identity: identities[3].outputs.id
        }
      }
    ]
    cpu: runsCpu
    memory: runsMemory
  }
}

@description('azd pushes images here.')
output AZURE_CONTAINER_REGISTRY_ENDPOINT string = registryServer

output AZURE_STORAGE_ACCOUNT string = storage.name

output API_URL string = 'https://${api.outputs.fqdn}'

output APP_NAMES array = [
  api.outputs.name
  events.outputs.name
  notifications.outputs.name
  runs.outputs.name
]
