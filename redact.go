package platform

import "net/url"

// RedactURL is a webhook URL as it may be shown — in a log, an error, a trace or a listing:
// its scheme, host and path. Userinfo, query and fragment often carry a credential
// (?token=…), so each is replaced by "redacted"; the stored URL stays whole, to send to.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" {
		return "(a malformed URL, not shown)"
	}
	shown := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	if u.User != nil {
		shown.User = url.User("redacted")
	}
	if u.RawQuery != "" || u.ForceQuery {
		shown.RawQuery = "redacted"
	}
	if u.Fragment != "" {
		shown.Fragment = "redacted"
	}
	return shown.String()
}
