package webhooks_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/platform/platform/worker/webhooks"
)

// notGlobal lists addresses that are not globally routable unicast: every address issue 20
// found accepted, and one or more from each range of the IANA IPv4 and IPv6 special-purpose
// registries that is not globally reachable (or is deprecated, or is not unicast).
var notGlobal = []string{
	// Issue 20.
	"168.63.129.16",             // Azure's platform address (WireServer, DNS, health probes)
	"100.64.0.1", "100.100.1.1", // shared address space (CGNAT; Container Apps use 100.100.x)
	"100.127.255.254",              //
	"198.18.0.1", "198.19.255.255", // benchmarking
	"192.0.0.1", "192.0.0.170", // IETF protocol assignments
	"240.0.0.1", "255.255.255.255", // reserved, limited broadcast
	"0.0.0.0", "0.1.2.3", // "this network"
	"[64:ff9b::a00:1]",              // NAT64 of 10.0.0.1
	"[64:ff9b::7f00:1]",             // NAT64 of 127.0.0.1
	"[64:ff9b::a9fe:a9fe]",          // NAT64 of 169.254.169.254
	"[64:ff9b:1::808:808]",          // local-use NAT64
	"[2002:c0a8:101::1]",            // 6to4 of 192.168.1.1
	"[2002:7f00:1::]",               // 6to4 of 127.0.0.1
	"[2002:a83f:8110::1]",           // 6to4 of 168.63.129.16
	"[2002:6440:1::1]",              // 6to4 of 100.64.0.1
	"[::10.0.0.1]", "[::127.0.0.1]", // IPv4-compatible (deprecated)
	"[::8.8.8.8]", //
	"[fec0::1]",   // site-local (deprecated)
	// The rest of the IPv4 registry.
	"10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1", // private use
	"127.0.0.1", "127.255.255.254", // loopback
	"169.254.169.254", "169.254.0.1", // link local (the metadata service)
	"192.0.2.1", "198.51.100.1", "203.0.113.10", // documentation
	"192.88.99.1",                  // deprecated 6to4 relay anycast
	"224.0.0.1", "239.255.255.250", // multicast
	// The rest of the IPv6 registry, and what lies outside global unicast 2000::/3.
	"[::1]", "[::]", // loopback, unspecified
	"[::ffff:10.0.0.1]", "[::ffff:127.0.0.1]", "[::ffff:169.254.169.254]", "[::ffff:168.63.129.16]", // IPv4-mapped
	"[100::1]",                                            // discard-only
	"[2001::1]", "[2001:0:4136:e378:8000:63bf:3fff:fdd2]", // Teredo
	"[2001:2::1]",                  // benchmarking
	"[2001:10::1]", "[2001:20::1]", // ORCHID, ORCHIDv2
	"[2001:db8::1]", "[3fff::1]", // documentation
	"[5f00::1]",                   // SRv6 SIDs
	"[fc00::1]", "[fd12:3456::1]", // unique local
	"[fe80::1]", "[fe80::1%25eth0]", // link local
	"[ff02::1]", "[ff05::1:3]", "[ff0e::1]", // multicast
	"[4000::1]", // not yet allocated
	// Numeric forms a resolver may read as an IPv4 address.
	"0", "2130706433", "0x7f000001", "127.1", "0177.0.0.1",
}

// global are globally routable unicast addresses: they must pass.
var global = []string{
	"8.8.8.8", "1.1.1.1", "20.50.2.1", "168.63.129.17", "100.63.255.255", "100.128.0.1",
	"198.17.255.255", "198.20.0.1", "192.0.1.1", "223.255.255.255",
	"[2606:4700::1111]", "[2a00:1450:4001:80b::200e]",
	"[2002:808:808::1]",  // 6to4 of 8.8.8.8
	"[64:ff9b::808:808]", // NAT64 of 8.8.8.8
	"[::ffff:8.8.8.8]",   // IPv4-mapped 8.8.8.8
}

func TestTargetsRefuseEveryAddressThatIsNotGlobalUnicast(t *testing.T) {
	t.Parallel()
	targets, err := webhooks.NewTargets(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range notGlobal {
		t.Run("refused "+host, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			u := "https://" + host + "/hook"
			err := targets.CheckURL(ctx, u)
			if !errors.Is(err, webhooks.ErrForbiddenTarget) {
				t.Fatalf("add time: %s: %v, want refused", u, err)
			}
			// Dial time: the client refuses to connect, whatever the URL passed before.
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+host+":9/hook", nil)
			resp, err := targets.Client().Do(req)
			if err == nil {
				resp.Body.Close()
			}
			if !errors.Is(err, webhooks.ErrForbiddenTarget) {
				t.Fatalf("dial time: %s: %v, want refused", host, err)
			}
		})
	}
	for _, host := range global {
		if err := targets.CheckURL(context.Background(), "https://"+host+"/hook"); err != nil {
			t.Errorf("%s: %v, want accepted", host, err)
		}
	}
}

func TestTargetsRefusalNamesTheRangeAndTheAllowList(t *testing.T) {
	t.Parallel()
	targets, err := webhooks.NewTargets(nil)
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]string{
		"168.63.129.16":      "Azure",
		"100.100.1.1":        "100.64.0.0/10",
		"[2002:c0a8:101::1]": "192.168.1.1",
		"[64:ff9b::a00:1]":   "10.0.0.1",
	} {
		err := targets.CheckURL(context.Background(), "https://"+host+"/hook")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "PLATFORM_WEBHOOK_ALLOWLIST") {
			t.Errorf("%s: %v, want a reason naming %q and the allow-list", host, err, want)
		}
	}
}

func TestTargetsAllowListStillOpensARange(t *testing.T) {
	t.Parallel()
	targets, err := webhooks.NewTargets([]string{"100.64.0.0/10", "fd00::/8", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"100.100.1.1", "[fd12::1]", "127.0.0.1", "[::ffff:127.0.0.1]"} {
		if err := targets.CheckURL(context.Background(), "https://"+host+"/hook"); err != nil {
			t.Errorf("%s is allow-listed: %v", host, err)
		}
	}
}
