package console

import (
	"encoding/base64"
	"net/http"
	"strings"
	"unicode/utf8"
)

// An action says what it did on the page it returns to, in a flash: a cookie that lives for
// the one redirect. Not a URL parameter: a link of anyone's making could then put words of
// theirs on a console page ("your session expired, call …").
const flashCookie = "platform_console_flash"

// done redirects (303) to the console page to, which will say msg once.
func (c *console) done(rw http.ResponseWriter, r *http.Request, to, msg string) {
	if len(msg) > 500 {
		msg = strings.ToValidUTF8(msg[:500], "") // cut on a character: a cut one would void the flash
	}
	http.SetCookie(rw, &http.Cookie{Name: flashCookie, Value: base64.RawURLEncoding.EncodeToString([]byte(msg)), Path: Prefix,
		MaxAge: 60, HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteStrictMode})
	http.Redirect(rw, r, to, http.StatusSeeOther)
}

// takeFlash returns the flash the last action left, once.
func takeFlash(rw http.ResponseWriter, r *http.Request) string {
	ck, err := r.Cookie(flashCookie)
	if err != nil {
		return ""
	}
	http.SetCookie(rw, &http.Cookie{Name: flashCookie, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteStrictMode})
	b, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil || !utf8.Valid(b) {
		return ""
	}
	return string(b)
}
