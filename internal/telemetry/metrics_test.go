package telemetry_test

import (
	"errors"
	"testing"

	"github.com/platform/platform/internal/telemetry"
)

func TestStatusClass(t *testing.T) {
	for _, c := range []struct {
		status int
		err    error
		want   string
	}{
		{200, nil, "2xx"}, {204, nil, "2xx"}, {304, nil, "3xx"}, {404, nil, "4xx"}, {412, nil, "4xx"},
		{503, nil, "5xx"}, {599, nil, "5xx"}, {0, errors.New("reset"), "error"}, {0, nil, "error"},
		{150, nil, "other"}, {600, nil, "other"},
	} {
		if got := telemetry.StatusClass(c.status, c.err); got != c.want {
			t.Errorf("StatusClass(%d, %v) = %q, want %q", c.status, c.err, got, c.want)
		}
	}
}
