package mappings_test

import (
	"strings"
	"testing"

	"github.com/platform/platform"
	"github.com/platform/platform/mappings"
)

func TestExampleDomainCoversEveryEventType(t *testing.T) {
	r := &mappings.HistoryRegistry{}
	if err := mappings.RegisterExampleHistory(r); err != nil {
		t.Fatal(err)
	}
	want := []int{11, 12, 21, 22, 31, 41, 51}
	got := r.EventTypes()
	if len(got) != len(want) {
		t.Fatalf("registered %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("registered %v, want %v", got, want)
		}
	}
	if err := mappings.RegisterExampleHistory(r); err == nil {
		t.Fatal("a second registration of the same types must fail")
	}
}

func TestMultiRejectsMalformedRelations(t *testing.T) {
	r := &mappings.HistoryRegistry{}
	r.MustRegister(31, mappings.Multi{Related: mappings.GUIDList("attendeeGuids", 1)})
	m, _ := r.Lookup(31)
	for payload, want := range map[string]string{
		`{"attendeeGuids":"7c9e6679-7425-40de-944b-e07fc1f90ae7"}`:          "payload.attendeeGuids: want an array",
		`{"attendeeGuids":["7c9e6679-7425-40de-944b-e07fc1f90ae7","nope"]}`: "payload.attendeeGuids[1]: want a UUID",
		`{"attendeeGuids":["00000000-0000-0000-0000-000000000000"]}`:        "payload.attendeeGuids[0]",
	} {
		ev := &platform.EntityEvent{EventTypeID: 31, EntityTypeID: 3, ActionTypeID: 4, EntityID: 9, BusinessUnitID: 1, Payload: []byte(payload)}
		_, err := m.Entries(ev)
		if err == nil || !platform.IsPermanent(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want a permanent error with %q", payload, err, want)
		}
	}
	ev := &platform.EntityEvent{EventTypeID: 31, EntityTypeID: 3, ActionTypeID: 4, EntityID: 9, BusinessUnitID: 1}
	if entries, err := m.Entries(ev); err != nil || len(entries) != 1 {
		t.Fatalf("no payload: %v, %d entries; want the own row only", err, len(entries))
	}
}
