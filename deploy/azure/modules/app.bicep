// One container app: one Platform process role, run by its own user-assigned identity.
//
// Microsoft.App 2025-01-01 (GA) is the first GA version whose scale rules take `identity`
// (bicep-types-az generated/app/microsoft.app/2025-01-01: QueueScaleRule.identity, "the
// resource ID of a user-assigned managed identity that is assigned to the Container App"),
// and the one used here for Key Vault references (Secret.keyVaultUrl + identity), registry
// pulls by identity and template.terminationGracePeriodSeconds.

@description('Name of the container app.')
param name string

param location string

param tags object = {}

@description('azd service name (tag azd-service-name): what `azd deploy` finds the app by.')
param serviceName string

@description('Resource id of the Container Apps environment.')
param environmentId string

@description('Resource id of the app\'s user-assigned identity.')
param identityId string

@description('Full image reference; empty: the image the app runs now (when exists), else a placeholder.')
param image string = ''

@description('Whether the app exists already (azd: SERVICE_<NAME>_RESOURCE_EXISTS), so an empty image keeps the one it runs.')
param exists bool = false

@description('Container environment variables: { name, value } or { name, secretRef }.')
param env array = []

@description('Key Vault references: { name (the app\'s secret name), secret (the Key Vault secret name) }.')
param keyVaultSecrets array = []

@description('Vault URI, https://NAME.vault.azure.net/ (trailing slash).')
param vaultUri string = ''

@description('Ingress: none (false) or HTTP on 8080.')
param ingress bool = false

@description('With ingress: reachable from outside the environment.')
param external bool = false

param minReplicas int

param maxReplicas int

@description('Scale rules (Microsoft.App ScaleRule objects).')
param rules array = []

@description('KEDA: seconds without work before a rule-scaled app scales in (to minReplicas).')
param cooldownPeriod int = 300

@description('vCPU per replica, as a string (e.g. \'0.5\'); with memory, a combination the Consumption profile accepts.')
param cpu string

@description('Memory per replica, e.g. \'1Gi\'.')
param memory string

@description('Registry login server to pull from with the app\'s identity; empty: a public image.')
param registryServer string = ''

@description('Seconds between SIGTERM and SIGKILL: the worker stops within 25 s (20 s for in-flight work, 5 s for the HTTP server).')
@minValue(30)
param terminationGracePeriodSeconds int = 30

// The placeholder runs only until the first `azd deploy` of a fresh environment: it listens on
// 8080 like the worker (ASP.NET Core images do since .NET 8), so the ingress and its default
// probes are satisfied; the worker's own probes are left out while it runs, as it answers
// neither /healthz nor /readyz. The next provision puts them back.
var placeholderImage = 'mcr.microsoft.com/dotnet/samples:aspnetapp'

resource existingApp 'Microsoft.App/containerApps@2025-01-01' existing = if (exists) {
  name: name
}

var runImage = !empty(image) ? image : (exists ? existingApp.properties.template.containers[0].image : placeholderImage)

// The worker listens on PLATFORM_HTTP_ADDR (0.0.0.0:8080) in every role, with or without
// ingress: Container Apps runs the probes a container declares whether ingress is on or off;
// ingress only adds default probes where none is declared.
var probes = [
  {
    // Start (which first creates missing tables and queues) may take up to a minute:
    // 3 + 6 x 10 s before the replica is restarted (failureThreshold is 10 at most).
    type: 'Startup'
    httpGet: { path: '/healthz', port: 8080, scheme: 'HTTP' }
    initialDelaySeconds: 3
    periodSeconds: 6
    timeoutSeconds: 3
    failureThreshold: 10
  }
  {
    // The process runs: restart it after 30 s of silence.
    type: 'Liveness'
    httpGet: { path: '/healthz', port: 8080, scheme: 'HTTP' }
    periodSeconds: 10
    timeoutSeconds: 3
    failureThreshold: 3
  }
  {
    // Storage and the settings database answer: only then does the replica get requests.
    type: 'Readiness'
    httpGet: { path: '/readyz', port: 8080, scheme: 'HTTP' }
    periodSeconds: 10
    timeoutSeconds: 5
    failureThreshold: 3
  }
]

var ingressConfig = {
  external: external
  targetPort: 8080
  transport: 'auto'
  allowInsecure: false
}

resource app 'Microsoft.App/containerApps@2025-01-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    environmentId: environmentId
    workloadProfileName: 'Consumption'
    configuration: {
      activeRevisionsMode: 'Single'
      ingress: ingress ? ingressConfig : null
      registries: empty(registryServer) ? [] : [{ server: registryServer, identity: identityId }]
      // Versionless Key Vault URLs: a rotated secret reaches new replicas without a redeploy.
      secrets: [
        for s in keyVaultSecrets: {
          name: s.name
          keyVaultUrl: '${vaultUri}secrets/${s.secret}'
          identity: identityId
        }
      ]
    }
    template: {
      terminationGracePeriodSeconds: terminationGracePeriodSeconds
      containers: [
        {
          name: 'platform'
          image: runImage
          env: env
          probes: runImage == placeholderImage ? [] : probes
          resources: {
            cpu: json(cpu)
            memory: memory
          }
        }
      ]
      scale: {
        minReplicas: minReplicas
        maxReplicas: maxReplicas
        cooldownPeriod: cooldownPeriod
        pollingInterval: 30
        rules: rules
      }
    }
  }
}

output name string = app.name

@description('Ingress host name; empty without ingress.')
output fqdn string = ingress ? app.properties.configuration.ingress.fqdn : ''
