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

// Targets decides which webhook targets the worker may call: only globally routable unicast
// addresses (ranges.go), so that a subscriber cannot make the worker call into its own network
// (SSRF), unless the host or a CIDR holding the address is allow-listed
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

// refusal says why ip may not be called, or "" when it may.
func (t *Targets) refusal(ip netip.Addr) string {
	ip = ip.Unmap()
	for _, p := range t.nets {
		if p.Contains(ip) {
			return ""
		}
	}
	return notGlobal(ip)
}

// CheckURL refuses what may not be a webhook target: not http(s), or a host that is (or
// resolves to) an address that is not globally routable unicast.
func (t *Targets) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Hostname() == "" {
		return fmt.Errorf("%w: %s: want an http(s) URL", ErrForbiddenTarget, RedactURL(raw))
	}
	host := strings.ToLower(u.Hostname())
	if t.hosts[host] {
		return nil
	}
	ips, err := resolve(ctx, host)
	if errors.Is(err, ErrForbiddenTarget) {
		return err
	}
	if dnsErr := (*net.DNSError)(nil); ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.As(err, &dnsErr) && (dnsErr.IsTimeout || dnsErr.IsTemporary) {
		// The lookup was cut short (a stop, a deadline) or the resolver failed for now: that
		// says nothing about the URL, and a retry may reach it.
		return fmt.Errorf("webhook host %s: %w", host, err)
	}
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrForbiddenTarget, host, err)
	}
	for _, ip := range ips {
		if why := t.refusal(ip); why != "" {
			what := host + " is"
			if ip.String() != host {
				what = host + " resolves to " + ip.String() + ","
			}
			return fmt.Errorf("%w: %s not a globally routable unicast address: %s (allow it with PLATFORM_WEBHOOK_ALLOWLIST)", ErrForbiddenTarget, what, why)
		}
	}
	return nil
}

func resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(strings.TrimSuffix(host, ".")); err == nil {
		return []netip.Addr{ip}, nil
	}
	if numericHost(host) {
		return nil, fmt.Errorf("%w: %s is a number, not a host name or a canonical IP address", ErrForbiddenTarget, host)
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
			why := ""
			for _, ip := range ips {
				if why = t.refusal(ip); why == "" {
					return dialer.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
				}
			}
			return nil, fmt.Errorf("%w: %s resolves only to addresses that are not globally routable unicast (%s)", ErrForbiddenTarget, host, why)
		},
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	return &http.Client{Timeout: timeout, Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // a redirect could lead anywhere: the answer is the 3xx itself
	}}
}
