package webhooks

import (
	"net/netip"
	"strings"
)

// span is a range of addresses a webhook may not call, and what it is.
type span struct {
	prefix netip.Prefix
	what   string
}

func spans(list ...string) []span {
	out := make([]span, 0, len(list)/2)
	for i := 0; i < len(list); i += 2 {
		out = append(out, span{netip.MustParsePrefix(list[i]), list[i+1]})
	}
	return out
}

// The IANA IPv4 and IPv6 special-purpose address registries are the reference: every range
// there that is not globally reachable is refused, and so are the deprecated ones, multicast,
// and the anycast service prefixes (a webhook endpoint is never one of them). Azure's
// platform address is refused by name: it answers the host's own agent, DNS and health
// probes, and is reachable from every VM and container.
var (
	refusedV4 = spans(
		"0.0.0.0/8", `"this network"`,
		"10.0.0.0/8", "private use",
		"100.64.0.0/10", "shared address space (carrier-grade NAT; Container Apps use 100.100.0.0/16)",
		"127.0.0.0/8", "loopback",
		"168.63.129.16/32", "Azure's platform address (WireServer, DNS, health probes)",
		"169.254.0.0/16", "link local (cloud metadata services)",
		"172.16.0.0/12", "private use",
		"192.0.0.0/24", "IETF protocol assignments",
		"192.0.2.0/24", "documentation (TEST-NET-1)",
		"192.88.99.0/24", "deprecated 6to4 relay anycast",
		"192.168.0.0/16", "private use",
		"198.18.0.0/15", "benchmarking",
		"198.51.100.0/24", "documentation (TEST-NET-2)",
		"203.0.113.0/24", "documentation (TEST-NET-3)",
		"224.0.0.0/4", "multicast",
		"240.0.0.0/4", "reserved (and limited broadcast)",
	)
	refusedV6 = spans(
		"::/128", "unspecified",
		"::1/128", "loopback",
		"::/96", "IPv4-compatible (deprecated)",
		"64:ff9b:1::/48", "local-use IPv4/IPv6 translation",
		"100::/64", "discard-only",
		"100:0:0:1::/64", "dummy prefix",
		"2001::/32", "Teredo",
		"2001::/23", "IETF protocol assignments (benchmarking, ORCHID, anycast services)",
		"2001:db8::/32", "documentation",
		"3fff::/20", "documentation",
		"5f00::/16", "segment routing (SRv6) SIDs",
		"fc00::/7", "unique local",
		"fe80::/10", "link local",
		"fec0::/10", "site local (deprecated)",
		"ff00::/8", "multicast",
	)
	globalUnicastV6 = netip.MustParsePrefix("2000::/3")
	nat64           = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour       = netip.MustParsePrefix("2002::/16")
)

// notGlobal says why ip is not a globally routable unicast address, or "" when it is. An
// address that carries an IPv4 address (IPv4-mapped, NAT64 64:ff9b::/96, 6to4 2002::/16) is
// judged by that IPv4 address too.
func notGlobal(ip netip.Addr) string {
	if ip.Zone() != "" {
		return "an address with a zone (link local)"
	}
	if ip.Is4In6() {
		return embedded("IPv4-mapped", ip.Unmap())
	}
	if ip.Is4() {
		for _, s := range refusedV4 {
			if s.prefix.Contains(ip) {
				return s.prefix.String() + " " + s.what
			}
		}
		return ""
	}
	b := ip.As16()
	switch {
	case nat64.Contains(ip):
		return embedded("NAT64", netip.AddrFrom4([4]byte(b[12:16])))
	case sixToFour.Contains(ip):
		return embedded("6to4", netip.AddrFrom4([4]byte(b[2:6])))
	}
	// The most specific range names the reason: Teredo before the IETF block that holds it.
	for _, s := range refusedV6 {
		if s.prefix.Contains(ip) {
			return s.prefix.String() + " " + s.what
		}
	}
	if !globalUnicastV6.Contains(ip) {
		return "outside global unicast 2000::/3"
	}
	return ""
}

func embedded(form string, v4 netip.Addr) string {
	if why := notGlobal(v4); why != "" {
		return form + " of " + v4.String() + ", " + why
	}
	return ""
}

// numericHost reports whether host is a number that is not a canonical IP address, such as
// 2130706433, 0x7f000001, 127.1 or 0177.0.0.1: some resolvers read these as IPv4 addresses
// (inet_aton), others look them up in DNS; no top-level domain is numeric, so none is a name.
func numericHost(host string) bool {
	labels := strings.Split(strings.TrimSuffix(host, "."), ".")
	last := strings.ToLower(labels[len(labels)-1])
	if rest, ok := strings.CutPrefix(last, "0x"); ok {
		last = rest
		return strings.Trim(last, "0123456789abcdef") == ""
	}
	return last != "" && strings.Trim(last, "0123456789") == ""
}
