package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Browser tests drive a real headless Chromium over the DevTools protocol (chromedp): the
// pages' HTML, CSS, Content-Security-Policy, cookies and forms as a support engineer's browser
// meets them. A missing browser fails the test, it never skips it: `make test` installs one
// (chromium/install.sh, which looks where ChromiumPath looks).

// BrowserTimeout bounds one test's browser: a page that never shows what a test waits for
// fails the test, it does not hang the run.
const BrowserTimeout = 3 * time.Minute

// ChromiumPath is the browser the tests drive: $PLATFORM_CHROMIUM, else chromium,
// chromium-browser or google-chrome on PATH.
func ChromiumPath() (string, error) {
	if p := os.Getenv("PLATFORM_CHROMIUM"); p != "" {
		path, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("PLATFORM_CHROMIUM=%s: %w", p, err)
		}
		return path, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path, nil
		}
	}
	return "", errors.New("no Chromium for the browser tests (looked for PLATFORM_CHROMIUM, chromium, chromium-browser, google-chrome): " +
		"`make test` installs it (make chromium/install), or apt-get install chromium")
}

// StartBrowser starts a headless Chromium for t (its own process and a temporary profile,
// removed when t ends) and returns the context of its one tab, for chromedp.Do and
// chromedp.Run. The tab is 1280×800; it records what a page must never do (Problems); a
// script's dialog (alert, confirm, prompt) is recorded and dismissed, so it cannot block the
// test. Everything ends after BrowserTimeout, or when t ends.
func StartBrowser(t testing.TB) context.Context {
	t.Helper()
	path, err := ChromiumPath()
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.DisableGPU, chromedp.WindowSize(1280, 800))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium's sandbox refuses to run as root
	}
	ctx, cancelTimeout := context.WithTimeout(context.Background(), BrowserTimeout)
	ctx, cancelAllocator := chromedp.NewExecAllocator(ctx, opts...) // a temporary user-data dir of its own
	rec := &recorder{}
	ctx = context.WithValue(ctx, recorderKey{}, rec)
	ctx, cancelTab := chromedp.NewContext(ctx, chromedp.WithListener(rec.listen))
	t.Cleanup(func() {
		cancelTab()
		cancelAllocator() // waits for the browser to exit and its profile to be removed
		cancelTimeout()
	})
	rec.tab = ctx
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	return ctx
}

// A PageProblem is something a page did that a console page must never do.
type PageProblem struct {
	// Kind is "dialog" (a script opened one: a script ran), "exception" (uncaught),
	// "console" (console.error or console.warn), "csp" (the Content-Security-Policy refused
	// something: an inline script or style, another origin), "network" (a request failed or
	// was answered 4xx/5xx) or "log" (another error or warning of the browser).
	Kind string
	Text string
}

func (p PageProblem) String() string { return p.Kind + ": " + p.Text }

// Problems returns the problems recorded in ctx's tab since the last call, and forgets them.
func Problems(ctx context.Context) []PageProblem {
	rec := ctx.Value(recorderKey{}).(*recorder)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	out := rec.problems
	rec.problems = nil
	return out
}

// NoProblems fails t for each problem recorded in ctx's tab since the last call (Problems)
// except those of the kinds in ignore, saying where it was.
func NoProblems(t testing.TB, ctx context.Context, where string, ignore ...string) {
	t.Helper()
	for _, p := range Problems(ctx) {
		if !slices.Contains(ignore, p.Kind) {
			t.Errorf("%s: %s", where, p)
		}
	}
}

type recorderKey struct{}

// recorder keeps a tab's problems. listen runs in the tab's event loop: it must return at once
// and send no command itself.
type recorder struct {
	tab      context.Context
	mu       sync.Mutex
	problems []PageProblem
}

func (r *recorder) add(kind, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.problems = append(r.problems, PageProblem{kind, text})
}

