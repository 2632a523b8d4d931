package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Targets decides which webhook targets the worker may call. Private, loopback, link-local,
// unspecified and multicast addresses are refused (a subscriber must not make the worker call
// into its own network: SSRF) unless the host or a CIDR holding the address is allow-listed
// (PLATFORM_WEBHOOK_ALLOWLIST). The rule is checked when an endpoint is added and again when
// connecting, on the address actually dialled, so DNS cannot be turned against it later.
type Targets struct {
	hosts  map[string]bool
	nets   []netip.Prefix
	client *http.Client
}

// NewTargets reads the allow-list: hosts and CIDRs (a bare IP is one address).
func NewTargets(allowlist []string) (*Targets, error) {
	t := &Targets{hosts: map[string]bool{}}
	for _, it := range allowlist {
		it = strings.TrimSpace(it)
		switch {
		case it == "":
		case strings.Contains(it, "/"):
			p, err := netip.ParsePrefix(it)
			if err != nil {
				return nil, fmt.Errorf("webhook allow-list: %q: %v", it, err)
			}
			t.nets = append(t.nets, p.Masked())
		default:
			if ip, err := netip.ParseAddr(it); err == nil {
				t.nets = append(t.nets, netip.PrefixFrom(ip, ip.BitLen()))
				continue
			}
			t.hosts[strings.ToLower(it)] = true
		}
	}
	t.client = t.newClient(30 * time.Second)
	return t, nil
}

// ErrForbiddenTarget: a webhook URL the SSRF rule refuses.
var ErrForbiddenTarget = errors.New("webhook target refused")

func (t *Targets) allowedIP(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range t.nets {
		if p.Contains(ip) {
			return true
		}
	}
	return !(ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast())
}

// CheckURL refuses what may not be a webhook target: not http(s), or a host that is (or
// resolves to) a forbidden address.
func (t *Targets) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Hostname() == "" {
		return fmt.Errorf("%w: %q: want an http(s) URL", ErrForbiddenTarget, raw)
	}
	host := strings.ToLower(u.Hostname())
	if t.hosts[host] {
		return nil
	}
	ips, err := resolve(ctx, host)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrForbiddenTarget, host, err)
	}
	for _, ip := range ips {
		if !t.allowedIP(ip) {
			what := host + " is"
			if ip = ip.Unmap(); ip.String() != host {
				what = host + " resolves to " + ip.String() + ","
			}
			return fmt.Errorf("%w: %s a private, loopback or link-local address (allow it with PLATFORM_WEBHOOK_ALLOWLIST)", ErrForbiddenTarget, what)
		}
	}
	return nil
}

func resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip}, nil
	}
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// Client is the one HTTP client for webhook targets: every connection it makes obeys the rule,
// and connections to a target are reused across deliveries.
func (t *Targets) Client() *http.Client { return t.client }

func (t *Targets) newClient(timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	tr := &http.Transport{
		Proxy: nil, // a proxy would hide the real target from the rule
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if t.hosts[strings.ToLower(host)] {
				return dialer.DialContext(ctx, network, addr)
			}
			ips, err := resolve(ctx, host)
			if err != nil {
				return nil, err
			}
			for _, ip := range ips {
				if t.allowedIP(ip) {
					return dialer.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
				}
			}
			return nil, fmt.Errorf("%w: %s resolves only to forbidden addresses", ErrForbiddenTarget, host)
		},
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	return &http.Client{Timeout: timeout, Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // a redirect could lead anywhere: the answer is the 3xx itself
	}}
}
