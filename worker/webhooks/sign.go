package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
)

// Sign is the X-Platform-Signature value of body: "sha256=" + hex HMAC-SHA256 with secret.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// signRequest sets the headers that let the receiver check req's body came from us.
func signRequest(req *http.Request, secret string, body []byte) {
	req.Header.Set("X-Platform-Signature", Sign(secret, body))
}
