package delivery_test

import (
	"context"
	"testing"

	"github.com/platform/platform"
	"github.com/platform/platform/worker/channels"
	"github.com/platform/platform/worker/delivery"
)

// A display name may hold what writing needs (joiners in Persian and emoji, a soft hyphen),
// never what reorders or hides text; an address holds no format character at all.
func TestRecipientNamesKeepWritingButNotDeception(t *testing.T) {
	var chs delivery.Channels
	if err := chs.Register(platform.ChannelEmail, &channels.LogMail{}); err != nil {
		t.Fatal(err)
	}
	ok := []string{"", "Ada Lovelace", "می\u200cخواهم", "👩\u200d💻 Ada", "Love\u00adlace"}
	bad := []string{"Ada\u202eecalevoL", "Ada\u200bLovelace", "Ada\u2066x\u2069", "\ufeffAda"}
	for _, name := range ok {
		if err := chs.CheckRecipient(context.Background(), platform.Recipient{Channel: platform.ChannelEmail, Address: "ada@example.com", Name: name}); err != nil {
			t.Errorf("name %q: %v, want accepted", name, err)
		}
	}
	for _, name := range bad {
		if err := chs.CheckRecipient(context.Background(), platform.Recipient{Channel: platform.ChannelEmail, Address: "ada@example.com", Name: name}); err == nil {
			t.Errorf("name %q: accepted, want refused", name)
		}
	}
	if err := chs.CheckRecipient(context.Background(), platform.Recipient{Channel: platform.ChannelEmail, Address: "ada\u200d@example.com"}); err == nil {
		t.Error("an address with a joiner: accepted, want refused")
	}
}
