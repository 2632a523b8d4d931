package delivery

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/platform/platform"
)

// Channel delivers outgoing messages of one kind (email, a webhook, an integrator's
// endpoint…). Adding one is a type that implements it and one Register call.
type Channel interface {
	// Send delivers m. It returns the provider's id for it; a platform.Permanent error when no
	// retry can help; Ambiguous(err) when the provider may or may not have it (the request went
	// out whole and its answer was lost: the message becomes Unknown, never resent); any other
	// error to retry.
	Send(ctx context.Context, m *platform.OutgoingMessage) (providerID string, err error)
	// CheckAddress refuses an address this channel could never deliver to, before a job naming
	// it is accepted: bad input is refused at the door, not found at send time.
	CheckAddress(ctx context.Context, address string) error
}

// Observer is a Channel that keeps its own view of its messages (the webhook delivery log):
// the distributor hands it a message each time it has stored a step of it — created, settled,
// back to Pending for a retry, Unknown. A failure is logged, never the message's.
type Observer interface {
	Observe(ctx context.Context, m *platform.OutgoingMessage) error
}

// Channels is the channel registry, by name (the name a recipient and a NotificationOption's
// Channels use).
type Channels struct {
	mu sync.RWMutex
	m  map[string]Channel
}

// Register adds channel ch under name; a name registered twice is an error.
func (c *Channels) Register(name string, ch Channel) error {
	if name == "" || ch == nil {
		return fmt.Errorf("channel %q: want a name and a channel", name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.m[name]; dup {
		return fmt.Errorf("channel %q is registered twice", name)
	}
	if c.m == nil {
		c.m = map[string]Channel{}
	}
	c.m[name] = ch
	return nil
}

// Lookup returns the channel registered as name.
func (c *Channels) Lookup(name string) (Channel, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ch, ok := c.m[name]
	return ch, ok
}

// Names lists the registered names, sorted.
func (c *Channels) Names() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return slices.Sorted(maps.Keys(c.m))
}

// CheckRecipient refuses a recipient no channel should be handed: an unknown channel, an
// address or name that is not plain text (control characters, invalid UTF-8: whoever prints
// it, a terminal, a log or a mail header, could be steered by it; format characters such as
// U+202E, which reverses the text after it, or U+200B, which is invisible: an address that
// reads as another), or an address its channel refuses. The error shows the address as a
// trace may (Recipient.Shown: a webhook URL's credentials are never in it).
func (c *Channels) CheckRecipient(ctx context.Context, r platform.Recipient) error {
	ch, ok := c.Lookup(r.Channel)
	if !ok {
		return fmt.Errorf("channel %q: want one of %v", r.Channel, c.Names())
	}
	shown := r.Shown()
	for _, f := range []struct {
		name, value, shown string
		refused            func(rune) bool
	}{{"address", r.Address, shown.Address, isFormat}, {"name", r.Name, shown.Name, isDeceptive}} {
		switch {
		case !utf8.ValidString(f.value) || strings.ContainsFunc(f.value, unicode.IsControl):
			return fmt.Errorf("%s %.80q: control characters or invalid UTF-8", f.name, f.shown)
		case strings.ContainsFunc(f.value, f.refused):
			return fmt.Errorf("%s %.80q: format characters (such as U+202E or U+200B: invisible, or reordering the text)", f.name, f.shown)
		}
	}
	return ch.CheckAddress(ctx, r.Address)
}

// isFormat: no format character belongs in an address.
func isFormat(r rune) bool { return unicode.Is(unicode.Cf, r) }

// isDeceptive: a name may hold the format characters that writing needs (U+200C and U+200D
// join letters in Persian and in emoji, U+00AD is a soft hyphen), but not those that reorder
// the text or hide in it.
func isDeceptive(r rune) bool {
	switch {
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069, // bidi embeddings, overrides, isolates
		r == 0x200E, r == 0x200F, r == 0x061C, // bidi marks
		r == 0x200B, r == 0x2060, r == 0xFEFF: // zero width space, word joiner, BOM
		return true
	}
	return false
}

// Ambiguous marks err as "the provider may or may not have the message": retrying could
// send it twice, so the message becomes Unknown.
func Ambiguous(err error) error { return &ambiguousError{err} }

type ambiguousError struct{ err error }

func (e *ambiguousError) Error() string { return e.err.Error() }
func (e *ambiguousError) Unwrap() error { return e.err }
