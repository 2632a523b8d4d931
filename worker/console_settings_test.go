package worker_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// The Settings page shows a unit's options (enabled as a pill with its word), its subscribers
// (a hostile display name as text, a webhook credential not at all) and every type's kind and
// whether it is seeded here, with how to seed.
func TestConsoleSettingsPage(t *testing.T) {
	t.Parallel()
	env := newNotifyEnv(t, "", settingsSeeds()...)
	w := env.start(env.config())
	srv := httptest.NewServer(w.Handler())
	t.Cleanup(srv.Close)

	code, page := call(t, "GET", srv.URL+"/console/settings?bu=42", "", "")
	if code != http.StatusOK {
		t.Fatalf("settings page: %d %s", code, page)
	}
	for _, want := range []string{
		"Settings of business unit 42",
		`<span class="state tone-ok">On</span>`, `<span class="state tone-warn">Off</span>`, "5m0s", "incident-custom", "email, webhook",
		"attendee-new-profile (the type&#39;s default)",
		"&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;", "https://hooks.example.com/in?redacted",
		"101 AttendeeNewProfile", "hint-derived", "103 SettingsUpdated", "mapping-derived", "events of type 41", "201 WelcomeEmail", "direct-only",
		"platform seed FILE",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the settings page lacks %q", want)
		}
	}
	for _, never := range []string{hostileName, "SECRET-TOKEN", "other-unit@example.com"} {
		if strings.Contains(page, never) {
			t.Errorf("the settings page shows %q", never)
		}
	}
	// Seeded here? 101 and 102 yes, the other three no.
	if yes, no := strings.Count(page, `tone-ok">Yes<`), strings.Count(page, `tone-warn">No<`); yes != 2 || no != 3 {
		t.Errorf("seeded here: %d yes and %d no, want 2 and 3", yes, no)
	}

	for _, c := range []struct {
		query string
		want  int
		says  string
	}{
		{"", 200, `name="bu"`},
		{"?bu=99", 200, "No option is seeded for business unit 99"},
		{"?bu=" + url.QueryEscape(`<b>x</b>`), 400, "&lt;b&gt;x&lt;/b&gt;"},
		{"?bu=-1", 400, "want a positive integer"},
	} {
		code, page := call(t, "GET", srv.URL+"/console/settings"+c.query, "", "")
		if code != c.want || !strings.Contains(page, c.says) {
			t.Errorf("/console/settings%s: %d, want %d saying %q:\n%s", c.query, code, c.want, c.says, page)
		}
	}
}
