package console

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// Find sends each kind of thing support has to the page that answers for it, and anything
// else to a trace, whose API answer says what is wrong with it.
func TestDestination(t *testing.T) {
	const guid = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	for _, c := range []struct{ q, to string }{
		{"ada@example.com", "/console/messages?address=ada%40example.com"},
		{"Ada@Example.COM", "/console/messages?address=ada%40example.com"},
		{"1 " + strings.ToUpper(guid), "/console/timeline?type=1&id=" + guid},
		{"1/501", "/console/timeline?type=1&id=501"},
		{"3:" + guid, "/console/timeline?type=3&id=" + guid},
		{"entity-history:11:1:" + guid + ":2026-11-22T09:00:00.1234567Z:1", "/console/timeline?type=1&id=" + guid + "&row=entity-history%3A11%3A1%3A" + guid + "%3A2026-11-22T09%3A00%3A00.1234567Z%3A1"},
		{"11:1:" + guid + ":2026-11-22T09:00:00.1234567Z:1", "/console/trace?key=11%3A1%3A" + guid + "%3A2026-11-22T09%3A00%3A00.1234567Z%3A1"},
		{"0:501", "/console/trace?key=0%3A501"}, // not an entity: the trace says why
		{"1 -5", "/console/trace?key=1+-5"},
	} {
		if to, why := destination(c.q); to != c.to {
			t.Errorf("%q: to %q (%s), want %q", c.q, to, why, c.to)
		}
	}
	for _, q := range []string{"ada@@example.com", "entity-history:x", strings.Repeat("k", 4*512+1)} {
		if to, why := destination(q); to != "" || why == "" {
			t.Errorf("%q: to %q, want refused with a reason", q, to)
		}
	}
}

// Sign-in goes on only to a console page of this origin.
func TestNextPage(t *testing.T) {
	for next, want := range map[string]string{
		"/console/trace?key=a%7Cb":   "/console/trace?key=a%7Cb",
		"/console/":                  "/console/",
		"":                           "/console/",
		"/v1/webhooks":               "/console/",
		"https://evil.example/":      "/console/",
		"//evil.example/console/":    "/console/",
		"/console/\\evil":            "/console/",
		"/console/x\r\nSet-Cookie:a": "/console/",
		"/console/login?next=//evil": "/console/",
	} {
		if got := nextPage(next); got != want {
			t.Errorf("next %q: %q, want %q", next, got, want)
		}
	}
}

// The session cookie is Secure wherever a browser will send it back: everywhere but plain
// HTTP to loopback.
func TestSecure(t *testing.T) {
	for host, want := range map[string]bool{"127.0.0.1:8080": false, "localhost": false, "[::1]:80": false,
		"console.example.com": true, "10.0.0.7:8080": true, "127.0.0.1.evil.example": true} {
		r := httptest.NewRequest("GET", "http://x/console/", nil)
		r.Host = host
		if got := secure(r); got != want {
			t.Errorf("Host %q: secure %v, want %v", host, got, want)
		}
	}
}

// A proxy that terminated TLS says so in more than one way; sign-in believes any of them.
func TestForwardedHTTPS(t *testing.T) {
	for h, want := range map[[2]string]bool{
		{"X-Forwarded-Proto", "https"}:                  true,
		{"X-Forwarded-Proto", "HTTPS"}:                  true,
		{"X-Forwarded-Proto", "https, http"}:            true,
		{"X-Forwarded-Proto", "http"}:                   false,
		{"Forwarded", `for=1.2.3.4;proto=https`}:        true,
		{"Forwarded", `proto="HTTPS";by=x, proto=http`}: true,
		{"Forwarded", `proto=http`}:                     false,
		{"X-Other", "https"}:                            false,
	} {
		r := httptest.NewRequest("POST", "http://console.example.com/console/login", nil)
		r.Header.Set(h[0], h[1])
		if got := forwardedHTTPS(r); got != want {
			t.Errorf("%s: %s → %v, want %v", h[0], h[1], got, want)
		}
	}
}
