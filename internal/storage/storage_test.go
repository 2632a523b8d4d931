package storage

import (
	"strings"
	"testing"
)

func TestConnectionStringDefaults(t *testing.T) {
	for _, cs := range []string{"", "  ", "UseDevelopmentStorage=true", "UseDevelopmentStorage=true;", "usedevelopmentstorage=TRUE"} {
		if got := (Account{ConnectionString: cs}).ResolvedConnectionString(); got != DevelopmentConnectionString {
			t.Errorf("%q resolved to %q", cs, got)
		}
	}
	own := "DefaultEndpointsProtocol=https;AccountName=prod;AccountKey=c2VjcmV0;EndpointSuffix=core.windows.net"
	if got := (Account{ConnectionString: own}).ResolvedConnectionString(); got != own {
		t.Errorf("an explicit connection string was changed: %q", got)
	}
}

func TestRedactedNeverShowsSecrets(t *testing.T) {
	cs := "DefaultEndpointsProtocol=https;AccountName=prod;AccountKey=c2VjcmV0;SharedAccessSignature=sv=2020&sig=abc;EndpointSuffix=core.windows.net"
	got := Redacted(cs)
	if strings.Contains(got, "c2VjcmV0") || strings.Contains(got, "sig=abc") || !strings.Contains(got, "AccountName=prod") {
		t.Fatalf("redacted: %q", got)
	}
}