func (r *recorder) listen(ev any) {
	switch ev := ev.(type) {
	case *page.EventJavascriptDialogOpening:
		r.add("dialog", fmt.Sprintf("%s(%q) at %s", ev.Type, ev.Message, ev.URL))
		go func() { // a dialog blocks the page until it is answered
			_, _ = chromedp.Call(r.tab, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}()
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			text += " " + d.Exception.Description
		}
		r.add("exception", fmt.Sprintf("%s at %s:%d", text, d.URL, d.LineNumber+1))
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError && ev.Type != runtime.ConsoleAPICalledTypeWarning && ev.Type != runtime.ConsoleAPICalledTypeAssert {
			return
		}
		var args []string
		for _, a := range ev.Args {
			if a.Value != nil {
				args = append(args, strings.Trim(string(a.Value), `"`))
			} else {
				args = append(args, a.Description)
			}
		}
		r.add("console", string(ev.Type)+": "+strings.Join(args, " "))
	case *log.EventEntryAdded:
		e := ev.Entry
		if e.Level != log.EntryLevelError && e.Level != log.EntryLevelWarning {
			return
		}
		if u, err := url.Parse(e.URL); err == nil && u.Path == "/favicon.ico" {
			return // the browser's own request, not the page's
		}
		kind := "log"
		switch {
		case strings.Contains(e.Text, "Content Security Policy"):
			kind = "csp"
		case e.Source == log.EntrySourceNetwork:
			kind = "network"
		}
		r.add(kind, fmt.Sprintf("%s (%s %s) %s", e.Text, e.Source, e.Level, e.URL))
	}
}

// ScreenshotWidths are the window widths every screenshot is taken at: a laptop and a phone.
var ScreenshotWidths = []int64{1280, 390}

// Screenshot saves the whole page of ctx's tab (not only what the window shows) as PNGs, one
// for each of ScreenshotWidths, named name-{width}.png, into ScreenshotDir; the tab is 1280
// wide again after it. name must be unique among the tests that run: it is the file's name.
func Screenshot(t testing.TB, ctx context.Context, name string) {
	t.Helper()
	dir := ScreenshotDir(t)
	for _, width := range ScreenshotWidths {
		png, err := chromedp.Run(ctx, fullPage(width))
		if err != nil {
			t.Fatalf("screenshot %s at %d px: %v", name, width, err)
		}
		file := filepath.Join(dir, fmt.Sprintf("%s-%d.png", name, width))
		if err := os.WriteFile(file, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}
}

// fullPage lays the page out width CSS pixels wide and captures all of its height.
func fullPage(width int64) chromedp.Action[[]byte] {
	return func(ctx context.Context, tab *chromedp.Target) ([]byte, error) {
		if _, err := chromedp.EmulateViewport(width, 800)(ctx, tab); err != nil {
			return nil, err
		}
		m, err := cdp.Call(ctx, tab, page.GetLayoutMetrics, cdp.Empty{})
		if err != nil {
			return nil, err
		}
		height := int64(800)
		if m.CSSContentSize != nil && int64(m.CSSContentSize.Height) > height {
			height = int64(m.CSSContentSize.Height + 0.5)
		}
		// The window as tall as the page: a viewport-high layout (a sticky bar, a 100vh box)
		// is drawn as a reader scrolling it would see it.
		if _, err := cdp.Call(ctx, tab, emulation.SetDeviceMetricsOverride,
			emulation.SetDeviceMetricsOverrideParams{Width: width, Height: height, DeviceScaleFactor: 1}); err != nil {
			return nil, err
		}
		return chromedp.FullScreenshot(100)(ctx, tab) // quality 100: PNG
	}
}

// ScreenshotDir is where screenshots go: $PLATFORM_SCREENSHOTS, else bin/screenshots under
// the repository's root (bin/ is not committed). It is created if need be.
func ScreenshotDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("PLATFORM_SCREENSHOTS")
	if dir == "" {
		root, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		for {
			if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
				break
			}
			parent := filepath.Dir(root)
			if parent == root {
				t.Fatal("screenshots: no go.mod above the test's directory; set PLATFORM_SCREENSHOTS")
			}
			root = parent
		}
		dir = filepath.Join(root, "bin", "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
