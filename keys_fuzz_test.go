package platform_test

import (
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/platform/platform"
)

// unescapeKey inverts EscapeKey (%XX → the byte).
func unescapeKey(t *testing.T, k string) string {
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		if k[i] != '%' {
			b.WriteByte(k[i])
			continue
		}
		n, err := strconv.ParseUint(k[i+1:i+3], 16, 8)
		if err != nil {
			t.Fatalf("escaped key %q: bad escape at %d", k, i)
		}
		b.WriteByte(byte(n))
		i += 2
	}
	return b.String()
}

// FuzzEscapeKey: an escaped key is legal for Azure Tables (no / \ # ? or control characters,
// valid UTF-8), decodes back to its input, and two inputs never share a key.
func FuzzEscapeKey(f *testing.F) {
	for _, s := range []string{"", "plain", "a/b", `a\b`, "a#b", "a?b", "100%", "%2F", "\x00\x1f\x7f", "\u0085", "\xff\xfe", "é/ü", "order/7\\8#9?\x00\u2028"} {
		f.Add(s, "a/b")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ka := platform.EscapeKey(a)
		if !utf8.ValidString(ka) || strings.ContainsAny(ka, "/\\#?") {
			t.Fatalf("EscapeKey(%q) = %q: not a legal key", a, ka)
		}
		for _, r := range ka {
			if r < 0x20 || (r >= 0x7f && r <= 0x9f) {
				t.Fatalf("EscapeKey(%q) = %q: control character %U", a, ka, r)
			}
		}
		if back := unescapeKey(t, ka); back != a {
			t.Fatalf("EscapeKey(%q) = %q decodes to %q", a, ka, back)
		}
		if a != b && ka == platform.EscapeKey(b) {
			t.Fatalf("%q and %q share the key %q", a, b, ka)
		}
	})
}

// FuzzHistoryRowKey: over the whole accepted range (1601-9999, 100 ns), row keys have one
// length and sort newest first.
func FuzzHistoryRowKey(f *testing.F) {
	f.Add(int64(0), int64(1), int64(0), int64(0))
	f.Add(int64(-11644473600), int64(253402300799), int64(0), int64(9999999))
	f.Add(int64(1795384668), int64(1795384668), int64(1), int64(2))
	f.Fuzz(func(t *testing.T, secA, secB, tickA, tickB int64) {
		// Seconds and 100 ns ticks, not UnixNano, which overflows past 2262.
		first, last := int64(-11644473600), int64(253402300799) // 1601-01-01, 9999-12-31T23:59:59
		clamp := func(s, lo, hi int64) int64 {
			if s < lo || s > hi {
				s = lo + (s%(hi-lo+1)+(hi-lo+1))%(hi-lo+1)
			}
			return s
		}
		ta := time.Unix(clamp(secA, first, last), clamp(tickA, 0, 9_999_999)*100).UTC()
		tb := time.Unix(clamp(secB, first, last), clamp(tickB, 0, 9_999_999)*100).UTC()
		ka, kb := platform.HistoryRowKey(ta, 12, 2), platform.HistoryRowKey(tb, 12, 2)
		if len(ka) != len(kb) {
			t.Fatalf("keys of different lengths: %s (%s), %s (%s)", ka, ta, kb, tb)
		}
		switch {
		case ta.Before(tb) && !(ka > kb), ta.After(tb) && !(ka < kb), ta.Equal(tb) && ka != kb:
			t.Fatalf("%s → %s and %s → %s: not newest first", ta, ka, tb, kb)
		}
	})
}

// FuzzParseEventKey: any text is refused or read into an event (never a panic: support
// engineers paste keys by hand), and that event's key reads back into the same key: parsing
// is stable, whatever case or padding the pasted text had.
func FuzzParseEventKey(f *testing.F) {
	for _, s := range append([]string{"11:1:7c9e6679-7425-40de-944b-e07fc1f90ae7:2026-11-22T09:00:00.1234567Z:1",
		"41:4:42:2026-11-22T10:00:00.0000000Z:2", "a:b:c:d:e", "11:1:0:2026-11-22T09:00:00Z:1"}, keySeeds...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		ev, err := platform.ParseEventKey(key)
		if err != nil {
			return
		}
		ev.BusinessUnitID = 1
		again, err := platform.ParseEventKey(ev.Key())
		if err != nil || again.Key() != ev.Key() {
			t.Fatalf("%q parsed to %+v, whose key %q does not read back (%v)", key, ev, ev.Key(), err)
		}
	})
}

