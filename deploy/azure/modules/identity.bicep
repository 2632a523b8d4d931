// One role's user-assigned managed identity and its grants on the storage account (and on the
// registry, when the template made one). Key Vault access is granted per secret by
// vault-access.bicep, once the identity exists.
//
// Every role gets the three Contributor data roles: each process creates its missing queues,
// tables and blob containers at start (Storage Queue Data Contributor is the only queue role
// with the queues/write action; Storage Table Data Contributor the only table role with
// tables/write), consumers renew a message's visibility (Update Message: the queue
// messages/write data action, which Storage Queue Data Message Processor lacks), the api role
// enqueues what its outbox materializes and holds the leader lease blob, and every role reads
// and writes claim-check blobs. Role definitions as listed in "Azure built-in roles for
// Storage" (learn.microsoft.com/azure/role-based-access-control/built-in-roles/storage).

@description('Name of the user-assigned identity.')
param name string

param location string

param tags object = {}

@description('Storage account (in this resource group) the identity reads and writes.')
param storageAccountName string

@description('Container registry (in this resource group) the identity pulls from; empty: none.')
param registryName string = ''

var storageRoleIds = [
  '974c5e8b-45b9-4653-ba55-5f855dd0fb88' // Storage Queue Data Contributor
  '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // Storage Table Data Contributor
  'ba92f5b4-2d11-453d-a403-e96b0029c9fe' // Storage Blob Data Contributor
]
var acrPullRoleId = '7f951dda-4ed3-4680-a7ca-43fe172d538d' // AcrPull

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource storageAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in storageRoleIds: {
    name: guid(storage.id, identity.id, roleId)
    scope: storage
    properties: {
      principalId: identity.properties.principalId
      principalType: 'ServicePrincipal'
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    }
  }
]

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = if (!empty(registryName)) {
  name: registryName
}

resource registryPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(registryName)) {
  name: guid(registry.id, identity.id, acrPullRoleId)
  scope: registry
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', acrPullRoleId)
  }
}

@description('Resource id: what an app, a Key Vault reference and a scale rule name the identity by.')
output id string = identity.id

@description('Client id: the app\'s AZURE_CLIENT_ID, which selects this identity for the worker\'s tokens.')
output clientId string = identity.properties.clientId

@description('Principal id: what role assignments grant to.')
output principalId string = identity.properties.principalId
