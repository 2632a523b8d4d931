package storage

import (
	"strings"
	"testing"
)

func TestKeylessEndpointsFromTheAccountNameOrGivenEach(t *testing.T) {
	e, err := Keyless{AccountName: "prodplatform"}.Endpoints()
	if err != nil || e != (Endpoints{Blob: "https://prodplatform.blob.core.windows.net", Queue: "https://prodplatform.queue.core.windows.net",
		Table: "https://prodplatform.table.core.windows.net"}) {
		t.Fatalf("%+v %v", e, err)
	}
	// A private endpoint or sovereign cloud overrides one service; a trailing slash is dropped.
	e, err = Keyless{AccountName: "prodplatform", QueueEndpoint: "https://prodplatform.queue.core.usgovcloudapi.net/"}.Endpoints()
	if err != nil || e.Queue != "https://prodplatform.queue.core.usgovcloudapi.net" || e.Blob != "https://prodplatform.blob.core.windows.net" {
		t.Fatalf("%+v %v", e, err)
	}
	e, err = Keyless{BlobEndpoint: "https://127.0.0.1:10000/devstoreaccount1", QueueEndpoint: "https://127.0.0.1:10001/devstoreaccount1",
		TableEndpoint: "https://127.0.0.1:10002/devstoreaccount1"}.Endpoints()
	if err != nil || e.Table != "https://127.0.0.1:10002/devstoreaccount1" {
		t.Fatalf("%+v %v", e, err)
	}
}

func TestKeylessRefusesWhatCannotCarryAToken(t *testing.T) {
	for _, c := range []struct {
		k    Keyless
		want string
	}{
		{Keyless{AccountName: "ab"}, "3-24 lowercase"},
		{Keyless{AccountName: "Prod"}, "3-24 lowercase"},
		{Keyless{AccountName: "prod-1"}, "3-24 lowercase"},
		{Keyless{QueueEndpoint: "https://a.queue.core.windows.net"}, "PLATFORM_STORAGE_BLOB_ENDPOINT: unset"},
		{Keyless{AccountName: "prod", QueueEndpoint: "http://a.queue.core.windows.net"}, "want https"},
		{Keyless{AccountName: "prod", BlobEndpoint: "https://a.blob.core.windows.net?sv=2020&sig=x"}, "a SAS belongs"},
		{Keyless{AccountName: "prod", TableEndpoint: "https://user:pw@a.table.core.windows.net"}, "no query, credentials"},
		{Keyless{AccountName: "prod", TableEndpoint: "https:///nohost"}, "no host"},
		{Keyless{AccountName: "prod", Credential: "password"}, "want default or managed-identity"},
	} {
		_, err := c.k.Account()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.k, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "sig=x") {
			t.Errorf("%+v: the error repeats a SAS signature: %v", c.k, err)
		}
	}
}

func TestAKeylessAccountIsDescribedWithoutSecrets(t *testing.T) {
	acct, err := Keyless{AccountName: "prodplatform", Credential: CredentialManagedIdentity, ClientID: "0d9e1a52-3c7e-4d43-9d39-5f1c2a7b8e61"}.Account()
	if err != nil {
		t.Fatal(err)
	}
	if !acct.Keyless() || acct.Endpoint(Queue) != "https://prodplatform.queue.core.windows.net" {
		t.Fatalf("%+v", acct)
	}
	want := "BlobEndpoint=https://prodplatform.blob.core.windows.net;QueueEndpoint=https://prodplatform.queue.core.windows.net;" +
		"TableEndpoint=https://prodplatform.table.core.windows.net;Credential=managed-identity"
	if got := acct.Describe(); got != want {
		t.Fatalf("describe: %q", got)
	}
}