func TestDeliveryKeysReadBack(t *testing.T) {
	eventKey := "11:1:7c9e6679-7425-40de-944b-e07fc1f90ae7:2026-11-22T09:00:00.1234567Z:1"
	key := platform.DeliveryKey("01M82K7HT2SY1ZHM05AHMRPCPW", eventKey)
	if key != "webhook:01M82K7HT2SY1ZHM05AHMRPCPW:"+eventKey {
		t.Fatalf("delivery key %q", key)
	}
	endpoint, ev, ok := platform.ParseDeliveryKey(key)
	if !ok || endpoint != "01M82K7HT2SY1ZHM05AHMRPCPW" || ev != eventKey {
		t.Fatalf("ParseDeliveryKey(%q) = %q, %q, %v", key, endpoint, ev, ok)
	}
	for _, bad := range []string{eventKey, "webhook:", "webhook::" + eventKey, "webhook:01M8", "notification-job:101:" + eventKey} {
		if _, _, ok := platform.ParseDeliveryKey(bad); ok {
			t.Fatalf("ParseDeliveryKey(%q) accepted it", bad)
		}
	}
	if jk, ok := platform.MessageJobKey("notification-job:101:" + eventKey + "|email|a@example.com"); !ok || jk != "notification-job:101:"+eventKey {
		t.Fatalf("MessageJobKey: %q %v", jk, ok)
	}
}

// keySeeds are pasted-by-hand shapes of every kind of key: the seeds of every key parser's
// fuzz target, so plain go test runs them all.
var keySeeds = []string{"", "1:2:3:4", "1:2:3::4", ":::", "|", "||", "a|b", "webhook:", "webhook::", "webhook:a:b", "webhook:a:b:c",
	"notification-job:101:11:1:7c9e6679-7425-40de-944b-e07fc1f90ae7:2026-11-22T09:00:00.1234567Z:1",
	"notification-job:101:11:1:7c9e6679-7425-40de-944b-e07fc1f90ae7:2026-11-22T09:00:00.1234567Z:1|email|a@example.com",
	"7C9E6679-7425-40DE-944B-E07FC1F90AE7", "00000000-0000-0000-0000-000000000000", "0042", "-1", "9223372036854775808",
	"01M82K7HT2SY1ZHM05AHMRPCPW", "7ZZZZZZZZZZZZZZZZZZZZZZZZZ", "8ZZZZZZZZZZZZZZZZZZZZZZZZZ", "\x1b[31m\a\r", "\xff\xfe", "é/ü#?%"}

// FuzzParseDeliveryKey: any text is refused or split into a non-empty endpoint id and event
// key, which join back into the same key.
func FuzzParseDeliveryKey(f *testing.F) {
	for _, s := range keySeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		endpoint, eventKey, ok := platform.ParseDeliveryKey(key)
		if !ok {
			return
		}
		if endpoint == "" || eventKey == "" || strings.Contains(endpoint, ":") {
			t.Fatalf("ParseDeliveryKey(%q) = %q, %q", key, endpoint, eventKey)
		}
		if back := platform.DeliveryKey(endpoint, eventKey); back != key {
			t.Fatalf("ParseDeliveryKey(%q) = %q, %q, which join to %q", key, endpoint, eventKey, back)
		}
	})
}

// FuzzMessageJobKey: any text is refused or read as a message key whose job key has no '|';
// a message key made from a job key reads back to that job key.
func FuzzMessageJobKey(f *testing.F) {
	for _, s := range keySeeds {
		f.Add(s, "a@example.com")
	}
	f.Fuzz(func(t *testing.T, key, address string) {
		if jobKey, ok := platform.MessageJobKey(key); ok && (jobKey == "" || strings.Contains(jobKey, "|") || !strings.HasPrefix(key, jobKey+"|")) {
			t.Fatalf("MessageJobKey(%q) = %q", key, jobKey)
		}
		if key == "" || strings.Contains(key, "|") {
			return // not a job key
		}
		mk := platform.MessageKey(key, platform.Recipient{Channel: "email", Address: address})
		if jobKey, ok := platform.MessageJobKey(mk); !ok || jobKey != key {
			t.Fatalf("MessageJobKey(MessageKey(%q, …)) = %q, %v", key, jobKey, ok)
		}
	})
}

