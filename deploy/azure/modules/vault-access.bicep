// Key Vault Secrets User for one identity on each secret it references, and on nothing else
// in the vault: a role assignment at the scope of one secret. The vault must use Azure RBAC
// (enableRbacAuthorization), and every secret named here must exist before the deployment:
// an app whose Key Vault reference cannot be read does not start.

@description('Name of the existing Key Vault, in the resource group this module is deployed to.')
param vaultName string

@description('Principal id of the identity that reads the secrets.')
param principalId string

@description('Names of the Key Vault secrets it may read.')
param secretNames array

var keyVaultSecretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6' // Key Vault Secrets User

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource secrets 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = [
  for secretName in secretNames: {
    parent: vault
    name: secretName
  }
]

resource secretAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (secretName, i) in secretNames: {
    name: guid(secrets[i].id, principalId, keyVaultSecretsUserRoleId)
    scope: secrets[i]
    properties: {
      principalId: principalId
      principalType: 'ServicePrincipal'
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUserRoleId)
    }
  }
]
