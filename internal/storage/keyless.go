package storage

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// Credential names how a keyless account gets its Microsoft Entra ID tokens
// (PLATFORM_STORAGE_CREDENTIAL).
type Credential string

const (
	// CredentialDefault is azidentity's DefaultAzureCredential: environment (a service
	// principal), workload identity, managed identity, then the Azure CLI and the Azure
	// Developer CLI a developer signed in with. The default.
	CredentialDefault Credential = "default"
	// CredentialManagedIdentity is the managed identity of the host (Azure Container Apps, App
	// Service, a VM) and nothing else: what production should use, as Azure's guidance says,
	// so a missing identity fails instead of falling through to another credential.
	CredentialManagedIdentity Credential = "managed-identity"
)

// Keyless is the storage account reached without a key: by its endpoints, with Microsoft Entra
// ID tokens (docs/contracts.md, "Configuration").
type Keyless struct {
	// AccountName derives the endpoints https://{name}.{blob,queue,table}.core.windows.net
	// (PLATFORM_STORAGE_ACCOUNT).
	AccountName string
	// BlobEndpoint, QueueEndpoint and TableEndpoint each override the one derived from the
	// account name (sovereign clouds, private endpoints, Azurite over HTTPS)
	// (PLATFORM_STORAGE_{BLOB,QUEUE,TABLE}_ENDPOINT).
	BlobEndpoint, QueueEndpoint, TableEndpoint string
	// Credential says where tokens come from. Default: CredentialDefault.
	Credential Credential
	// ClientID selects a user-assigned managed identity by its client id (AZURE_CLIENT_ID).
	// Default: the system-assigned identity. CredentialDefault reads AZURE_CLIENT_ID itself.
	ClientID string
}

// Configured reports whether any of k's account or endpoints is set: then the account is
// reached keyless, and a connection string as well is a mistake.
func (k Keyless) Configured() bool {
	return k.AccountName != "" || k.BlobEndpoint != "" || k.QueueEndpoint != "" || k.TableEndpoint != ""
}

// Endpoints resolves the three service endpoints, checking each: an https URL with a host and no
// query (a SAS belongs in a connection string, not beside a token).
func (k Keyless) Endpoints() (Endpoints, error) {
	if k.AccountName != "" && !validAccountName(k.AccountName) {
		return Endpoints{}, fmt.Errorf("storage account %q: want 3-24 lowercase letters and digits", k.AccountName)
	}
	var e Endpoints
	var errs []string
	for _, s := range []struct {
		env, given string
		svc        Service
		to         *string
	}{
		{"PLATFORM_STORAGE_BLOB_ENDPOINT", k.BlobEndpoint, Blob, &e.Blob},
		{"PLATFORM_STORAGE_QUEUE_ENDPOINT", k.QueueEndpoint, Queue, &e.Queue},
		{"PLATFORM_STORAGE_TABLE_ENDPOINT", k.TableEndpoint, Table, &e.Table},
	} {
		switch {
		case s.given != "":
			if err := checkEndpoint(s.given); err != nil {
				errs = append(errs, fmt.Sprintf("%s %q: %v", s.env, withoutSecrets(s.given), err))
			}
			*s.to = strings.TrimSuffix(s.given, "/")
		case k.AccountName != "":
			*s.to = "https://" + k.AccountName + "." + string(s.svc) + ".core.windows.net"
		default:
			errs = append(errs, s.env+": unset, and no PLATFORM_STORAGE_ACCOUNT to derive it from")
		}
	}
	if len(errs) > 0 {
		return Endpoints{}, errors.New(strings.Join(errs, "; "))
	}
	return e, nil
}

// Account is the keyless account: its endpoints and a token credential of k.Credential's kind.
// Building the credential makes no request; the first storage request asks for a token.
func (k Keyless) Account() (Account, error) {
	e, err := k.Endpoints()
	if err != nil {
		return Account{}, err
	}
	cred, err := k.credential()
	if err != nil {
		return Account{}, err
	}
	return Account{Endpoints: e, Credential: cred, CredentialKind: k.kind()}, nil
}

func (k Keyless) kind() Credential {
	if k.Credential == "" {
		return CredentialDefault
	}
	return k.Credential
}

func (k Keyless) credential() (azcore.TokenCredential, error) {
	opts := azcore.ClientOptions{Transport: httpClient}
	var (
		cred azcore.TokenCredential
		err  error
	)
	switch k.kind() {
	case CredentialDefault:
		// It reads AZURE_CLIENT_ID itself (for a service principal, workload identity or a
		// user-assigned managed identity).
		cred, err = azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: opts})
	case CredentialManagedIdentity:
		o := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: opts}
		if k.ClientID != "" {
			o.ID = azidentity.ClientID(k.ClientID)
		}
		cred, err = azidentity.NewManagedIdentityCredential(o)
	default:
		return nil, fmt.Errorf("PLATFORM_STORAGE_CREDENTIAL %q: want %s or %s", k.Credential, CredentialDefault, CredentialManagedIdentity)
	}
	if err != nil {
		return nil, fmt.Errorf("storage credential %s: %w", k.kind(), err)
	}
	return cred, nil
}

// Endpoints are the URLs of an account's three services, e.g. https://acct.queue.core.windows.net.
type Endpoints struct {
	Blob, Queue, Table string
}

func (e Endpoints) of(s Service) string {
	switch s {
	case Blob:
		return e.Blob
	case Queue:
		return e.Queue
	default:
		return e.Table
	}
}

func checkEndpoint(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return errors.New("not a URL")
	case u.Scheme != "https":
		return errors.New("want https: a token is never sent in the clear")
	case u.Host == "":
		return errors.New("no host")
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return errors.New("want the service URL alone (no query, credentials or fragment; a SAS belongs in PLATFORM_STORAGE_CONNECTION_STRING)")
	}
	return nil
}

// withoutSecrets is an endpoint as an error may repeat it: no query (a SAS), no user
// information, no fragment.
func withoutSecrets(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(not a URL)"
	}
	u.RawQuery, u.Fragment, u.User = "", "", nil
	return u.String()
}

func validAccountName(s string) bool {
	if len(s) < 3 || len(s) > 24 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}
