package webhooks

import (
	"errors"
	"net/url"

	"github.com/platform/platform"
)

// RedactURL is platform.RedactURL: a webhook URL as it may be shown (scheme, host and path;
// userinfo, query and fragment replaced by "redacted").
func RedactURL(raw string) string { return platform.RedactURL(raw) }

// redactError hides the URL net/http puts in its errors (`Post "https://h/p?token=…": …`).
func redactError(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		ue.URL = RedactURL(ue.URL)
	}
	return err
}
