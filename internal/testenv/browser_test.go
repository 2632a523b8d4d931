package testenv

import (
	"bytes"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/chromedp/chromedp"
)

// The harness catches what it claims to: a script that ran (its dialog), an inline script the
// Content-Security-Policy refused, a console error, an uncaught exception; and it finds
// nothing on a clean page. Screenshots are full-page PNGs at each width.
func TestBrowserRecordsWhatAPageMustNotDo(t *testing.T) {
	t.Setenv("PLATFORM_SCREENSHOTS", t.TempDir()) // so not parallel
	const csp = "default-src 'none'; script-src 'self'; style-src 'self'"
	mux := http.NewServeMux()
	page := func(path, policy, body string) {
		mux.HandleFunc("GET "+path, func(rw http.ResponseWriter, r *http.Request) {
			if policy != "" {
				rw.Header().Set("Content-Security-Policy", policy)
			}
			rw.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = rw.Write([]byte("<!doctype html><html><head><title>t</title></head><body>" + body + "</body></html>"))
		})
	}
	script := func(path, js string) {
		mux.HandleFunc("GET "+path, func(rw http.ResponseWriter, r *http.Request) {
			rw.Header().Set("Content-Type", "text/javascript")
			_, _ = rw.Write([]byte(js))
		})
	}
	page("/clean", csp, `<main id="m"><p>Hello</p><script src="/ok.js"></script></main>`)
	script("/ok.js", `document.getElementById("m").dataset.ran = "yes";`)
	page("/inline", csp, `<main id="m"><script>alert("inline")</script><p style="color:red">x</p></main>`)
	page("/handler", "", `<main id="m"><img src="/nothing.png" onerror="alert(1)"></main>`)
	page("/errors", csp, `<main id="m"><script src="/errors.js"></script></main>`)
	script("/errors.js", `console.error("broken"); throw new Error("thrown");`)
	long := ""
	for range 200 {
		long += "<p>line</p>"
	}
	page("/long", csp, `<main id="m">`+long+`</main>`)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	ctx := StartBrowser(t)
	visit := func(path string) map[string]int {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+path), chromedp.WaitVisible(chromedp.ID("m"))); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		// A round trip after the load: the events of the page's scripts have arrived.
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[int](`1`)); err != nil {
			t.Fatal(err)
		}
		kinds := map[string]int{}
		for _, p := range Problems(ctx) {
			t.Logf("%s: %s", path, p)
			kinds[p.Kind]++
		}
		return kinds
	}
	if got := visit("/clean"); len(got) != 0 {
		t.Errorf("a clean page: %v, want no problem", got)
	}
	if ran, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("m").dataset.ran`)); err != nil || ran != "yes" {
		t.Errorf("the page's own script: ran=%q (%v), want yes", ran, err)
	}
	if got := visit("/inline"); got["csp"] < 2 || got["dialog"] != 0 {
		t.Errorf("an inline script and style under the CSP: %v, want two csp and no dialog", got)
	}
	if got := visit("/handler"); got["dialog"] != 1 {
		t.Errorf("an event handler attribute without a CSP: %v, want a dialog", got)
	}
	if got := visit("/errors"); got["console"] != 1 || got["exception"] != 1 {
		t.Errorf("console.error and a throw: %v, want one of each", got)
	}

	_ = visit("/long")
	Screenshot(t, ctx, "long")
	for _, width := range ScreenshotWidths {
		b, err := os.ReadFile(filepath.Join(ScreenshotDir(t), "long-"+strconv.FormatInt(width, 10)+".png"))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(bytes.NewReader(b))
		if err != nil || int64(cfg.Width) != width || cfg.Height <= 800 {
			t.Errorf("screenshot at %d: %dx%d (%v), want %d wide and taller than the window", width, cfg.Width, cfg.Height, err, width)
		}
	}
}
