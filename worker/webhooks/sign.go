package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sign is the X-Platform-Signature value of body: "sha256=" + hex HMAC-SHA256 keyed with the
// secret string as shown (a whsec_ secret whole, prefix included).
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// SignRequest sets the headers that let the receiver check that req's body came from us, for
// one attempt of delivery id:
//   - Standard Webhooks (standardwebhooks.com): webhook-id (id, the same on every attempt and
//     resend: the receiver deduplicates on it), webhook-timestamp (this attempt, unix seconds),
//     and webhook-signature, one "v1,<base64 HMAC-SHA256 of {id}.{timestamp}.{body}>" per
//     secret, space-separated: during a rotation the receiver verifies with either.
//   - X-Platform-Signature (Sign) with secrets[0], the current one, for receivers written
//     before Standard Webhooks.
func SignRequest(req *http.Request, id string, secrets []string, body []byte) {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		mac := hmac.New(sha256.New, signingKey(s))
		mac.Write([]byte(id + "." + ts + "."))
		mac.Write(body)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	req.Header.Set("webhook-id", id) // sent as Webhook-Id: header names are case-insensitive
	req.Header.Set("webhook-timestamp", ts)
	req.Header.Set("webhook-signature", strings.Join(sigs, " "))
	if len(secrets) > 0 {
		req.Header.Set("X-Platform-Signature", Sign(secrets[0], body))
	}
}

// signingKey is the HMAC key of secret for webhook-signature: the bytes a whsec_ secret
// encodes (what the Standard Webhooks libraries decode it to), and the bytes of any other
// secret (hex, given before whsec_ secrets: verify those with the libraries' raw-key form).
func signingKey(secret string) []byte {
	if key, ok := whsecKey(secret); ok {
		return key
	}
	return []byte(secret)
}

// whsecKey decodes a "whsec_<base64>" secret.
func whsecKey(secret string) ([]byte, bool) {
	rest, ok := strings.CutPrefix(secret, whsecPrefix)
	if !ok {
		return nil, false
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	return key, err == nil
}
