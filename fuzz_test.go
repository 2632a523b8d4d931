package platform_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/platform/platform"
)

// FuzzDecodeEvent: the decoder never panics, every accepted event has the invariants keys rely
// on, and its canonical form decodes back to the same key. The seeds run in every go test.
func FuzzDecodeEvent(f *testing.F) {
	for _, s := range []string{
		camel, pascal, base64.StdEncoding.EncodeToString([]byte(camel)),
		``, `{}`, `[]`, `null`, `{"eventTypeId":1e400}`, `{"createdOn":"9999-12-31T23:59:59.9999999Z"}`,
		`{"eventTypeId":11,"entityTypeId":1,"actionTypeId":1,"businessUnitId":3,"createdOn":"2026-11-22T10:00:00Z","entityGuid":"{7c9e6679-7425-40de-944b-e07fc1f90ae7}"}`,
		`{"eventTypeId":11,"entityTypeId":1,"actionTypeId":1,"businessUnitId":9223372036854775807,"createdOn":"2026-11-22T10:00:00-23:59"}`,
		`{"eventTypeId":11,"entityTypeId":1,"actionTypeId":1,"businessUnitId":3,"createdOn":"2026-11-22T10:00:00Z","payloadBlob":"bu-3/sha256-` + strings.Repeat("0", 64) + `.json"}`,
		`{"eventTypeId":11,"entityTypeId":1,"actionTypeId":1,"businessUnitId":3,"createdOn":"2026-11-22T10:00:00Z","payload":{},"payloadBlob":"bu-3/sha256-` + strings.Repeat("0", 64) + `.json"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := platform.DecodeEvent(body)
		if err != nil {
			if !platform.IsPermanent(err) {
				t.Fatalf("decode error %v is not permanent", err)
			}
			return
		}
		if ev.EventTypeID <= 0 || ev.EntityTypeID <= 0 || ev.ActionTypeID <= 0 || ev.BusinessUnitID <= 0 {
			t.Fatalf("accepted non-positive ids: %+v", ev)
		}
		if ev.EntityGUID != strings.ToLower(ev.EntityGUID) {
			t.Fatalf("guid not normalised: %q", ev.EntityGUID)
		}
		key := ev.Key()
		b, err := ev.MarshalJSON()
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		again, err := platform.DecodeEvent(b)
		if err != nil {
			t.Fatalf("canonical form %s does not decode: %v", b, err)
		}
		if again.Key() != key {
			t.Fatalf("key changed through the canonical form: %s → %s", key, again.Key())
		}
	})
}