// FuzzParseIdentity: any text is refused or canonical, and the canonical form reads back to
// itself; a GUID reads the same way NormalizeGUID reads it.
func FuzzParseIdentity(f *testing.F) {
	for _, s := range keySeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if g, err := platform.NormalizeGUID(s); err == nil && g != "" {
			if again, err := platform.NormalizeGUID(g); err != nil || again != g {
				t.Fatalf("NormalizeGUID(%q) = %q, which normalises to %q (%v)", s, g, again, err)
			}
		}
		id, err := platform.ParseIdentity(s)
		if err != nil {
			return
		}
		if again, err := platform.ParseIdentity(id); err != nil || again != id {
			t.Fatalf("ParseIdentity(%q) = %q, which reads back as %q (%v)", s, id, again, err)
		}
		if strings.Contains(id, ":") || platform.EscapeKey(id) != id {
			t.Fatalf("ParseIdentity(%q) = %q: not safe in a key", s, id)
		}
	})
}

// FuzzSourceKeyTime: any text is refused or read as a ULID, whose time makes a key that sorts
// no later than it.
func FuzzSourceKeyTime(f *testing.F) {
	for _, s := range keySeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		at, ok := platform.SourceKeyTime(key)
		if !ok {
			return
		}
		if floor := platform.SourceKeyAt(at); floor > strings.ToUpper(key) {
			t.Fatalf("SourceKeyTime(%q) = %s, whose smallest key %s sorts after it", key, at, floor)
		}
	})
}

// FuzzCheckKeyLength: any text is measured without a panic, and what CheckKeyLength accepts
// escapes to a key Azure Tables takes (at most MaxKeyLength UTF-16 code units).
func FuzzCheckKeyLength(f *testing.F) {
	for _, s := range append(keySeeds, strings.Repeat("x", platform.MaxKeyLength), strings.Repeat("/", 171), strings.Repeat("😀", 257)) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := platform.KeyLength(s)
		err := platform.CheckKeyLength("key", s)
		if (err == nil) != (n <= platform.MaxKeyLength) {
			t.Fatalf("KeyLength(%.40q) = %d but CheckKeyLength says %v", s, n, err)
		}
		if err == nil && len(utf16.Encode([]rune(platform.EscapeKey(s)))) > platform.MaxKeyLength {
			t.Fatalf("%.40q accepted but escapes to more than %d UTF-16 code units", s, platform.MaxKeyLength)
		}
	})
}

// A message key made before webhook URLs with a credential were hashed is shown redacted;
// today's keys, and every other channel's, are shown as they are.
func TestShownKeyRedactsOnlyOldWebhookKeysWithACredential(t *testing.T) {
	job := "notification-job:direct:0123456789abcdef0123456789abcdef"
	now := platform.MessageKey(job, platform.Recipient{Channel: platform.ChannelWebhook, Address: "https://h.example.com/in?token=SECRET"})
	for key, want := range map[string]string{
		job + "|webhook|https://h.example.com/in?token=SECRET": job + "|webhook|https://h.example.com/in?redacted",
		job + "|webhook|https://u:SECRET@h.example.com/in":     job + "|webhook|https://redacted@h.example.com/in",
		now: now,
		job + "|webhook|https://h.example.com/in": job + "|webhook|https://h.example.com/in",
		job + "|email|ada+SECRET@example.com":     job + "|email|ada+SECRET@example.com",
		job:                                       job,
	} {
		if got := platform.ShownKey(key); got != want {
			t.Errorf("ShownKey(%q) = %q, want %q", key, got, want)
		}
	}
	if strings.Contains(now, "SECRET") {
		t.Fatalf("today's key %q holds the credential", now)
	}
}
